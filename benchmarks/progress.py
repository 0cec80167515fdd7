"""What a run shows while it works: a bar of cells, a nested bar of steps inside long cells, and one
combined bar for ``run --jobs`` fed by its workers.

Bars go to stderr only when stderr is a terminal (tqdm's ``disable=None``) and the user did not pass
``--no-progress``: logs and pipes get the summary lines, never carriage-return noise.

How the ``--jobs`` parent learns how far its workers are:

- finished cells from the results folder (a record written by this run, usually ``ok``): records are
  the truth everywhere else (a rerun skips exactly the ok ones), they count a cell whichever worker or
  other run finished it, a look costs one ``stat`` per unfinished cell, and they stay true when a
  worker dies;
- the fraction of the cell each worker is inside from a small progress file per worker (``--progress-file``,
  one atomic JSON write at most once a second): a record appears only when its cell ends, and one
  MNIST or fine-tuning cell can take minutes, so records alone would leave the bar and its time-left
  estimate standing still. Files need no reader thread in the parent (a pipe would) and a file that
  is half-written is never read (atomic replace).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import paths, store

# Seconds between two writes of a worker's progress file, and between two looks of the --jobs parent.
CHANNEL_INTERVAL = 1.0
POLL_INTERVAL = 0.5
# Seconds between two pace lines of a long block of steps where no bar is drawn (a log, a pipe): a job cut short
# by its time limit still says how fast its steps went and how far it got.
PACE_INTERVAL = 60.0
COMBINED_FORMAT = "{desc} |{bar}| {percentage:3.0f}% [{elapsed}<{remaining}]"


@dataclass
class _Reporting:
    """What the running process may show: set by the runner for the length of a run."""

    show: bool = False  # nested bars wanted (no --no-progress; the main process of an accelerate launch)
    channel: Path | None = None  # this --jobs worker's progress file
    cell_key: str | None = None  # the cell now running (named in the progress file)
    cell_label: str | None = None  # its label (named in pace lines)
    last_write: float = 0.0


_now = _Reporting()


def stderr_is_terminal() -> bool:
    """True when stderr is an interactive terminal (bars make sense there)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def bar(total: float, desc: str, show: bool = True, **options):
    """A tqdm bar on stderr, drawn only when ``show`` and stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=None if show else True, dynamic_ncols=True,
                mininterval=0.5, **options)


@contextlib.contextmanager
def reporting(show: bool, channel: Path | None = None) -> Iterator[None]:
    """Within the block, long cells draw nested bars (``show``) and report their fraction to ``channel``."""
    before = (_now.show, _now.channel, _now.cell_key, _now.cell_label)
    _now.show, _now.channel, _now.cell_key, _now.cell_label = show, channel, None, None
    try:
        yield
    finally:
        _now.show, _now.channel, _now.cell_key, _now.cell_label = before


@contextlib.contextmanager
def running_cell(key: str, label: str) -> Iterator[None]:
    """Mark ``key`` as the running cell (its progress file says 0 done until its steps report more)."""
    _now.cell_key, _now.cell_label = key, label
    _write_channel(key, label, 0.0, force=True)
    try:
        yield
    finally:
        _now.cell_key = _now.cell_label = None


@contextlib.contextmanager
def steps(total: int, desc: str, unit: str = "step", pace: bool = False) -> Iterator[Callable[[int], None]]:
    """Progress inside a cell: yields ``advance(n=1)``; draws a nested bar and feeds the --jobs channel. With
    ``pace``, where no bar is drawn, a line on stderr every PACE_INTERVAL seconds says how far and how fast."""
    inner = bar(total, desc, show=_now.show and total > 0, unit=unit, leave=False)
    done = 0
    started = last_line = time.monotonic()

    def advance(n: int = 1, force: bool = False) -> None:
        nonlocal done, last_line
        done += n
        inner.update(n)
        if _now.cell_key is not None:
            _write_channel(_now.cell_key, desc, done / total if total else 1.0, force)
        if pace and n and inner.disable and time.monotonic() - last_line >= PACE_INTERVAL:
            last_line = time.monotonic()
            named = f"{desc} ({_now.cell_label})" if _now.cell_label else desc  # set while a cell runs
            print(pace_line(named, done, total, last_line - started, unit), file=sys.stderr, flush=True)

    try:
        yield advance
    finally:
        inner.close()
    advance(0, force=True)  # the parent sees the block's end even between two timed writes


def pace_line(desc: str, done: int, total: int, seconds: float, unit: str = "step") -> str:
    """``desc: done/total steps, N ms a step, about S s left`` (the rate so far)."""
    each = seconds / max(done, 1)
    return (f"{desc}: {done}/{total} {unit}s in {seconds:.0f} s, {1e3 * each:.0f} ms a {unit}, about "
            f"{each * max(total - done, 0):.0f} s left")


def _write_channel(key: str, label: str, fraction: float, force: bool = False) -> None:
    """Tell the --jobs parent how far this worker's cell is (at most once per CHANNEL_INTERVAL)."""
    if _now.channel is None:
        return
    now = time.monotonic()
    if not force and now - _now.last_write < CHANNEL_INTERVAL:
        return
    _now.last_write = now
    try:
        store.write_json_atomic(_now.channel, {"key": key, "label": label, "fraction": min(1.0, fraction)})
    except OSError:
        pass  # progress is a courtesy: a full disk must not fail the cell


def _read_channel(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # not written yet (or gone): nothing in progress there


def _stamp(path: Path) -> tuple | None:
    """Which version of a record file is there (a rewrite is a new file: records are replaced atomically)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def follow_workers(workers: list, keys: list[str], results_dir: Path, channels: list[Path],
                   show: bool, name: str) -> list[int]:
    """Wait for every worker process; meanwhile (``show`` on a terminal) draw one bar: of the cells of
    ``keys`` without an ok record at the start, those whose record this run has written since (ok,
    failed or skipped: the cell is behind us), plus the running cells' fractions; elapsed and time
    left. Returns the workers' exit codes."""
    pending = [k for k in keys if not store.is_done(results_dir, k)]
    combined = bar(len(pending), f"{name}: 0/{len(pending)} cells", show=show and bool(pending), unit="cell",
                   bar_format=COMBINED_FORMAT)
    if combined.disable:
        return [w.wait() for w in workers]
    files = {k: paths.record_path(results_dir, k) for k in pending}
    before = {k: _stamp(path) for k, path in files.items()}  # an old failed record is not this run's work
    total, pending = len(pending), set(pending)
    try:
        while True:
            codes = [w.poll() for w in workers]  # first, so the last drawing counts every record written
            pending -= {k for k in pending if _stamp(files[k]) not in (None, before[k])}
            inside = sum(float(c.get("fraction", 0.0)) for c in map(_read_channel, channels) if c.get("key") in pending)
            combined.set_description_str(f"{name}: {total - len(pending)}/{total} cells", refresh=False)
            combined.n = min(total, total - len(pending) + inside)
            combined.refresh()
            if all(code is not None for code in codes):
                return codes
            time.sleep(POLL_INTERVAL)
    finally:
        combined.close()
