"""Turn a suite's records into a report: the suite kind picks the renderer."""

from __future__ import annotations

from pathlib import Path

from benchmarks import store
from benchmarks.config import Suite

RENDERERS: dict = {}


def register_renderer(kind: str):
    """Decorator: ``fn(suite, frame, fmt, out) -> str`` renders records of suite kind ``kind``."""
    def decorator(fn):
        RENDERERS[kind] = fn
        return fn
    return decorator


def suite_frame(suite: Suite, results_dir: Path):
    """The suite's records as a DataFrame, in grid order, with the expected cells in ``attrs``."""
    from benchmarks.runner import expand

    cells = expand(suite)
    frame = store.records_frame(results_dir, [c.key for c in cells])
    frame.attrs["cells"] = cells
    return frame


def render_suite(suite: Suite, results_dir: Path, fmt: str = "md", out: Path | None = None) -> str:
    """Render ``suite``'s leaderboard from ``results_dir`` as Markdown or HTML; write ``out`` if given."""
    from reports import leaderboard  # noqa: F401  (registers the prune-finetune renderer)

    frame = suite_frame(suite, results_dir)
    renderer = RENDERERS.get(suite.kind)
    if renderer is None:
        raise KeyError(f"no renderer for suite kind {suite.kind!r}")
    text = renderer(suite, frame, fmt, out)
    if out is not None:
        store.write_text_atomic(Path(out), text)
    return text
