"""A leaderboard as one tidy table: a row per (method row, column), for pandas, R or a spreadsheet.

``report --format csv`` (or ``--out board.csv``) writes it. It holds what the Markdown and HTML boards show,
as numbers and flags instead of marks: the value over seeds, its spread and 95% interval, and the verdicts
(best in its bucket, equivalent to dense, not distinguishable from dense, collapsed) with whether the column
ranks methods at all, and (where the suite measured it) each row's cost: parameters, FLOPs and speed-up. A pure
function of the board, so it is tested on the golden records like the other formats.

``report --format csv --table claims`` writes the claims section the same way (``claims_frame``): a row per tested
comparison, with its effect, interval, p-values and verdict beside the verdicts of its task and of its claim.
"""

from __future__ import annotations

import pandas as pd

from reports import claims
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


# The claims table's columns, in order; docs/reports.md says what each holds.
CLAIM_FIELDS = ("source", "claim", "claim_text", "claim_verdict", "column", "column_admissible", "task_verdict",
                "task_reason", "sparsity", "first", "second", "effect", "ci_low", "ci_high", "p", "p_reverse", "mde",
                "margin", "verdict", "why", "protocol", "model", "scale")


def claims_frame(board: Board) -> pd.DataFrame:
    """The claims section as a DataFrame with CLAIM_FIELDS: a row per comparison, tested on the board's records
    (source ``records``) and on the paper's printed table (source ``paper``, point values: no interval or p).

    A column left out of a claim (not admissible: dense does not beat its trivial baseline) has a row with
    ``column_admissible`` false and the reason in ``why``; a claim with neither keeps one row (its verdict, empty
    comparison fields). A board the claims do not speak about gives no rows, as its Markdown report gives no
    claims section."""
    if not claims.speaks_about(board):
        return pd.DataFrame([], columns=CLAIM_FIELDS)
    context = {"protocol": board.protocol, "model": board.model, "scale": board.scale}
    lines = [{**line, **context} for line in _claim_lines("records", claims.check_board(board))]
    lines += [{**line, "protocol": "finetune", "model": "bert-base-uncased", "scale": "paper"}
              for line in _claim_lines("paper", claims.check_paper(), words=claims.PAPER_WORDS)]
    return pd.DataFrame(lines, columns=CLAIM_FIELDS)


def claims_csv(board: Board) -> str:
    """``claims_frame`` as CSV text (full float precision, empty fields for what a comparison does not have)."""
    return claims_frame(board).to_csv(index=False, lineterminator="\n")


def _claim_lines(source: str, results: list[claims.ClaimResult], words: dict[str, str] | None = None) -> list[dict]:
    """The table rows of checked claims: one per comparison and per column left out, or one per claim without
    either. ``words`` renames verdicts (the paper's point values are only consistent or not with a claim, as its
    Markdown section says)."""
    words = words or {}
    lines = []
    for result in results:
        head = {"source": source, "claim": result.key, "claim_text": result.text,
                "claim_verdict": words.get(result.verdict, result.verdict)}
        tasks = {t.column: t for t in result.tasks}
        found = [{**head, **_comparison(c, tasks.get(c.column), words)} for c in result.comparisons]
        found += [{**head, "column": title, "column_admissible": False, "why": why} for title, why in result.excluded]
        lines += found or [head]
    return lines


def _comparison(c: claims.Comparison, task: claims.TaskVerdict | None, words: dict[str, str]) -> dict:
    """A comparison's fields, with its task's verdict."""
    low, high = c.bounds if c.bounds is not None else (None, None)
    return {"column": c.column, "column_admissible": True,
            "task_verdict": words.get(task.verdict, task.verdict) if task else None,
            "task_reason": (task.reason or None) if task else None, "sparsity": c.sparsity, "first": c.first,
            "second": c.second, "effect": c.effect, "ci_low": low, "ci_high": high, "p": c.p,
            "p_reverse": c.p_reverse, "mde": c.mde, "margin": c.margin, "verdict": words.get(c.verdict, c.verdict),
            "why": c.why or None}
