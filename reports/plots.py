"""Plots of a leaderboard: each column's metric against achieved sparsity, one line per method (Agg, PNG + SVG)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.paths import slug
from reports import toolkit
from reports.leaderboard import Board, Column

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# A method's name and colour in plots come from its spec (carried by the board's rows); methods
# without a colour take matplotlib's default cycle from C5 on, in name order after those with one.
# Figures are drawn and written with reports.toolkit: the same board gives byte-identical PNG and SVG files.
SIZE_IN, DPI = (6.4, 4.0), 100


@dataclass(frozen=True)
class PlotFile:
    """One column's plot on disk."""

    column: Column
    png: Path
    svg: Path


def band(entry) -> tuple[float, float] | None:
    """A cell's error band: its 95% bootstrap interval, else mean ± one std over seeds, else None."""
    if entry.ci:
        return entry.ci
    if entry.std is not None:
        return (entry.mean - entry.std, entry.mean + entry.std)
    return None


def series(board: Board, column: Column) -> tuple[dict, tuple | None]:
    """Per method [(x, mean, band)] sorted by x, and dense's (x, mean, band) or None; only rows with values.

    ``band`` is (low, high) or None (see ``band``). Every method's line starts at the dense point: sparsity 0
    is where all pruning methods begin."""
    lines: dict[str, list] = {}
    dense = None
    for row in board.rows:
        entry = row.entries[column]
        if not entry.values:
            continue
        x = row.achieved if row.achieved is not None else row.nominal
        if row.dense:
            dense = (x, entry.mean, band(entry))
            continue
        lines.setdefault(row.series, []).append((x, entry.mean, band(entry)))
    return {m: sorted(points + ([dense] if dense else []), key=lambda p: p[0]) for m, points in lines.items()}, dense


def method_styles(board: Board) -> dict[str, tuple[str, str | None]]:
    """plot line (method, or method and N:M pattern) -> (plot title, spec colour or None), from the board's rows."""
    return {r.series: (f"{r.title or r.method} {r.pattern}" if r.pattern else r.title or r.method, r.color)
            for r in board.rows if not r.dense}


def paper_series(board: Board, column: Column) -> dict:
    """Per method [(x, published value)] for rows that have one (boards on the paper's model only)."""
    lines: dict[str, list] = {}
    dense = next((r for r in board.rows if r.dense and r.entries[column].paper is not None), None)
    for row in board.rows:
        entry = row.entries[column]
        if row.dense or entry.paper is None:
            continue
        x = row.achieved if row.achieved is not None else row.nominal
        lines.setdefault(row.series, []).append((x, entry.paper))
    start = [(0.0, dense.entries[column].paper)] if dense else []
    return {m: sorted(start + points) for m, points in lines.items()}


def column_figure(board: Board, column: Column) -> "Figure | None":
    """A matplotlib Figure for one column, or None when it has no numbers."""
    lines, dense = series(board, column)
    if not lines and dense is None:
        return None
    with toolkit.style():
        fig = toolkit.new_figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
        if dense is not None:
            _draw_dense(ax, dense)
        _draw_methods(ax, lines, paper_series(board, column), method_styles(board))
        arrow = "higher is better" if column.higher_is_better else "lower is better"
        ax.set_title(f"{board.title}: {column.title} ({board.protocol})")
        ax.set_xlabel("achieved global sparsity")
        ax.set_ylabel(f"{column.metric} ({arrow})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncols=2 if len(ax.get_legend_handles_labels()[1]) > 6 else 1)
    return fig


def _draw_dense(ax, dense: tuple) -> None:
    """Dense as a dashed level, with its band (95% interval, or one std over seeds) when it has one."""
    _, mean, low_high = dense
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label="dense")
    if low_high:
        ax.axhspan(*low_high, color="black", alpha=0.08, linewidth=0, label="dense band")


def _draw_methods(ax, lines: dict, published: dict, styles: dict) -> None:
    """One line per method (error bars = 95% interval, or std over seeds) and the paper's values dotted beside it."""
    colored = sorted((m for m in lines if styles.get(m, (m, None))[1]), key=lambda m: styles[m][1])
    order = colored + sorted(set(lines) - set(colored))
    for i, method in enumerate(m for m in order if m in lines):
        xs, ys, bands = zip(*lines[method])
        yerr = None
        if any(bands):
            yerr = [[y - b[0] if b else 0.0 for y, b in zip(ys, bands)],
                    [b[1] - y if b else 0.0 for y, b in zip(ys, bands)]]
            yerr = [[max(e, 0.0) for e in side] for side in yerr]  # a percentile bound may sit past the value
        name, color = styles.get(method, (method, None))
        color = color or f"C{5 + i % 5}"
        patterned = " " in method  # an N:M line shares its method's colour: a square marker and dashes tell it apart
        ax.errorbar(xs, ys, yerr=yerr, marker="s" if patterned else "o", markersize=4, capsize=3, linewidth=1.5,
                    linestyle="--" if patterned else "-", color=color, label=name)
        if published.get(method):
            px, py = zip(*published[method])
            ax.plot(px, py, linestyle=":", marker="x", color=color, linewidth=1, label=f"{name}, paper")


def write_plots(board: Board, folder: Path) -> list[PlotFile]:
    """Write one PNG and one SVG per column with numbers into ``folder`` (atomically); return them in column order."""
    written = []
    for column in board.columns:
        fig = column_figure(board, column)
        if fig is not None:
            files = toolkit.write_figure(fig, Path(folder) / slug(column.title, default="column"))
            written.append(PlotFile(column, files["png"], files["svg"]))
    return written
