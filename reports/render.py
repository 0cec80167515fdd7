"""Turn a suite's records into a report: the suite kind picks the renderer."""

from __future__ import annotations

from pathlib import Path

from benchmarks import store
from benchmarks.config import Suite

RENDERERS: dict = {}
# Modules whose import registers a renderer for a suite kind (one per kind family).
RENDERER_MODULES = ("reports.leaderboard", "reports.mnist")


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
    import importlib

    for module in RENDERER_MODULES:
        importlib.import_module(module)
    frame = suite_frame(suite, results_dir)
    renderer = RENDERERS.get(suite.kind)
    if renderer is None:
        raise KeyError(f"no renderer for suite kind {suite.kind!r}")
    text = renderer(suite, frame, fmt, out)
    if out is not None:
        store.write_text_atomic(Path(out), text)
    return text


def html_document(title: str, body_html: str) -> str:
    """Wrap an HTML fragment in one self-contained HTML5 page (inline CSS, no network fetches)."""
    import html

    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}</style>\n"
        f"</head>\n<body>\n{body_html}\n</body>\n</html>\n"
    )
