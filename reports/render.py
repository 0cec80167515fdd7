"""Turn a suite's records into a report: the suite kind picks the renderer; pages share one template."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import predictions, store
from benchmarks.config import Suite
from benchmarks.errors import UserError
from benchmarks.grid import read_grid
from benchmarks.registry import RENDERERS, UnknownName, register_renderer  # noqa: F401 - its old home
from reports.html import data_uri, html_document, template  # noqa: F401 - their old home

if TYPE_CHECKING:
    import pandas as pd

# fn(suite, frame, fmt, out) -> the report text; registered with benchmarks.registry.register_renderer
# (built-ins: reports/__init__.py imports them; plug-ins: entry-point group prunebench.reports).
Renderer = Callable[..., str]
FORMATS = ("md", "html")


def suite_frame(suite: Suite, results_dir: Path, grid: tuple | None = None) -> "pd.DataFrame":
    """The suite's records as a DataFrame, in grid order, with the expected cells and task columns in ``attrs``.

    The expected grid is the one the runner saved (benchmarks.grid): a report never expands a suite
    itself, which would import the suite kind and torch. ``grid`` = (cells, task columns) overrides it.
    """
    grid = grid if grid is not None else read_grid(results_dir, suite)
    if grid is None:
        raise UserError(f"{results_dir} holds no grid for suite {suite.name!r} as given; run "
                        f"`python -m benchmarks report` (it saves the grid) or `python -m benchmarks run` once")
    cells, columns = grid
    frame = store.records_frame(results_dir, [c.key for c in cells])
    frame.attrs["cells"] = cells
    frame.attrs["task_columns"] = columns
    frame.attrs["predictions"] = load_predictions(results_dir, frame.attrs["records"])
    return frame


def load_predictions(results_dir: Path, records: dict) -> dict:
    """Record key -> its per-example arrays, for the records that name a readable ``.npz``."""
    loaded = {key: predictions.load(results_dir, record) for key, record in records.items()}
    return {key: arrays for key, arrays in loaded.items() if arrays is not None}


def render_suite(suite: Suite, results_dir: Path, fmt: str = "md", out: Path | None = None,
                 grid: tuple | None = None, baselines: list[str] | None = None) -> str:
    """Render ``suite``'s leaderboard from ``results_dir`` as Markdown or HTML; write ``out`` if given.

    The expected cells come from the grid saved in ``results_dir`` (or ``grid`` = (cells, task columns));
    ``baselines`` are the methods the comparison section holds each row against (reports.compare)."""
    if fmt not in FORMATS:
        raise UserError(f"report format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    try:
        renderer = RENDERERS.get(suite.kind)
    except UnknownName as exc:
        if exc.broken:
            raise
        raise UserError(f"no report renderer for suite kind {suite.kind!r}; known: "
                        f"{', '.join(RENDERERS.names())}") from None
    frame = suite_frame(suite, results_dir, grid)
    frame.attrs["baselines"] = list(baselines or [])
    text = renderer(suite, frame, fmt, out)
    if out is not None:
        store.write_text_atomic(Path(out), text)
    return text
