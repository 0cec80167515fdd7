"""A leaderboard as one tidy table: a row per (method row, column), for pandas, R or a spreadsheet.

``report --format csv`` (or ``--out board.csv``) writes it. It holds what the Markdown and HTML boards show,
as numbers and flags instead of marks: the value over seeds, its spread and 95% interval, and the verdicts
(best in its bucket, equivalent to dense, not distinguishable from dense, collapsed) with whether the column
ranks methods at all, and (where the suite measured it) each row's cost: parameters, FLOPs and speed-up. A pure
function of the board, so it is tested on the golden records like the other formats.
"""

from __future__ import annotations

import pandas as pd

from reports.cost import RowCost, batches_of
from reports.leaderboard import Board, Column, Entry, Row

# The table's columns, in order; docs/reports.md says what each holds.
FIELDS = ("bucket", "row", "method", "nominal_sparsity", "achieved_sparsity", "task", "metric", "column",
          "higher_is_better", "column_ranked", "status", "value", "std", "seeds", "ci_low", "ci_high", "best",
          "equivalent_to_dense", "indistinct_from_dense", "matches_dense", "collapsed", "baseline",
          "baseline_value", "paper_value", "protocol", "model", "scale")


def board_frame(board: Board, costs: dict | None = None) -> pd.DataFrame:
    """The board as a DataFrame with FIELDS as columns: one row per method row and board column, in board order.

    With ``costs`` (``reports.cost.row_costs``: the suite measured them), each line also carries its row's cost:
    parameters, FLOPs per token and their share of dense, and per timed batch size the median latency and the
    measured speed-up with its 95% interval (COST_FIELDS)."""
    batches = batches_of(costs or {})
    # once per row: a speed-up's interval is a bootstrap, and every line of the row repeats it
    row_cost = {row.label: _row_cost((costs or {}).get(row.label), batches) for row in board.rows}
    lines = [{**_line(board, row, column, row.entries.get(column) or Entry(status="missing")), **row_cost[row.label]}
             for _, rows in board.buckets for row in rows for column in board.columns]
    return pd.DataFrame(lines, columns=[*FIELDS, *(cost_fields(batches) if costs else [])])


def board_csv(board: Board, costs: dict | None = None) -> str:
    """``board_frame`` as CSV text (full float precision, empty fields for values a cell does not have)."""
    return board_frame(board, costs).to_csv(index=False, lineterminator="\n")


def cost_fields(batches: list[int]) -> list[str]:
    """The cost columns, for the timed batch sizes."""
    timed = [f"{name}_b{b}" for b in batches for name in ("latency_ms", "speedup", "speedup_low", "speedup_high")]
    return ["params", "params_nonzero", "flops_per_token", "flops_ratio", *timed, "speedup_theoretical"]


def _row_cost(cost: RowCost | None, batches: list[int]) -> dict:
    """A row's cost columns (empty without a measurement)."""
    if cost is None:
        return {}
    size = cost.size
    out = {"params": size["params"], "params_nonzero": size["params_nonzero"],
           "flops_per_token": size["flops_per_token"], "flops_ratio": size["flops_ratio"],
           "speedup_theoretical": size.get("speedup_theoretical")}
    for b in batches:
        found = cost.speedup(b)
        out[f"latency_ms_b{b}"] = cost.median_ms(b)
        if found is not None:
            out[f"speedup_b{b}"], (out[f"speedup_low_b{b}"], out[f"speedup_high_b{b}"]) = found
    return out


def _line(board: Board, row: Row, column: Column, entry: Entry) -> dict:
    """One table row: a method row's cell in one column."""
    base = board.column_baselines.get(column)
    ci = entry.ci or (None, None)
    return {
        "bucket": row.bucket, "row": row.label, "method": row.method, "nominal_sparsity": row.nominal,
        "achieved_sparsity": row.achieved, "task": column.task, "metric": column.metric, "column": column.title,
        "higher_is_better": column.higher_is_better, "column_ranked": column not in board.chance_notes,
        "status": entry.status, "value": entry.mean, "std": entry.std, "seeds": len(entry.values),
        "ci_low": ci[0], "ci_high": ci[1], "best": entry.best, "equivalent_to_dense": entry.equivalent,
        "indistinct_from_dense": entry.indistinct, "matches_dense": entry.matching, "collapsed": entry.collapsed,
        "baseline": base.name if base is not None else None,
        "baseline_value": base.value if base is not None else None, "paper_value": entry.paper,
        "protocol": board.protocol, "model": board.model, "scale": board.scale,
    }
