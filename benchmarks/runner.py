"""The runner: expand a suite, skip finished cells, run the rest, write one record per cell."""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import paths, predictions, store
from benchmarks.analyses import CellOutcome
from benchmarks.config import Cell, Suite, canonical_json
from benchmarks.context import RunContext
from benchmarks.errors import DataMissing, UserError
from benchmarks.models import resolve_model
from benchmarks.provenance import provenance
from benchmarks.registry import ANALYSES, METHODS, TASKS


# Key under which run_cell hands a cell's per-example arrays to run_suite (never written into the JSON).
ARRAYS_KEY = "_arrays"


@dataclass
class RunSummary:
    """Counts of what a run did."""

    total: int = 0
    ran: int = 0
    skipped_done: int = 0
    ok: int = 0
    failed: list = field(default_factory=list)  # (label, error)
    data_skipped: list = field(default_factory=list)  # (label, reason)
    corrupt: list = field(default_factory=list)  # record file names that were unreadable and are rerun

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """Parse ``I/N`` (0-based I) for --shard."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: expected I/N with integers, e.g. --shard 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text!r}: need 0 <= I < N, e.g. --shard 0/4 ... 3/4")
    return i, n


def expand(suite: Suite, shard: tuple[int, int] | None = None) -> list[Cell]:
    """The suite's cells (this shard's share when sharded: every N-th cell from position I)."""
    analysis = ANALYSES.get(suite.kind)()
    cells = analysis.cells(suite)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise UserError(f"suite {suite.name!r} lists the same cell twice; remove the duplicate row, task or seed")
    if shard:
        i, n = shard
        cells = cells[i::n]
    return cells


def preflight(suite: Suite, data_dir: Path | None, shard: tuple[int, int] | None = None) -> list[Cell]:
    """The suite's cells (this shard's), after every check of the input that can run before a cell does:
    grid, methods, data files. Raises UserError (exit 2) before anything is written."""
    cells = expand(suite, shard)
    check_methods(cells)
    check_data(suite, ANALYSES.get(suite.kind)(), data_dir)  # a malformed data file is bad input
    return cells


def count_done(cells: list[Cell], results_dir: Path) -> int:
    """How many of ``cells`` have a readable ok record."""
    todo, _ = _unfinished(cells, results_dir)
    return len(cells) - len(todo)


def _make_accelerator():
    from accelerate import Accelerator

    return Accelerator()


def run_suite(suite: Suite, results_dir: Path, data_dir: Path | None, shard: tuple[int, int] | None = None,
              progress: bool = True, accelerator=None) -> RunSummary:
    """Run every unfinished cell of ``suite``; return what happened.

    A cell is finished when it has a readable ``ok`` record. Failed and skipped cells run again
    (skipped ones cost nothing when their data is still missing); unreadable records are named
    in a warning on stderr and their cells rerun, the new record replacing the file atomically.
    """
    analysis = ANALYSES.get(suite.kind)()
    cells = preflight(suite, data_dir, shard)
    accelerator = accelerator or _make_accelerator()
    ctx = RunContext(data_dir, Path(results_dir), accelerator, resolve_model(suite.model, suite.model_revision))
    summary = RunSummary(total=len(cells))
    todo, summary.corrupt = _unfinished(cells, results_dir)
    summary.skipped_done = len(cells) - len(todo)
    if summary.corrupt and accelerator.is_main_process:
        print(f"warning: {len(summary.corrupt)} unreadable record(s) ignored and rerun: "
              f"{', '.join(summary.corrupt)} (under {paths.records_dir(results_dir)})", file=sys.stderr)
    bar = _progress(todo, progress and accelerator.is_main_process, summary)
    # Everything imported so far lives for the whole run: move it out of the collector's sight so the
    # gc.collect() that accelerate's free_memory() runs after each cell scans only the cell's objects.
    gc.freeze()
    try:
        for cell in todo:
            if bar is not None:
                bar.set_postfix_str(cell.label, refresh=False)
            record = run_cell(analysis, cell, ctx, suite)
            summary.ran += 1
            if record["status"] == store.OK:
                summary.ok += 1
            elif record["status"] == store.SKIPPED:
                summary.data_skipped.append((cell.label, record["error"]))
            else:
                summary.failed.append((cell.label, record["error"]))
            arrays = record.pop(ARRAYS_KEY, None)
            if accelerator.is_main_process:  # only the main process writes records
                if arrays:  # the arrays first: a record never names a file that is not there
                    store.write_bytes_atomic(predictions.predictions_path(results_dir, cell.key),
                                             predictions.to_bytes(arrays))
                store.write_record(results_dir, record)
            accelerator.wait_for_everyone()
            if bar is not None:
                bar.update(1)
    finally:
        gc.unfreeze()  # a library caller (tests, notebooks) gets its collector back as it was
    if bar is not None:
        bar.close()
    return summary


def _unfinished(cells: list[Cell], results_dir: Path) -> tuple[list[Cell], list[str]]:
    """Cells without a readable ok record, and the names of unreadable record files among them."""
    todo, corrupt = [], []
    for cell in cells:
        state = store.record_state(results_dir, cell.key)
        if state == store.OK:
            continue
        if state == store.CORRUPT:
            corrupt.append(paths.record_path(results_dir, cell.key).name)
        todo.append(cell)
    return todo, corrupt


def check_methods(cells: list[Cell]) -> None:
    """Ask each method's ``validate(sparsity, options)`` metadata about its cells' arguments (bad input: exit 2)."""
    seen = set()
    for cell in cells:
        method = cell.config.get("method")
        if not isinstance(method, str) or method not in METHODS:
            continue
        args = (method, cell.config.get("sparsity"), canonical_json(cell.config.get("options") or {}))
        validate = METHODS.meta(method).get("validate")
        if validate is None or args in seen:
            continue
        seen.add(args)
        try:
            validate(cell.config.get("sparsity"), dict(cell.config.get("options") or {}))
        except ValueError as exc:
            raise UserError(f"row {cell.config.get('label', method)!r}: {exc}") from None


def check_data(suite: Suite, analysis, data_dir: Path | None) -> None:
    """Read the suite's local data files up front; a malformed one raises UserError naming it.

    A suite kind may define ``check_data(suite, data_dir)``; otherwise every task of the suite
    that has ``check_data(data_dir)`` is asked.
    """
    check = getattr(analysis, "check_data", None)
    if check is not None:
        check(suite, data_dir)
        return
    for name in suite.tasks:
        if isinstance(name, str) and name in TASKS:
            task_check = getattr(TASKS.get(name), "check_data", None)
            if task_check is not None:
                task_check(data_dir)


def _progress(cells: list[Cell], show: bool, summary: RunSummary):
    """A tqdm bar on stderr: cell i of n (n counts cells already done), rate and time left."""
    if not show or not cells:
        return None
    from tqdm import tqdm

    desc = f"cells ({summary.skipped_done} already done)" if summary.skipped_done else "cells"
    return tqdm(total=summary.total, initial=summary.skipped_done, desc=desc, unit="cell", file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def run_cell(analysis, cell: Cell, ctx: RunContext, suite: Suite) -> dict:
    """Run one cell and build its record; errors become a failed record, missing data a skipped one."""
    started = time.time()
    outcome, status, error = None, store.OK, None
    try:
        outcome = analysis.run(cell, ctx)
    except DataMissing as exc:
        status, error = store.SKIPPED, str(exc)
    except (KeyboardInterrupt, SystemExit, UserError):
        raise  # bad input is not a failed cell: the CLI exits 2
    except Exception as exc:  # a failed cell is recorded and retried next run; the others still run
        status = store.FAILED
        error = f"{exc.__class__.__name__}: {exc}"
        tb = traceback.format_exc(limit=-4)
    outcome = outcome or CellOutcome(metrics={})
    record = {
        "key": cell.key,
        "suite": suite.name,
        "label": cell.label,
        "status": status,
        "error": error,
        "config": cell.config,
        "config_canonical": canonical_json(cell.config),
        "metrics": outcome.metrics,
        "sparsity": outcome.sparsity,
        "notes": outcome.notes,
        "artifacts": outcome.artifacts,
        "timings": {
            "seconds": round(time.time() - started, 3),
            "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        },
        "provenance": {
            **provenance(outcome.data),
            "model_location_is_local": ctx.model_ref.is_local,
            "num_processes": getattr(ctx.accelerator, "num_processes", 1),
        },
    }
    if status == store.FAILED:
        record["traceback"] = tb
    if outcome.arrays:
        record["predictions"] = predictions.predictions_path(ctx.results_dir, cell.key).name
        record[ARRAYS_KEY] = outcome.arrays  # popped and written beside the record by run_suite
    return record
