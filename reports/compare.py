"""The comparison section: every row against dense and against baseline methods at equal nominal sparsity.

A reviewer of a new method asks two things first: how far is it from dense, and does it beat the baselines it
must beat (global magnitude, Wanda, SparseGPT) at the same sparsity. Each answer is a paired difference (row minus
the other row, on the same evaluation examples) with its 95% paired bootstrap interval (docs/statistics.md).
A pure function of a ``Board``; ``reports.tables`` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.leaderboard import Board, Column, Entry, Row, paired_bounds

DEFAULT_BASELINES = ("global", "wanda", "sparsegpt")
BETTER, WORSE = "▲", "▼"
DIGITS = 3


@dataclass(frozen=True)
class Difference:
    """One compared cell: row minus the other row, its paired interval, and which way it points."""

    diff: float | None
    bounds: tuple | None  # 95% paired interval of (row - other), in the metric's own direction
    verdict: int  # +1 the row is better (interval excludes zero), -1 worse, 0 not told apart or no interval
    scale: float = 1.0  # size of the compared values: perplexities in the thousands print fewer decimals

    def text(self) -> str:
        """'+0.012 [-0.004, +0.028]', with ▲/▼ where the interval excludes zero; '-' without a value."""
        if self.diff is None:
            return "-"
        digits = 1 if self.scale >= 100 else DIGITS
        out = f"{self.diff:+.{digits}f}"
        if self.bounds is not None:
            out += f" [{self.bounds[0]:+.{digits}f}, {self.bounds[1]:+.{digits}f}]"
        return out + {1: f" {BETTER}", -1: f" {WORSE}", 0: ""}[self.verdict]


def difference(entry: Entry, other: Entry, column: Column) -> Difference:
    """The paired difference of two cells of one column (no interval when they cannot be paired)."""
    if not (entry.complete and other.complete):
        return Difference(None, None, 0)
    diff = entry.mean - other.mean
    bounds = paired_bounds(entry, other, True)
    verdict = 0
    if bounds is not None and (bounds[0] > 0 or bounds[1] < 0):
        up = bounds[0] > 0
        verdict = 1 if up == column.higher_is_better else -1
    return Difference(diff, bounds, verdict, max(abs(entry.mean), abs(other.mean)))


def baselines_of(board: Board, wanted: tuple | list | None = None) -> list[str]:
    """The baseline methods to compare against: those asked for (default: global, Wanda, SparseGPT) that the
    board has rows of."""
    present = {row.method for row in board.rows}
    return [m for m in (wanted or DEFAULT_BASELINES) if m in present]


def partners(row: Row, board: Board, baselines: list[str]) -> list[Row]:
    """Dense, then the baseline rows at the row's nominal sparsity (never the row itself or its own method)."""
    dense = [r for r in board.rows if r.dense]
    # an N:M row is held against the baselines' rows of the same pattern, an unstructured row against unstructured
    same = [r for r in board.rows if r.bucket == row.bucket and r.method in baselines and r.method != row.method
            and not r.dense and r.pattern == row.pattern]
    return dense + sorted(same, key=lambda r: baselines.index(r.method))


def section_view(board: Board, wanted: tuple | list | None = None) -> dict | None:
    """Headers, one line per (row, compared-with) pair, and the rows with no baseline at their sparsity."""
    baselines = baselines_of(board, wanted)
    lines, unpaired = [], []
    for row in board.rows:
        if row.dense:
            continue
        others = partners(row, board, baselines)
        if baselines and row.method not in baselines and not any(o.method in baselines for o in others):
            unpaired.append(row.label)
        for other in others:
            cells = [difference(row.entries[c], other.entries[c], c).text() for c in board.columns]
            lines.append([row.label, "dense" if other.dense else other.label, *cells])
    if not lines:
        return None
    return {"headers": ["row", "minus", *[c.title for c in board.columns]], "rows": lines,
            "baselines": baselines, "unpaired": unpaired}


def section_note(view: dict) -> str:
    """What the section's numbers are."""
    against = ", ".join(view["baselines"]) or "none present"
    text = ("Each line is the row minus dense, or minus a baseline row at the same nominal sparsity (baselines: "
            f"{against}; `report --baseline a,b` picks others), in the column's own units, with the 95% paired "
            f"bootstrap interval over the same evaluation examples. {BETTER}: the row is better (the interval "
            f"excludes zero in its favour; lower is better for perplexity); {WORSE}: worse; no mark: not told "
            "apart. '-': a cell is missing or incomplete.")
    if view["unpaired"]:
        text += f" No baseline row at the same nominal sparsity: {', '.join(view['unpaired'])}."
    return text
