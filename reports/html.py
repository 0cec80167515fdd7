"""HTML pages of every report: jinja2 templates from reports/templates, one page wrapper, data: URIs.

Its own module (not reports.render) so that renderers use it without importing the module that
looks renderers up: no renderer and ``reports.render`` import each other.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


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
