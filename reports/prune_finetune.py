"""The report of a prune-finetune suite: the Fig 6/7 leaderboard as Markdown or an HTML page, with plots."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.config import Suite
from benchmarks.paths import report_paths
from benchmarks.registry import register_renderer
from reports import cost, export, plots, tables
from reports.html import data_uri, html_document
from reports.leaderboard import Board, board_from_frame


def render_board(board: Board, fmt: str, out: Path | None = None) -> str:
    """Markdown or a full HTML page for a board; with ``out``, plots are written beside it and shown."""
    if fmt == "md":
        written = plots.write_plots(board, report_paths(out)["plots"]) if out is not None else []
        figures = [tables.Figure(f"{tables.title(board)}: {p.column.title}", f"{p.png.parent.name}/{p.png.name}")
                   for p in written]
        return tables.board_markdown(board, figures)
    with tempfile.TemporaryDirectory() as tmp:  # printed pages still embed their plots
        written = plots.write_plots(board, report_paths(out)["plots"] if out is not None else Path(tmp))
        figures = [tables.Figure(f"{tables.title(board)}: {p.column.title}", data_uri(p.png)) for p in written]
    return html_document(f"{tables.title(board)} leaderboard", tables.board_html(board, figures))


@register_renderer("prune-finetune", formats=("md", "html", "csv", "claims-csv"))
def render_prune_finetune(suite: Suite, frame: pd.DataFrame, fmt: str, out: Path | None = None) -> str:
    """Render the Fig 6/7 style leaderboard of a prune-finetune suite (with its cost section when measured)."""
    board = board_from_frame(suite, frame)
    cells, records = frame.attrs.get("cells") or [], frame.attrs.get("records", {})
    if fmt == "csv":
        return export.board_csv(board, cost.row_costs(cells, records))
    if fmt == "claims-csv":
        return export.claims_csv(board)
    text = render_board(board, fmt, out)
    if fmt == "md":
        plots_dir = report_paths(out)["plots"] if out is not None else None
        return text + cost.cost_markdown(board, cells, records, plots_dir)
    if out is not None:  # the page shares its plots folder with the Markdown report: same files in both
        cost.cost_markdown(board, cells, records, report_paths(out)["plots"])
    section = cost.cost_html(board, cells, records)
    return text.replace("</body>", section + "</body>", 1) if section else text
