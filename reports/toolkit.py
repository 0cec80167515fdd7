"""The report toolkit: one way to draw and write a figure (PNG + SVG), to write a table and to build HTML.

Figures use matplotlib's object-oriented API only: a ``Figure`` on its own Agg canvas, settings in an
``rc_context`` around drawing and saving. Importing or using this module changes no global matplotlib
state (no ``matplotlib.use``, no pyplot figure list, no rcParams edits), and the same figure always
gives the same bytes: no dates or version stamps in the files, fixed SVG ids. HTML comes only from the
jinja2 templates in reports/templates (autoescaped): whole pages, or the pieces in ``html_blocks()``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from benchmarks.atomic import write_bytes_atomic
from reports.html import template

if TYPE_CHECKING:
    from markupsafe import Markup
    from matplotlib.figure import Figure

# svg.hashsalt: matplotlib salts SVG element ids with a random value otherwise, so reruns would differ.
STYLE = {"svg.hashsalt": "prunebench", "svg.fonttype": "path", "font.size": 10}
# Keys set to None are left out of the file: no creation date, no matplotlib version.
METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
FIGURE_FORMATS = ("png", "svg")
TABLE_FORMATS = {"md": "github", "html": "html"}  # tabulate's "html" escapes cell text


@contextmanager
def style() -> Iterator[None]:
    """The report figure settings (``STYLE``) for the duration of the block; rcParams are restored after."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def new_figure(**kwargs: Any) -> "Figure":
    """A matplotlib ``Figure(**kwargs)`` on its own Agg canvas: not in pyplot's list, never shown, no close needed.

    Build it and draw on it inside ``style()`` so the report settings apply to fonts and ids.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def figure_bytes(fig: "Figure", fmt: str, dpi: float | None = None) -> bytes:
    """``fig`` as PNG or SVG bytes without volatile metadata (``dpi`` None: the figure's own)."""
    if fmt not in METADATA:
        raise ValueError(f"figure format {fmt!r}; use one of {', '.join(METADATA)}")
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format=fmt, dpi=dpi or "figure", metadata=METADATA[fmt])
    return buf.getvalue()


def write_figure(fig: "Figure", stem: Path, dpi: float | None = None) -> dict[str, Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` atomically (temp file in the folder, then rename); {format: path}."""
    stem = Path(stem)
    written = {}
    for fmt in FIGURE_FORMATS:
        path = stem.parent / f"{stem.name}.{fmt}"  # not with_suffix: a stem may hold a dot ('minilm-l6-0.5_fig3')
        write_bytes_atomic(path, figure_bytes(fig, fmt, dpi))
        written[fmt] = path
    return written


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str) -> str:
    """Rows as a GitHub Markdown table (``fmt`` 'md') or an HTML ``<table>`` with escaped cells ('html').

    Cells are printed as given (no number parsing), so a report formats its numbers itself.
    """
    return str(tabulate(rows, headers=list(headers), tablefmt=TABLE_FORMATS[fmt], disable_numparse=True))


def html_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> "Markup":
    """``table(rows, headers, 'html')`` marked safe for a template (tabulate escapes the cells)."""
    from markupsafe import Markup

    return Markup(table(rows, headers, "html"))


def html_blocks() -> Any:
    """The macros of reports/templates/blocks.html.j2 (heading, para, bullets, figure); each returns escaped Markup."""
    return template("blocks.html.j2").module
