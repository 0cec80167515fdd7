"""The report toolkit: one way to draw and write a figure (PNG + SVG), to write a table and to build HTML.

Figures use matplotlib's object-oriented API only: a ``Figure`` on its own Agg canvas, settings in an
``rc_context`` around drawing and saving. Importing or using this module changes no global matplotlib
state (no ``matplotlib.use``, no pyplot figure list, no rcParams edits), and the same figure always
gives the same bytes: no dates or version stamps in the files, fixed SVG ids. HTML comes only from the
jinja2 templates in reports/templates (autoescaped): whole pages, or the pieces in ``html_blocks()``.
Markdown escapes every user string (suite names, model paths, labels, record errors) with ``md_text`` or
``md_code``, as the templates escape HTML: a user string shows as written and never becomes markup.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from benchmarks.atomic import write_bytes_atomic
from reports.html import template

if TYPE_CHECKING:
    from markupsafe import Markup
    from matplotlib.figure import Figure

# svg.hashsalt: matplotlib salts SVG element ids with a random value otherwise, so reruns would differ.
# svg.fonttype none: labels stay <text> (editable and searchable in a paper's figure, and the file about half the
# size of one with every glyph drawn as a path); a viewer without DejaVu Sans substitutes another sans-serif.
STYLE = {"svg.hashsalt": "prunebench", "svg.fonttype": "none", "font.size": 10}
# Keys set to None are left out of the file: no creation date, no matplotlib version.
METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
FIGURE_FORMATS = ("png", "svg")
PNG_COLOURS = 256  # a palette PNG (palette_png); the plots use a dozen colours plus their anti-aliased edges
TABLE_FORMATS = {"md": "github", "html": "html"}  # tabulate's "html" escapes cell text

# Markdown (CommonMark + GitHub tables): characters that start inline markup anywhere in a line, escaped with a
# backslash (CommonMark lets any ASCII punctuation be escaped): '<' before a letter, '/', '!' or '?' (raw HTML,
# autolinks; '<=' starts neither, and '>' matters only at the start of a block), '|' table cells, '~'
# strikethrough, '&' only where it would start an entity, '_' only where it can open or close emphasis (not
# inside a word such as mlm_accuracy, so names stay readable in a terminal).
_MD_INLINE = re.compile(r"[\\`*\[\]|~]|<(?=[A-Za-z/!?])|&(?=#?[0-9A-Za-z]+;)|_(?![0-9A-Za-z])|(?<![0-9A-Za-z])_")
# At the start of a block these begin a heading, list, quote or thematic break ('1.' / '1)' an ordered list).
_MD_BLOCK_START = re.compile(r"^([#+\-=>]|[0-9]+(?=[.)]))")
_LINE_BREAKS = re.compile(r"\s*[\r\n\v\f\u2028\u2029]+\s*")


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
    return palette_png(buf.getvalue()) if fmt == "png" else buf.getvalue()


def palette_png(png: bytes) -> bytes:
    """A PNG as an 8-bit palette PNG on white: a line plot's few colours survive, the file is about a third.

    Median cut without dithering is deterministic and leaves flat areas flat; the HTML page embeds every PNG in
    base64, so this shrinks the pages too. Pillow writes no text chunks, so no date or version gets in."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")  # transparency on white
    quantized = rgb.quantize(colors=PNG_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    quantized.save(out, format="PNG", optimize=True)
    return out.getvalue()


def write_figure(fig: "Figure", stem: Path, dpi: float | None = None) -> dict[str, Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` atomically (temp file in the folder, then rename); {format: path}."""
    stem = Path(stem)
    written = {}
    for fmt in FIGURE_FORMATS:
        path = stem.parent / f"{stem.name}.{fmt}"  # not with_suffix: a stem may hold a dot ('minilm-l6-0.5_fig3')
        write_bytes_atomic(path, figure_bytes(fig, fmt, dpi))
        written[fmt] = path
    return written


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str, escape: bool = True) -> str:
    """Rows as a GitHub Markdown table (``fmt`` 'md') or an HTML ``<table>`` with escaped cells ('html').

    Cells are printed as given (no number parsing), so a report formats its numbers itself. Markdown cells
    and headers go through ``md_text``; ``escape=False`` for cells that already hold Markdown, whose user
    parts the caller escaped.
    """
    if fmt == "md" and escape:
        rows = [[md_text(cell) for cell in row] for row in rows]
        headers = [md_text(h) for h in headers]
    return str(tabulate(rows, headers=list(headers), tablefmt=TABLE_FORMATS[fmt], disable_numparse=True))


def md_text(text: object, block: bool = False) -> str:
    """``text`` as literal Markdown: markup characters backslash-escaped, line breaks made spaces.

    ``block=True`` for text that starts a paragraph or list item: a leading '#', '-', '1.' ... is escaped too.
    Safe inside a table cell (a '|' is escaped) and inside link text.
    """
    one_line = _LINE_BREAKS.sub(" ", str(text))
    escaped = _MD_INLINE.sub(lambda m: "\\" + m.group(0), one_line)
    if block:
        escaped = _MD_BLOCK_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0),
                                      escaped.lstrip())
    return escaped


def md_code(text: object, in_table: bool = False) -> str:
    """``text`` as one Markdown code span that shows it exactly: the fence is longer than any run of backticks
    inside, so a backtick cannot close it (and HTML inside a code span is never HTML).

    ``in_table=True`` inside a GitHub table cell, where '|' must be escaped even in a code span.
    """
    one_line = _LINE_BREAKS.sub(" ", str(text))
    if not one_line:
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", one_line)), default=0) + 1)
    pad = " " if one_line[0] == "`" or one_line[-1] == "`" or (one_line[0] == one_line[-1] == " ") else ""
    body = one_line.replace("|", "\\|") if in_table else one_line
    return f"{fence}{pad}{body}{pad}{fence}"


def md_link_target(path: str) -> str:
    """A relative file path as a Markdown link destination: spaces and brackets percent-encoded."""
    from urllib.parse import quote

    return quote(path, safe="/-_.~")


def model_name(model: str, identity: dict | None = None) -> str:
    """How a report names a model: a local folder by its folder name (its weights sha256 identifies it), never
    by the path it was loaded from; an alias or hub id as given."""
    identity = identity or {}
    text = str(identity.get("model") or model) if identity.get("weights_sha256") else str(model)
    if not (identity.get("weights_sha256") or text.startswith(("/", ".", "~")) or "\\" in text
            or text.count("/") > 1):
        return text  # an alias or a hub id (owner/name)
    name = PureWindowsPath(text).name if "\\" in text else Path(text).name
    return name or text


def html_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> "Markup":
    """``table(rows, headers, 'html')`` marked safe for a template (tabulate escapes the cells)."""
    from markupsafe import Markup

    return Markup(table(rows, headers, "html"))


def html_blocks() -> Any:
    """The macros of reports/templates/blocks.html.j2 (heading, para, bullets, figure); each returns escaped Markup."""
    return template("blocks.html.j2").module
