"""Calibration data for methods that need it (Wanda, SparseGPT): fixed token sequences from train text.

A method registered with ``calibration=True`` gets ``calibration=CalibrationData(...)``. What goes in
is fixed by the suite's ``calibration`` mapping (defaults below); that mapping joins the cell key of
those methods only, so every other cell keeps its key. Text comes from GLUE *train* splits, never an
evaluation split: the sentences are shuffled with the seed, tokenized, joined with [SEP] into one
stream and cut into ``count`` windows of ``seq_len`` tokens, each wrapped in [CLS] ... [SEP] (no padding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.data import GLUE, load_glue
from benchmarks.errors import UserError

DEFAULTS = {"source": "glue-train:sst2,mrpc,stsb", "count": 128, "seq_len": 128, "seed": 0}
SOURCE_PREFIX = "glue-train:"
_TOKENIZE_CHUNK = 512  # sentences tokenized per call while the stream fills


@dataclass(frozen=True)
class CalibrationData:
    """``count`` token sequences (``input_ids``/``attention_mask``: int64, count x seq_len) and their source."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    source: dict = field(default_factory=dict)  # data file -> sha256, for the record's provenance

    def batches(self, size: int):
        """(input_ids, attention_mask) in order, ``size`` sequences at a time."""
        for start in range(0, self.input_ids.shape[0], size):
            yield self.input_ids[start:start + size], self.attention_mask[start:start + size]


def needs_calibration(method: str) -> bool:
    """Whether method ``method`` declared ``calibration=True`` at registration (False for 'dense')."""
    from benchmarks.registry import METHODS

    return method in METHODS and bool(METHODS.meta(method).get("calibration"))


def calibration_config(spec: dict | None, where: str) -> dict:
    """The suite's ``calibration`` mapping with defaults filled in, validated (UserError naming ``where``)."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise UserError(f"{where}: unknown calibration field(s) {unknown}; known: {', '.join(DEFAULTS)}")
    config = {**DEFAULTS, **spec}
    for key in ("count", "seq_len", "seed"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise UserError(f"{where}: calibration.{key} must be a {'non-negative' if key == 'seed' else 'positive'} "
                            f"integer, got {value!r}")
    if config["seq_len"] < 3:
        raise UserError(f"{where}: calibration.seq_len must be at least 3 ([CLS] text [SEP]), got {config['seq_len']}")
    source_tasks(config["source"], where)
    return config


def cell_calibration(method: str, spec: dict | None, where: str) -> dict:
    """``{"calibration": config}`` for a cell of a method that needs calibration data, else {} (keys unchanged)."""
    if not needs_calibration(method):
        return {}
    return {"calibration": calibration_config(spec, where)}


def source_tasks(source, where: str = "calibration") -> list[str]:
    """The GLUE tasks named by ``glue-train:<task>[,<task>...]`` (their train splits only)."""
    if not isinstance(source, str) or not source.startswith(SOURCE_PREFIX):
        raise UserError(f"{where}: calibration.source {source!r} is not 'glue-train:<task>[,<task>]'; "
                        f"use e.g. {DEFAULTS['source']!r}")
    tasks = [t.strip() for t in source[len(SOURCE_PREFIX):].split(",") if t.strip()]
    bad = [t for t in tasks if t not in GLUE]
    if not tasks or bad or len(set(tasks)) != len(tasks):
        raise UserError(f"{where}: calibration.source {source!r} must list distinct GLUE tasks from "
                        f"{', '.join(sorted(GLUE))}; e.g. {DEFAULTS['source']!r}")
    return tasks


def train_sentences(source: str, data_dir: Path | None) -> tuple[list[str], dict]:
    """Every sentence (first and second column) of the named tasks' train splits, and their sha256s.

    Raises DataMissing when a train split is absent (the cell is recorded as skipped).
    """
    sentences: list[str] = []
    provenance: dict = {}
    for task in source_tasks(source):
        examples = load_glue(task, "train", data_dir)
        sentences.extend(examples.text_a)
        sentences.extend(examples.text_b or [])
        provenance.update(examples.source)
    return sentences, provenance


def token_windows(sentences: list[str], tokenizer, count: int, seq_len: int, seed: int) -> torch.Tensor:
    """``count`` x ``seq_len`` token ids: shuffled sentences joined by [SEP], cut into [CLS] window [SEP]."""
    body = seq_len - 2
    need = count * body
    order = np.random.default_rng(seed).permutation(len(sentences))
    stream: list[int] = []
    for start in range(0, len(order), _TOKENIZE_CHUNK):
        chunk = [sentences[i] for i in order[start:start + _TOKENIZE_CHUNK]]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(tokenizer.sep_token_id)
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise UserError(f"calibration needs {need} tokens ({count} x {body}) but the source has {len(stream)}; "
                        f"lower calibration.count or calibration.seq_len")
    windows = torch.tensor(stream[:need], dtype=torch.int64).reshape(count, body)
    cls = torch.full((count, 1), tokenizer.cls_token_id, dtype=torch.int64)
    sep = torch.full((count, 1), tokenizer.sep_token_id, dtype=torch.int64)
    return torch.cat([cls, windows, sep], dim=1)


def load_calibration(config: dict, tokenizer, data_dir: Path | None,
                     max_positions: int | None = None) -> CalibrationData:
    """Build the calibration set a cell's ``calibration`` config describes (deterministic for a seed)."""
    if max_positions is not None and config["seq_len"] > max_positions:
        raise UserError(f"calibration.seq_len {config['seq_len']} exceeds the model's {max_positions} positions; "
                        f"lower calibration.seq_len")
    sentences, provenance = train_sentences(config["source"], data_dir)
    ids = token_windows(sentences, tokenizer, config["count"], config["seq_len"], config["seed"])
    return CalibrationData(ids, torch.ones_like(ids), provenance)


def random_calibration(vocab_size: int, count: int = 8, seq_len: int = 16, seed: int = 0) -> CalibrationData:
    """Uniformly random token ids (unit tests and plug-in authors' tests; no reported number uses it)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (count, seq_len), generator=generator, dtype=torch.int64)
    return CalibrationData(ids, torch.ones_like(ids), {"random_tokens": f"seed={seed}"})
