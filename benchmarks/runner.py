"""The runner: expand a suite, skip finished cells, run the rest, write one record per cell."""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import paths, predictions, stacking, store
from benchmarks import preflight as preflight_checks
from benchmarks import progress as progress_bars
from benchmarks.claims import LEFT_TO_OTHERS, live_claim, poll_seconds
from benchmarks.config import Cell, Suite, canonical_json
from benchmarks.context import RunContext
from benchmarks.errors import DataMissing, RunAborted, UserError
from benchmarks.grid import write_grid
from benchmarks.identity import cell_code, stale_reasons
from benchmarks.kinds.base import CellOutcome
from benchmarks.models import check_hub_model, resolve_model
from benchmarks.provenance import provenance
from benchmarks.registry import KINDS, METHODS, TASKS, UnknownName, method_spec
from benchmarks.schema import validate_record

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
    claimed: list = field(default_factory=list)  # (label, owner) of cells left to another live run, no record yet
    by_others: int = 0  # cells that another run finished while this one waited for them (--wait)
    stale: list = field(default_factory=list)  # (label, [reasons]) of ok records computed by other code

    @property
    def exit_code(self) -> int:
        """1 when a cell failed, else LEFT_TO_OTHERS when cells were left to other runs without records, else 0."""
        if self.failed:
            return 1
        return LEFT_TO_OTHERS if self.claimed else 0


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
    suite_kind = KINDS.get(suite.kind)()
    cells = suite_kind.cells(suite)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise UserError(f"suite {suite.name!r} lists the same cell twice; remove the duplicate row, task or seed")
    if shard:
        i, n = shard
        cells = cells[i::n]
    return cells


def task_columns(cells: list[Cell]) -> dict[str, dict[str, tuple[str, bool]]]:
    """{task: {column title: (metric, higher is better)}} for the registered tasks of the cells (for reports)."""
    out = {}
    for task in dict.fromkeys(c.config["task"] for c in cells if "task" in c.config):
        if task in TASKS:
            spec = TASKS.get(task)
            columns = getattr(spec, "columns", None)
            out[task] = dict(columns) if columns else {task.upper(): (spec.headline, spec.higher_is_better)}
    return out


def save_grid(suite: Suite, results_dir: Path, cells: list[Cell] | None = None) -> list[Cell]:
    """Expand ``suite`` (unless its full grid is given) and save it in ``results_dir`` for the reports."""
    cells = expand(suite) if cells is None else cells
    write_grid(results_dir, suite, cells, task_columns(cells))
    return cells


def preflight(suite: Suite, data_dir: Path | None, shard: tuple[int, int] | None = None,
              results_dir: Path | None = None) -> list[Cell]:
    """The suite's cells (this shard's), after every check of the input that can run before a cell does:
    grid, methods, model folder, that a hub model is cached or reachable, data files and (given ``results_dir``)
    that the results folder is writable. Raises UserError (exit 2) before anything is written."""
    cells = expand(suite, shard)  # resolves the model: a folder that does not load is bad input here
    if getattr(KINDS.get(suite.kind), "loads_pretrained", False):  # a hub model neither cached nor reachable
        check_hub_model(resolve_model(suite.model, suite.model_revision))
    check_methods(cells)
    check_data(suite, KINDS.get(suite.kind)(), data_dir)  # a malformed data file is bad input
    check_model_fit(suite, cells, data_dir)
    if results_dir is not None:
        check_results_writable(results_dir)
    return cells


def check_model_fit(suite: Suite, cells: list[Cell], data_dir: Path | None) -> None:
    """N:M patterns and calibration windows checked against the resolved model's shapes (benchmarks.preflight)."""
    if not any(_nm_pattern(c) or "calibration" in c.config for c in cells):
        return  # nothing to check: the model's config is not even read
    shape = preflight_checks.model_shape(resolve_model(suite.model, suite.model_revision))
    preflight_checks.check_pattern_fit(cells, shape, suite.model)
    preflight_checks.check_calibration(cells, shape, data_dir)


def _nm_pattern(cell: Cell) -> bool:
    options = cell.config.get("options")
    return isinstance(options, dict) and options.get("pattern") not in (None, "unstructured")


def check_results_writable(results_dir: Path) -> None:
    """Bad input when records cannot be written under ``results_dir`` (read-only, full, or a file in the way)."""
    try:
        store.check_writable(paths.records_dir(results_dir))
    except OSError as exc:
        raise UserError(f"results folder {results_dir} is not writable ({exc.strerror or exc}); "
                        f"free some space, fix its permissions or pass --results another folder") from None


# Where each task's or suite kind's files sit in a mirror laid out like ../shared/data (for the check
# that an explicitly given --data-dir holds any of them). Kinds and tasks not listed are not checked.
DATA_GLOBS = {
    "mrpc": "glue/MRPC/*.tsv", "stsb": "glue/STS-B/*.tsv", "sst2": "glue/SST-2/*.tsv",
    "qnli": "glue/QNLI/*.tsv", "mnli": "glue/MNLI*/*.tsv", "mlm": "wikitext-2-raw/wiki.*.raw",
    "mnist-correlations": "mnist/*-ubyte*", "mnist-recipes": "mnist/*-ubyte*", "mnist-init": "mnist/*-ubyte*",
}


def check_data_present(suite: Suite, data_dir: Path) -> None:
    """Bad input when a data folder the user named holds none of the files the suite reads."""
    names = [suite.kind] if suite.kind in DATA_GLOBS else [t for t in suite.tasks if isinstance(t, str)]
    globs = [DATA_GLOBS[n] for n in names if n in DATA_GLOBS]
    if not globs or len(globs) < len(names):
        return  # a kind or task this table does not know: its cells say what they miss
    if not any(next(Path(data_dir).glob(g), None) for g in globs):
        raise UserError(f"--data-dir {data_dir} holds none of the files suite {suite.name!r} reads (e.g. "
                        f"{globs[0]}); point it at a mirror laid out like ../shared/data, or drop --data-dir")


def count_done(cells: list[Cell], results_dir: Path, keep_stale: bool = False) -> int:
    """How many of ``cells`` have a readable ok record computed by today's code (or any, with ``keep_stale``)."""
    todo, _, _ = _unfinished(cells, results_dir, keep_stale)
    return len(cells) - len(todo)


def _make_accelerator():
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    # Batches are copied to a GPU without waiting for the queued work (their loaders pin them on CUDA).
    try:
        config = DataLoaderConfiguration(non_blocking=True)
    except TypeError:  # an accelerate before non_blocking (0.30): copies wait, numbers are the same
        return Accelerator()
    return Accelerator(dataloader_config=config)


def run_suite(suite: Suite, results_dir: Path, data_dir: Path | None, shard: tuple[int, int] | None = None,
              progress: bool = True, accelerator=None, progress_file: Path | None = None,
              keep_stale: bool = False, wait: bool = False, stack: int = 1) -> RunSummary:
    """Run every unfinished cell of ``suite``; return what happened.

    A cell is finished when it has a readable ``ok`` record. Failed and skipped cells run again
    (skipped ones cost nothing when their data is still missing); unreadable records are named
    in a warning on stderr and their cells rerun, the new record replacing the file atomically.
    Each cell is claimed (``store.claim_cell``) while it runs, so a second run on the same folder
    skips it instead of computing it twice; with ``wait`` this run then waits until those cells have records,
    computing any whose claim goes stale (see benchmarks/claims.py), else it leaves them (exit status
    LEFT_TO_OTHERS). An OSError while writing a record raises RunAborted. ``stack`` > 1 fine-tunes up to that
    many cells of one task and seed as one stacked model (benchmarks/stacking.py; same records).
    An ok record whose code identity (``provenance.code``: method and task versions and source hashes,
    benchmarks/identity.py) differs from today's is stale: named on stderr and rerun, or with
    ``keep_stale`` kept and flagged (``record["stale"]`` says why; the board marks it).
    ``progress`` draws the bar of cells and long cells' nested bars (on a terminal only); a ``run --jobs``
    worker is given ``progress_file`` instead, where it reports how far its current cell is.
    """
    suite_kind = KINDS.get(suite.kind)()
    cells = preflight(suite, data_dir, shard, results_dir)
    accelerator = accelerator or _make_accelerator()
    ctx = RunContext(data_dir, Path(results_dir), accelerator, resolve_model(suite.model, suite.model_revision))
    if stack > 1:
        if getattr(accelerator, "num_processes", 1) > 1:
            raise UserError(f"--stack {stack} trains stacked cells in one process; drop --stack under accelerate "
                            f"launch with several processes (or launch one)")
        ctx.stack = stacking.StackSession(stack)
    summary = RunSummary(total=len(cells))
    todo, summary.corrupt, summary.stale = _unfinished(cells, results_dir, keep_stale)
    summary.skipped_done = len(cells) - len(todo)
    if accelerator.is_main_process:
        _note_stale(summary.stale, keep_stale)
        _flag_stale(cells, results_dir, keep_stale)
    if summary.corrupt and accelerator.is_main_process:
        print(f"warning: {len(summary.corrupt)} unreadable record(s) ignored and rerun: "
              f"{', '.join(summary.corrupt)} (under {paths.records_dir(results_dir)})", file=sys.stderr)
    # Claims need one process deciding for all: with several (accelerate launch) every process runs every cell.
    claims = getattr(accelerator, "num_processes", 1) == 1
    # Folders this run creates (for claims); removed again if bad input stops it before any record.
    created = [p for p in (paths.records_dir(results_dir), Path(results_dir)) if not p.exists()]
    bar = _progress(todo, progress and accelerator.is_main_process, summary)
    # Everything imported so far lives for the whole run: move it out of the collector's sight so the
    # gc.collect() that accelerate's free_memory() runs after each cell scans only the cell's objects.
    gc.freeze()
    main = accelerator.is_main_process
    try:
        with progress_bars.reporting(progress and main, progress_file if main else None):
            left = _run_cells(todo, suite_kind, ctx, suite, results_dir, summary, claims, bar, keep_stale)
            if left and wait:
                left = _wait_for_others(left, suite_kind, ctx, suite, results_dir, summary, bar, keep_stale)
            summary.claimed = [(cell.label, store.claimed_by(results_dir, cell.key)) for cell in left]
    except (UserError, UnknownName):
        for folder in created:  # bad input found inside a cell: leave no empty folder behind
            _remove_empty(folder)
        raise
    finally:
        gc.unfreeze()  # a library caller (tests, notebooks) gets its collector back as it was
        if bar is not None:
            bar.close()
    if accelerator.is_main_process:  # what `report` reads (every shard writes the same); after the cells, so
        try:                            # bad input found in a cell leaves no grid behind either
            save_grid(suite, results_dir, None if shard else cells)
        except OSError as exc:
            raise RunAborted(f"cannot save the suite's grid under {results_dir} ({exc.strerror or exc}); "
                             f"free some space or fix the folder's permissions, then rerun") from None
    if summary.claimed and accelerator.is_main_process:
        print(f"note: {len(summary.claimed)} cell(s) left to other runs that claim them and have no record yet: "
              f"{', '.join(label for label, _ in summary.claimed)}; exit status {LEFT_TO_OTHERS} (rerun with --wait "
              f"to wait for them)", file=sys.stderr)
    return summary


# What _claim found: the cell is this run's to compute, another run holds it, or it has an ok record already.
MINE, HELD, DONE = "mine", "held", "done"


def _run_cells(todo: list[Cell], suite_kind, ctx: RunContext, suite: Suite, results_dir: Path, summary: RunSummary,
               claims: bool, bar, keep_stale: bool = False, waiting: bool = False) -> list[Cell]:
    """Run ``todo`` one cell after another (claiming each when ``claims``), advancing ``bar``; return the
    cells left to other runs that hold their claims. ``waiting``: these are cells other runs held before, so one
    found done counts as done by them, not as already done when this run started."""
    left = []
    stack = getattr(ctx, "stack", None)
    for group in stacking.plan_groups(todo, stack.size if stack else 1):
        mine = []
        for cell in group:
            if bar is not None:
                bar.set_postfix_str(cell.label, refresh=False)
            state = _claim(results_dir, cell, keep_stale) if claims else MINE
            if state == HELD:
                left.append(cell)
                continue
            if state == MINE:
                mine.append(cell)
                continue
            if waiting:
                summary.by_others += 1
            else:
                summary.skipped_done += 1
            if bar is not None:
                bar.update(1)
        _run_group(mine, suite_kind, ctx, suite, results_dir, summary, claims, bar)
    return left


def _run_group(cells: list[Cell], suite_kind, ctx: RunContext, suite: Suite, results_dir: Path, summary: RunSummary,
               claims: bool, bar) -> None:
    """Run cells this run holds (trained as one stack first when there are several and ``--stack`` is on);
    every claim is released whatever happens."""
    pending = list(cells)
    try:
        if len(cells) > 1 and getattr(ctx, "stack", None) is not None:
            _train_stacked(cells, suite_kind, ctx)
        while pending:
            cell = pending.pop(0)
            _run_claimed(suite_kind, cell, ctx, suite, results_dir, summary, claims)
            if bar is not None:
                bar.update(1)
    finally:
        if claims:
            for cell in pending:
                store.release_cell(results_dir, cell.key)
        if getattr(ctx, "stack", None) is not None:
            ctx.stack.trained.clear()  # a cell that stopped before its training step leaves nothing behind


def _train_stacked(cells: list[Cell], suite_kind, ctx: RunContext) -> None:
    """Run each cell up to its training step (capture), then train the captured models as stacks."""
    session = ctx.stack
    session.capturing = True
    try:
        for cell in cells:
            session.current = cell.key
            try:
                suite_kind.run(cell, ctx)
            except stacking.Captured:
                pass
            except Exception:  # noqa: BLE001 - the cell runs again alone, and its record says what went wrong
                pass
    finally:
        session.capturing, session.current = False, None
    stacking.train_jobs(session, ctx.accelerator)


def _run_claimed(suite_kind, cell: Cell, ctx: RunContext, suite: Suite, results_dir: Path, summary: RunSummary,
                 claims: bool) -> None:
    """Run a cell this run holds and write its record; release the claim whatever happens."""
    session = getattr(ctx, "stack", None)
    try:
        if session is not None:
            session.current = cell.key  # its training step replays the stack's result, if it has one
        with progress_bars.running_cell(cell.key, cell.label):
            _run_and_write(suite_kind, cell, ctx, suite, results_dir, summary)
    finally:
        if session is not None:
            session.current = None
        if claims:
            store.release_cell(results_dir, cell.key)


def _wait_for_others(left: list[Cell], suite_kind, ctx: RunContext, suite: Suite, results_dir: Path,
                     summary: RunSummary, bar, keep_stale: bool = False) -> list[Cell]:
    """Wait until the cells other runs hold have records: every poll, a cell with an ok record is done, and
    one whose claim is gone or stale (its run died, its lease expired) is claimed and computed here.
    A failed or skipped record of the other run is retried here, as any run retries them."""
    print(f"note: waiting for {len(left)} cell(s) that other runs compute: {', '.join(c.label for c in left)} "
          f"(checking every {poll_seconds():g} s; --no-wait leaves them)", file=sys.stderr)
    while left:
        time.sleep(poll_seconds())
        left = _run_cells(left, suite_kind, ctx, suite, results_dir, summary, True, bar, keep_stale, waiting=True)
    return left


def _claim(results_dir: Path, cell: Cell, keep_stale: bool = False) -> str:
    """Claim ``cell``: MINE to compute, HELD by another live run, or DONE (an ok record that counts appeared)."""
    if _done(results_dir, cell, keep_stale):
        return DONE
    try:
        claimed = store.claim_cell(results_dir, cell.key)
    except OSError as exc:
        raise RunAborted(f"cannot claim a cell under {paths.records_dir(results_dir)} ({exc.strerror or exc}); "
                         f"free some space or fix the folder's permissions, then rerun") from None
    if not claimed:
        return HELD
    if _done(results_dir, cell, keep_stale):  # the other run finished it before our claim
        store.release_cell(results_dir, cell.key)
        return DONE
    return MINE


def _run_and_write(suite_kind, cell: Cell, ctx: RunContext, suite: Suite, results_dir: Path,
                   summary: RunSummary) -> None:
    """Run one cell, count it, and write its record (main process only)."""
    record = run_cell(suite_kind, cell, ctx, suite)
    arrays = record.pop(ARRAYS_KEY, None)
    record = _valid(record)
    summary.ran += 1
    if record["status"] == store.OK:
        summary.ok += 1
    elif record["status"] == store.SKIPPED:
        summary.data_skipped.append((cell.label, record["error"]))
    else:
        summary.failed.append((cell.label, record["error"]))
    if ctx.accelerator.is_main_process:  # only the main process writes records
        try:
            if arrays and record["status"] == store.OK:  # the arrays first: a record never names a missing file
                store.write_bytes_atomic(predictions.predictions_path(results_dir, cell.key),
                                         predictions.to_bytes(arrays))
            store.write_record(results_dir, record)
        except OSError as exc:  # the atomic write left the old file (or none): nothing is corrupt
            raise RunAborted(f"could not write the record of {cell.label} under {paths.records_dir(results_dir)} "
                             f"({exc.strerror or exc}); free some space or fix the folder, then rerun "
                             f"(finished cells are kept)") from None
    ctx.accelerator.wait_for_everyone()


def _valid(record: dict) -> dict:
    """The record, or a failed record saying why when the cell produced one that does not fit the schema.

    What is checked is the record as it will read back from disk (JSON, non-JSON values as strings).
    """
    try:
        validate_record(json.loads(json.dumps(record, default=str)))
        return record
    except ValueError as exc:
        return {**record, "status": store.FAILED, "error": f"the cell's record does not fit the schema: {exc}",
                "metrics": {}, "traceback": record.get("traceback") or ""}


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty or already gone


def _unfinished(cells: list[Cell], results_dir: Path, keep_stale: bool = False) -> tuple[list[Cell], list[str], list]:
    """Cells without a readable ok record of today's code (any code with ``keep_stale``), the names of
    unreadable record files among them, and (label, reasons) of the stale ok records."""
    todo, corrupt, stale = [], [], []
    for cell in cells:
        state = store.record_state(results_dir, cell.key)
        if state == store.OK:
            reasons = staleness(results_dir, cell)
            if reasons:
                stale.append((cell.label, reasons))
            if keep_stale or not reasons:
                continue
        if state == store.CORRUPT:
            corrupt.append(_corrupt_name(results_dir, cell.key))
        todo.append(cell)
    return todo, corrupt, stale


def staleness(results_dir: Path, cell: Cell) -> list[str]:
    """Why the cell's ok record was computed by other code than today's (empty: it was not, or no record)."""
    try:
        record = store.read_record(paths.record_path(results_dir, cell.key))
    except (ValueError, OSError):
        return []
    return stale_reasons((record.get("provenance") or {}).get("code"), cell_code(cell.config))


# What ``run --dry-run`` says of a cell (plan_cells): the first two are skipped, the others run (or, held, wait).
PLAN_DONE, PLAN_KEPT, PLAN_STALE, PLAN_HELD = "done", "done (stale, kept)", "stale: reruns", "held by another run"


def plan_cells(suite: Suite, results_dir: Path, data_dir: Path | None, shard: tuple[int, int] | None = None,
               keep_stale: bool = False) -> list[tuple[Cell, str]]:
    """What ``run`` would do with each of the suite's cells (this shard's), computing and writing nothing.

    The input is checked as ``run`` checks it (bad input raises UserError) except that the results folder is
    not probed for writing. Each cell's state: done, done (stale, kept), stale: reruns, failed / skipped /
    corrupt / missing (all run), or held by another run (a live claim: ``run`` waits for it or leaves it)."""
    out = []
    for cell in preflight(suite, data_dir, shard):
        state = store.record_state(results_dir, cell.key)
        if state == store.OK:
            state = PLAN_DONE if not staleness(results_dir, cell) else PLAN_KEPT if keep_stale else PLAN_STALE
        elif live_claim(results_dir, cell.key) is not None:
            state = PLAN_HELD
        out.append((cell, state))
    return out


def _done(results_dir: Path, cell: Cell, keep_stale: bool) -> bool:
    """The cell has an ok record that counts: of today's code, or of any with ``keep_stale``."""
    if store.record_state(results_dir, cell.key) != store.OK:
        return False
    return keep_stale or not staleness(results_dir, cell)


def _note_stale(stale: list, keep_stale: bool) -> None:
    """One stderr line: how many cells are stale and why (grouped by reason), and what happens to them."""
    if not stale:
        return
    why = Counter(reason for _, reasons in stale for reason in reasons)
    text = "; ".join(reason + (f" ({n} cells)" if n > 1 and len(why) > 1 else "") for reason, n in why.items())
    then = ("kept (--keep-stale) and marked stale on the board" if keep_stale
            else "rerunning them (--keep-stale keeps them)")
    print(f"{len(stale)} cell{'s' if len(stale) > 1 else ''} stale: {text}; {then}", file=sys.stderr)


def _flag_stale(cells: list[Cell], results_dir: Path, keep_stale: bool) -> None:
    """Keep each ok record's ``stale`` flag true to today's code: set (with the reason) on a stale record kept
    by ``keep_stale``, dropped from one that is current again. A rerun record starts without it."""
    for cell in cells:
        path = paths.record_path(results_dir, cell.key)
        try:
            record = store.read_record(path)
        except (ValueError, OSError):
            continue
        if record["status"] != store.OK:
            continue
        reasons = staleness(results_dir, cell)
        flag = "; ".join(reasons) if reasons and keep_stale else None
        if record.get("stale") != flag and (flag or "stale" in record):
            record = {k: v for k, v in record.items() if k != "stale"}
            if flag:
                record["stale"] = flag
            try:
                store.write_record(results_dir, record)
            except OSError as exc:
                raise RunAborted(f"could not flag the stale record of {cell.label} under {path.parent} "
                                 f"({exc.strerror or exc}); fix the folder, then rerun") from None


def _corrupt_name(results_dir: Path, key: str) -> str:
    """The record file's name, with the reason when the record reads but its per-example arrays do not."""
    path = paths.record_path(results_dir, key)
    try:
        problem = predictions.problem(results_dir, store.read_record(path))
    except (ValueError, OSError):
        return path.name
    return f"{path.name} ({problem})" if problem else path.name


def check_methods(cells: list[Cell]) -> None:
    """Ask each method's ``validate(sparsity, options)`` metadata about its cells' arguments (bad input: exit 2)."""
    seen = set()
    for cell in cells:
        method = cell.config.get("method")
        if not isinstance(method, str) or method not in METHODS:
            continue
        args = (method, cell.config.get("sparsity"), canonical_json(cell.config.get("options") or {}))
        validate = method_spec(method).validate
        if validate is None or args in seen:
            continue
        seen.add(args)
        try:
            validate(cell.config.get("sparsity"), dict(cell.config.get("options") or {}))
        except ValueError as exc:
            raise UserError(f"row {cell.config.get('label', method)!r}: {exc}") from None


def check_data(suite: Suite, suite_kind, data_dir: Path | None) -> None:
    """Read the suite's local data files up front; a malformed one raises UserError naming it.

    A suite kind may define ``check_data(suite, data_dir)``; otherwise every task of the suite
    that has ``check_data(data_dir)`` is asked.
    """
    check = getattr(suite_kind, "check_data", None)
    if check is not None:
        check(suite, data_dir)
        return
    for name in suite.tasks:
        if isinstance(name, str) and name in TASKS:
            task_check = getattr(TASKS.get(name), "check_data", None)
            if task_check is not None:
                task_check(data_dir)


def _progress(cells: list[Cell], show: bool, summary: RunSummary):
    """A tqdm bar on stderr (a terminal only): cell i of n (n counts cells already done), rate and time left."""
    if not show or not cells or not progress_bars.stderr_is_terminal():
        return None
    desc = f"cells ({summary.skipped_done} already done)" if summary.skipped_done else "cells"
    return progress_bars.bar(summary.total, desc, initial=summary.skipped_done, unit="cell")


def run_cell(suite_kind, cell: Cell, ctx: RunContext, suite: Suite) -> dict:
    """Run one cell and build its record; errors become a failed record, missing data a skipped one."""
    started = time.time()
    outcome, status, error = None, store.OK, None
    try:
        outcome = suite_kind.run(cell, ctx)
    except DataMissing as exc:
        status, error = store.SKIPPED, str(exc)
    except (KeyboardInterrupt, SystemExit, UserError, UnknownName):
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
            "code": cell_code(cell.config),  # what staleness is judged by (benchmarks/identity.py)
            "num_processes": getattr(ctx.accelerator, "num_processes", 1),
        },
    }
    if status == store.FAILED:
        record["traceback"] = tb
    if outcome.arrays:
        record["predictions"] = predictions.predictions_path(ctx.results_dir, cell.key).name
        record[ARRAYS_KEY] = outcome.arrays  # popped and written beside the record by run_suite
    return record
