"""Turn a suite's records into a report: the suite kind picks the renderer; pages share one template."""

from __future__ import annotations

import base64
import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from benchmarks import store
from benchmarks.config import Suite
from benchmarks.errors import UserError

if TYPE_CHECKING:
    import jinja2
    import pandas as pd

# fn(suite, frame, fmt, out) -> the report text
Renderer = Callable[..., str]
RENDERERS: dict[str, Renderer] = {}
# Modules whose import registers a renderer for a suite kind (one per kind family).
RENDERER_MODULES = ("reports.leaderboard", "reports.bert_correlations", "reports.mnist")
FORMATS = ("md", "html")


def register_renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Decorator: ``fn(suite, frame, fmt, out) -> str`` renders records of suite kind ``kind``."""
    def decorator(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        return fn
    return decorator


@functools.lru_cache(maxsize=1)
def _environment() -> "jinja2.Environment":
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
    )


def template(name: str) -> "jinja2.Template":
    """A jinja2 template from reports/templates (autoescaped; missing variables are errors)."""
    return _environment().get_template(name)


def html_document(title: str, body_html: str) -> str:
    """Wrap an HTML fragment in one self-contained HTML5 page (inline CSS, sortable tables, no network fetches)."""
    from markupsafe import Markup

    return template("page.html.j2").render(title=title, body=Markup(body_html))


def data_uri(path: Path, mime: str = "image/png") -> str:
    """A file as a data: URI, so an HTML page carries its images inside itself."""
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def suite_frame(suite: Suite, results_dir: Path) -> "pd.DataFrame":
    """The suite's records as a DataFrame, in grid order, with the expected cells in ``attrs``."""
    from benchmarks.runner import expand

    cells = expand(suite)
    frame = store.records_frame(results_dir, [c.key for c in cells])
    frame.attrs["cells"] = cells
    frame.attrs["predictions"] = load_predictions(results_dir, frame.attrs["records"])
    return frame


def load_predictions(results_dir: Path, records: dict) -> dict:
    """Record key -> its per-example arrays, for the records that name a readable ``.npz``."""
    from benchmarks import predictions

    loaded = {key: predictions.load(results_dir, record) for key, record in records.items()}
    return {key: arrays for key, arrays in loaded.items() if arrays is not None}


def load_renderers() -> None:
    """Import the modules that register renderers (they import this module, so not at import time)."""
    for module in RENDERER_MODULES:
        importlib.import_module(module)


def render_suite(suite: Suite, results_dir: Path, fmt: str = "md", out: Path | None = None) -> str:
    """Render ``suite``'s leaderboard from ``results_dir`` as Markdown or HTML; write ``out`` if given."""
    if fmt not in FORMATS:
        raise UserError(f"report format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    load_renderers()
    renderer = RENDERERS.get(suite.kind)
    if renderer is None:
        raise UserError(f"no report renderer for suite kind {suite.kind!r}; known: {', '.join(sorted(RENDERERS))}")
    frame = suite_frame(suite, results_dir)
    text = renderer(suite, frame, fmt, out)
    if out is not None:
        store.write_text_atomic(Path(out), text)
    return text
