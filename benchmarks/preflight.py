"""Checks against the resolved model that run before the first cell: N:M fit, calibration limits, --jobs.

The model's shapes come from its config alone (the model is built on torch's meta device: no weights are
read or allocated), so these checks take well under a second even for bert-base. A hub model whose config
is not on this machine is not fetched here: its checks are left to the cells (the hub probe says whether
it can be reached at all).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import Cell
from benchmarks.errors import UserError
from benchmarks.models import ModelRef

# Bytes per parameter while a cell fine-tunes in float32: weights, gradients and AdamW's two moments.
TRAINING_BYTES_PER_PARAM = 16
# What a worker process holds besides the model: Python, torch, tokenizers, data and activations.
WORKER_OVERHEAD_BYTES = 1 << 30
# Bytes per parameter of each cell of a ``--stack`` on a CPU, activations and the captured and trained copies
# included: measured, 17 MiniLM-L6 cells (22.7 M parameters) stacked at the cpu-ft scale peaked at 16.3 GiB
# (17,055,912 kB resident: 42.5 bytes per parameter and cell once the worker's overhead is taken off).
STACKED_BYTES_PER_PARAM = 44


@dataclass(frozen=True)
class ModelShape:
    """What the pre-flight checks need to know about a model: its prunable matrices' input widths and size."""

    widths: dict  # prunable matrix name -> input width (columns of its Linear weight)
    parameters: int
    max_positions: int | None


@functools.lru_cache(maxsize=8)
def _shape_of(location: str, revision: str | None) -> ModelShape | None:
    import torch
    from transformers import AutoConfig, AutoModel

    from methods.prunable import prunable_weights

    try:
        config = AutoConfig.from_pretrained(location, revision=revision, local_files_only=True)
        with torch.device("meta"):
            model = AutoModel.from_config(config)
    except Exception:  # not on this machine, or not a transformers model (e.g. LeNet): the cells decide
        return None
    try:
        widths = {w.name: int(w.weight.shape[1]) for w in prunable_weights(model)}
    except ValueError:
        widths = {}
    return ModelShape(widths, sum(p.numel() for p in model.parameters()),
                      getattr(config, "max_position_embeddings", None))


def model_shape(ref: ModelRef) -> ModelShape | None:
    """The resolved model's shape from its config, or None when the config is not available here."""
    revision = None if ref.is_local else ref.identity.get("revision")
    return _shape_of(ref.location, revision if revision != "main" else None)


def check_pattern_fit(cells: list[Cell], shape: ModelShape | None, model: str) -> None:
    """Every N:M pattern of the cells fits every prunable matrix: M divides its input width (exit 2 otherwise)."""
    from methods.patterns import parse_pattern

    if shape is None or not shape.widths:
        return
    for pattern in dict.fromkeys((c.config.get("options") or {}).get("pattern") for c in cells):
        nm = parse_pattern(pattern) if isinstance(pattern, str) else None
        if nm is None:
            continue
        misfits = {name: width for name, width in shape.widths.items() if width % nm[1]}
        if misfits:
            name, width = next(iter(misfits.items()))
            fitting = [m for m in range(2, 17) if all(w % m == 0 for w in shape.widths.values())]
            raise UserError(f"pattern {pattern} does not fit model {model!r}: {len(misfits)} prunable matrices have "
                            f"an input width that M={nm[1]} does not divide (e.g. {name}: {width}); choose an M "
                            f"that divides every width, e.g. {', '.join(map(str, fitting[:4])) or 'none up to 16'}")


def check_calibration(cells: list[Cell], shape: ModelShape | None, data_dir: Path | None) -> None:
    """Calibration windows fit the model's positions and the source's text (exit 2 before any cell)."""
    from benchmarks.calibration import source_tasks
    from benchmarks.paths import GLUE_FILES

    for config in dict.fromkeys(_canonical(c.config["calibration"]) for c in cells if "calibration" in c.config):
        config = dict(config)
        if shape is not None and shape.max_positions and config["seq_len"] > shape.max_positions:
            raise UserError(f"calibration.seq_len {config['seq_len']} exceeds the model's {shape.max_positions} "
                            f"positions; lower it, e.g. --set calibration.seq_len=128")
        if data_dir is None:
            continue
        files = [Path(data_dir) / GLUE_FILES[t].format(split="train") for t in source_tasks(config["source"])]
        # A token covers at least one byte of text, or is the [SEP] after a sentence (a sentence is at least
        # one byte and its line end): the source can never give more tokens than twice its bytes.
        most = 2 * sum(f.stat().st_size for f in files if f.is_file())
        need = config["count"] * (config["seq_len"] - 2)
        if all(f.is_file() for f in files) and need > most:
            raise UserError(f"calibration needs {need:,} tokens ({config['count']:,} x {config['seq_len'] - 2}) but "
                            f"its source ({config['source']}) holds at most {most:,}; lower calibration.count "
                            f"(default 128) or calibration.seq_len")


def _canonical(config: dict) -> tuple:
    return tuple(sorted(config.items()))


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask: a container's or Slurm's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def worker_memory(shape: ModelShape | None, stack: int = 1) -> int | None:
    """Bytes one --jobs worker needs while it fine-tunes the model, or a ``--stack`` of that many copies of it on a
    CPU (None when the model's size is unknown)."""
    if shape is None:
        return None
    per_param = TRAINING_BYTES_PER_PARAM if stack <= 1 else STACKED_BYTES_PER_PARAM * stack
    return shape.parameters * per_param + WORKER_OVERHEAD_BYTES


def total_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def plan_workers(jobs: int, cores: int, todo: int) -> tuple[int, str | None]:
    """Workers worth starting for ``--jobs``, and why fewer (None when all): no more than the cores this run may
    use (more only slow each other down and multiply memory) nor the cells left to run (at least one)."""
    workers = max(1, min(jobs, cores, todo))
    if workers == jobs:
        return workers, None
    if cores < min(jobs, todo):
        return workers, f"this run may use {cores} core(s)"
    return workers, f"only {todo} cell(s) left to run"


def check_memory(workers: int, each: int | None, total: int | None, stack: int = 1) -> None:
    """Bad input (exit 2) when the workers together would need more memory than this machine has."""
    if each is None or total is None or workers * each <= total:
        return
    if stack > 1:
        per_cell = (each - WORKER_OVERHEAD_BYTES) / stack
        fit = max(1, int((total / workers - WORKER_OVERHEAD_BYTES) // per_cell))
        raise UserError(f"--stack {stack}: each of {workers} worker(s) needs about {each / 2**30:.1f} GiB for "
                        f"{stack} stacked models (weights, gradients, optimizer state, activations), "
                        f"{workers * each / 2**30:.1f} GiB in all, but this machine has {total / 2**30:.1f} GiB; "
                        f"use --stack {fit} or fewer")
    fit = max(1, total // each)
    raise UserError(f"--jobs {workers}: each worker needs about {each / 2**30:.1f} GiB (the model's weights, "
                    f"gradients and optimizer state), {workers * each / 2**30:.1f} GiB in all, but this machine has "
                    f"{total / 2**30:.1f} GiB; use --jobs {fit} or fewer")
