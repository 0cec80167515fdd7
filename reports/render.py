"""Turn a suite's records into a report: the suite kind picks the renderer; pages share one template."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import paths, predictions, store
from benchmarks.config import Suite
from benchmarks.errors import RunAborted, UserError
from benchmarks.grid import read_grid
from benchmarks.registry import RENDERERS, UnknownName, register_renderer, renderer_formats  # noqa: F401 - its old home
from reports.html import data_uri, html_document, template  # noqa: F401 - their old home

if TYPE_CHECKING:
    import pandas as pd

# fn(suite, frame, fmt, out) -> the report text; registered with benchmarks.registry.register_renderer
# (built-ins: reports/__init__.py imports them; plug-ins: entry-point group prunebench.reports).
Renderer = Callable[..., str]
# csv: the leaderboard as one tidy table, claims-csv: its claims section (reports.export), prune-finetune suites
FORMATS = ("md", "html", "csv", "claims-csv")
# --out's extension decides the format unless --format is given (and then they must agree).
FORMAT_OF_SUFFIX = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".csv": "csv"}
# What numpy raises on a damaged .npz: not a zip (BadZipFile), empty (EOFError), a damaged member (zlib.error,
# ValueError), unreadable (OSError).
_DAMAGED_ARRAYS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def report_format(fmt: str | None, out: Path | None) -> str:
    """The report's format: ``fmt`` if given, else the one ``out``'s extension names, else Markdown.

    An explicit format that contradicts the extension, or an unknown extension without ``fmt``, is bad input."""
    suffix = Path(out).suffix.lower() if out is not None else ""
    implied = FORMAT_OF_SUFFIX.get(suffix)
    if fmt is not None and implied is not None and fmt != implied:
        raise UserError(f"--format {fmt} contradicts --out {out} (a {suffix} file is {implied}); drop --format, "
                        f"or name the file {Path(out).with_suffix('.' + fmt)}")
    if fmt is None and suffix and implied is None:
        raise UserError(f"--out {out}: no report format is known for {suffix} files; name it .md, .html or .csv, "
                        "or pass --format md|html|csv")
    return fmt or implied or "md"


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
    frame.attrs["array_problems"] = array_problems(results_dir, frame.attrs["records"])
    return frame


def load_arrays(results_dir: Path, record: dict) -> tuple[dict | None, str | None]:
    """(a record's per-example arrays, None), or (None, why they cannot be used); (None, None) when it names none.

    Never raises for a missing or damaged file, and never reads outside records/."""
    name = record.get("predictions")
    if not name:
        return None, None
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".npz"):
        return None, f"names per-example arrays {name!r}, which is not a .npz file name inside records/"
    path = paths.records_dir(results_dir) / name
    if path.exists() and not path.is_file():
        return None, f"per-example arrays records/{name} are not a file"
    if not path.is_file():
        return None, f"per-example arrays records/{name} are missing"
    try:
        arrays = predictions.load(results_dir, record)
    except _DAMAGED_ARRAYS as exc:
        return None, f"per-example arrays records/{name} are unreadable ({exc.__class__.__name__})"
    if arrays is None:
        return None, f"per-example arrays records/{name} are unreadable (not a .npz archive of arrays)"
    return arrays, None


def load_predictions(results_dir: Path, records: dict) -> dict:
    """Record key -> its per-example arrays, for the records that name a readable ``.npz``."""
    loaded = {key: load_arrays(results_dir, record)[0] for key, record in records.items()}
    return {key: arrays for key, arrays in loaded.items() if arrays is not None}


def array_problems(results_dir: Path, records: dict) -> dict[str, str]:
    """Record key -> why the arrays an ok record names cannot be used (reports say so in a footnote)."""
    problems = {key: load_arrays(results_dir, record)[1] for key, record in records.items()
                if record.get("status") == "ok"}
    return {key: why for key, why in problems.items() if why}


def render_suite(suite: Suite, results_dir: Path, fmt: str = "md", out: Path | None = None,
                 grid: tuple | None = None, baselines: list[str] | None = None) -> str:
    """Render ``suite``'s leaderboard from ``results_dir`` as Markdown, HTML or CSV; write ``out`` if given.

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
    if fmt == "claims-csv" and fmt not in renderer_formats(renderer):
        raise UserError(f"suite {suite.name!r} (kind {suite.kind}) has no claims table: the paper's claims are "
                        "checked on prune-finetune leaderboards; drop --table claims")
    if fmt not in renderer_formats(renderer):
        raise UserError(f"suite {suite.name!r} (kind {suite.kind}) has no {fmt} report; use --format "
                        f"{' or '.join(renderer_formats(renderer))}")
    frame = suite_frame(suite, results_dir, grid)
    frame.attrs["baselines"] = list(baselines or [])
    if out is None:
        try:  # an HTML page still draws its plots in a temporary folder
            return renderer(suite, frame, fmt, None)
        except OSError as exc:
            raise RunAborted(f"could not draw the report's plots in a temporary folder ({exc.strerror or exc}); "
                             "free some space in it (TMPDIR), or pass --format md") from None
    return write_report(Path(out), lambda staged: renderer(suite, frame, fmt, staged))


def write_report(out: Path, render: Callable[[Path], str]) -> str:
    """Write a report and its plots folder whole or not at all; return the report's text.

    ``render(path)`` writes its plots beside ``path`` and returns the text. It renders into a staging folder
    beside ``out``; the plots folder (``<stem>_plots``) and the report then replace the old ones by renames.
    A fault (disk full) removes the staging folder and any folder made for ``out``: RunAborted, one line."""
    out = Path(out)
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    staging = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        staged = staging / out.name
        text = render(staged)
        store.write_text_atomic(staged, text)
        staged_plots = paths.report_paths(staged)["plots"]
        if staged_plots.is_dir():
            _replace_folder(staged_plots, paths.report_paths(out)["plots"], staging / ".old_plots")
        os.replace(staged, out)
        return text
    except OSError as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            staging = None
        for folder in made:  # deepest first: only the folders this call made, and only while empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise RunAborted(f"could not write the report {out} ({exc.strerror or exc}); nothing was written: free "
                         "some space or fix the folder's permissions, or choose another --out") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(new: Path, target: Path, trash: Path) -> None:
    """Put folder ``new`` at ``target`` by renames; an old ``target`` goes to ``trash`` (removed by the caller)."""
    if target.exists():
        os.replace(target, trash)
    try:
        os.replace(new, target)
    except OSError:
        if trash.exists():
            os.replace(trash, target)  # the old plots stay with the old report
        raise
