"""The paper's Fig 6 / Fig 7 claims, checked on a leaderboard's records and on the paper's own table.

Each claim becomes comparisons between two rows at equal sparsity on one column (or one row against chance).
On our records a comparison is judged by its 95% paired bootstrap interval (reports.stats); on the paper's
table, which has point values only, by its sign beyond a stated margin. docs/statistics.md gives the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reports import paper, stats
from reports.leaderboard import Board

REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED = "reproduced", "contradicted", "inconclusive", "not tested"
# Rows are at "equal sparsity" when their global-equivalent sparsities (rate for global and random, rate/2 for
# upper and lower, the mean of the two rates for mixed) differ by at most this; each row is matched to the
# nearest candidate, so upper-0.95 (0.475) faces full-0.495, as the paper groups its Fig 6 rows.
MATCH_TOL = 0.025
CLOSE_MARGIN = 0.05  # "close": global beats lower by less than this (accuracy / correlation points)
MLM_FAR_FROM = 0.45  # the paper's exception: MLM at global-equivalent sparsity >= this is not close
FIG7_FROM = 0.7  # Fig 7 sparsities
CHANCE_SHARE = 0.5  # "toward chance": the row keeps less than this share of dense's margin above chance
PAPER_MARGIN = 0.01  # the paper's table: a difference below 1 point (1% for perplexity) is inconclusive
# Majority-class share of each GLUE dev set (the paper's chance level); correlations and MLM accuracy: 0.
PAPER_CHANCE = {("mrpc", "accuracy"): 279 / 408, ("qnli", "accuracy"): 2761 / 5463,
                ("mnli", "accuracy"): 3479 / 9815, ("sst2", "accuracy"): 444 / 872, ("stsb", "pearson"): 0.0,
                ("mlm", "mlm_accuracy"): 0.0}

# key -> (the paper's claim, how it is tested here)
CLAIMS = {
    "global-best": ("Global magnitude pruning is the best method at each sparsity",
                    "full-s against every other row at equal sparsity; effect = global minus the other row."),
    "lower-beats-upper": ("Pruning the lower half beats pruning the upper half at equal sparsity",
                          "lower-X against upper-X; effect = lower minus upper."),
    "lower-close": (f"Lower stays close to global, except MLM at sparsity >= {MLM_FAR_FROM:g}",
                    f"global against lower at equal sparsity; effect = global minus lower; close means below "
                    f"{CLOSE_MARGIN:g}, and for MLM at global-equivalent sparsity >= {MLM_FAR_FROM:g} the claim is "
                    "that it is above (perplexity is left out: no common margin)."),
    "random-beats-upper": ("Random pruning sometimes beats upper",
                           "random against upper at equal sparsity; effect = random minus upper; the claim is "
                           "reproduced when at least one comparison is."),
    "toward-chance": (f"At Fig 7 sparsities (>= {FIG7_FROM:g}) every method falls toward chance",
                      "effect = the share of dense's margin above chance the row keeps, (row - chance) / (dense - "
                      f"chance); reproduced below {CHANCE_SHARE:g} (chance: majority share for accuracy, 0.5 for "
                      "AUC, 0 for correlations and MLM accuracy; F1, perplexity and drift are left out)."),
}
EXISTENTIAL = {"random-beats-upper"}


@dataclass(frozen=True)
class ClaimColumn:
    """A column as the claims see it."""

    key: object
    title: str
    task: str
    metric: str
    higher_is_better: bool


@dataclass
class ClaimRow:
    """A row: label, method, global-equivalent sparsity, and per column (value, replicates, collapsed, chance)."""

    label: str
    method: str
    nominal: float
    cells: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """One tested comparison: who against whom, on which column, the effect, its interval and the verdict."""

    claim: str
    sparsity: float
    column: str
    first: str
    second: str
    effect: float | None
    bounds: tuple | None
    verdict: str
    why: str = ""  # why no interval (no arrays, collapsed, partial)


@dataclass
class ClaimResult:
    """A claim, its comparisons and its verdict."""

    key: str
    text: str  # the paper's claim
    how: str  # how it is tested
    comparisons: list
    verdict: str

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.comparisons)


# -- rows from a board or from the paper -----------------------------------------------------------

def base_metric(metric: str) -> str:
    """A record metric without its split prefix ('mismatched_accuracy' -> 'accuracy')."""
    parsed = stats.split_metric(metric)
    return metric if parsed is None else metric[len(parsed[0]):]


def board_rows(board: Board) -> tuple[list[ClaimColumn], list[ClaimRow]]:
    """Columns (drift is not a paper metric) and rows of a leaderboard, with replicates where complete."""
    columns = [ClaimColumn(c, c.title, c.task, c.metric, c.higher_is_better) for c in board.columns
               if base_metric(c.metric) != "drift_cosine"]
    rows = []
    for row in board.rows:
        out = ClaimRow(row.label, row.method, row.nominal)
        for column in columns:
            entry = row.entries[column.key]
            if entry.values and entry.complete:
                arrays = next((a for a in entry.arrays if a is not None), None)
                level = stats.chance(arrays, entry.metric) if arrays is not None else None
                out.cells[column.key] = (entry.mean, entry.reps, entry.collapsed, level)
        rows.append(out)
    return columns, rows


def paper_tables() -> list[tuple[int, list[ClaimColumn], list[ClaimRow]]]:
    """The paper's Fig 6 and Fig 7 as claim rows (point values, chance from the GLUE dev sets)."""
    columns = [ClaimColumn(key, title, *key, higher_is_better=(key[1] != "mlm_ppl"))
               for title, key in paper.PAPER_COLUMNS.items()]
    out = []
    for figure in (6, 7):
        rows = []
        for raw in paper.paper_rows():
            if raw["figure"] != figure:
                continue
            method, nominal = parse_label(raw["label"])
            cells = {c.key: (raw[c.key], None, False, PAPER_CHANCE.get(c.key)) for c in columns}
            rows.append(ClaimRow(raw["label"], method, nominal, cells))
        out.append((figure, columns, rows))
    return out


def parse_label(label: str) -> tuple[str, float]:
    """(method, global-equivalent sparsity) of a paper row label: full-0.3, upper-0.6, upper-0.6-lower-0.8."""
    parts = label.split("-")
    if label == "full-base":
        return "dense", 0.0
    if len(parts) == 4:
        return "mixed", (float(parts[1]) + float(parts[3])) / 2
    method = {"full": "global"}.get(parts[0], parts[0])
    rate = float(parts[1])
    return method, rate / 2 if method in ("upper", "lower") else rate


# -- pairing ---------------------------------------------------------------------------------------

def partner(row: ClaimRow, candidates: list[ClaimRow]) -> ClaimRow | None:
    """The candidate at equal sparsity nearest to ``row`` (within MATCH_TOL), or None."""
    near = [c for c in candidates if abs(c.nominal - row.nominal) <= MATCH_TOL + 1e-9]
    return min(near, key=lambda c: (abs(c.nominal - row.nominal), -c.nominal)) if near else None


def _of(rows: list[ClaimRow], *methods: str) -> list[ClaimRow]:
    return [r for r in rows if r.method in methods]


def pairs(claim: str, rows: list[ClaimRow]) -> list[tuple[ClaimRow, ClaimRow, float]]:
    """(first, second, global-equivalent sparsity) for a pairwise claim, in row order."""
    globals_ = _of(rows, "global")
    if claim == "global-best":
        found = [(partner(r, globals_), r) for r in _of(rows, "random", "upper", "lower", "mixed")]
        found = [(g, r) for g, r in found if g is not None]
        found.sort(key=lambda p: (p[0].nominal, rows.index(p[1])))
        return [(g, r, g.nominal) for g, r in found]
    if claim == "lower-close":
        return [(g, r, g.nominal) for r in _of(rows, "lower") if (g := partner(r, globals_))]
    first_method = {"lower-beats-upper": "lower", "random-beats-upper": "random"}[claim]
    out = []
    for upper in _of(rows, "upper"):
        other = partner(upper, _of(rows, first_method))
        if other is not None:
            anchor = partner(upper, globals_)
            out.append((other, upper, anchor.nominal if anchor else upper.nominal))
    return out


# -- judging ---------------------------------------------------------------------------------------

def _missing_interval(a: tuple, b: tuple) -> str:
    if a[2] or b[2]:
        return "collapsed"
    if a[1] is None or b[1] is None or a[1].shape != b[1].shape:
        return "no interval"
    return ""


def _decide(effect: float, bounds: tuple | None, threshold: float, above: bool, margin: float) -> str:
    """Verdict for 'effect is above (or below) threshold': by the interval, else by the point beyond margin."""
    # point values: the 1e-9 keeps a difference of exactly the margin (0.895 - 0.885) inconclusive
    lo, hi = bounds if bounds is not None else (effect - margin - 1e-9, effect + margin + 1e-9)
    if (lo > threshold) if above else (hi < threshold):
        return REPRODUCED
    if (hi < threshold) if above else (lo > threshold):
        return CONTRADICTED
    return INCONCLUSIVE


def _margin(column: ClaimColumn, a: float, b: float, points: bool) -> float:
    """The paper table's margin: 1 point, or 1% of the smaller perplexity; 0 on our records (intervals)."""
    if not points:
        return 0.0
    return PAPER_MARGIN * min(a, b) if column.metric == "mlm_ppl" else PAPER_MARGIN


def compare(claim: str, first: ClaimRow, second: ClaimRow, sparsity: float, column: ClaimColumn,
            points: bool) -> Comparison | None:
    """One comparison of first against second on a column (None when either has no value)."""
    a, b = first.cells.get(column.key), second.cells.get(column.key)
    if a is None or b is None:
        return None
    sign = 1 if column.higher_is_better else -1
    effect = sign * (a[0] - b[0])
    why = "" if points else _missing_interval(a, b)
    bounds = stats.paired_interval(sign * a[1], sign * b[1]) if not points and not why else None
    if claim == "lower-close":
        if column.metric == "mlm_ppl":
            return None
        far = column.task == "mlm" and sparsity >= MLM_FAR_FROM - 1e-9
        verdict = _decide(effect, bounds, CLOSE_MARGIN, above=far, margin=0.0)
    else:
        verdict = _decide(effect, bounds, 0.0, above=True, margin=_margin(column, a[0], b[0], points))
    if why:
        verdict = INCONCLUSIVE
    return Comparison(claim, sparsity, column.title, first.label, second.label, effect, bounds, verdict, why)


def toward_chance(row: ClaimRow, dense: ClaimRow, column: ClaimColumn, points: bool) -> Comparison | None:
    """Share of dense's margin above chance that a Fig 7 row keeps."""
    a, d = row.cells.get(column.key), dense.cells.get(column.key)
    if a is None or d is None or d[3] is None or base_metric(column.metric) in ("f1", "mlm_ppl"):
        return None
    level = d[3]
    if d[0] - level <= 0:
        return Comparison("toward-chance", row.nominal, column.title, row.label, "chance", None, None,
                          INCONCLUSIVE, "dense not above chance")
    share = (a[0] - level) / (d[0] - level)
    why = "" if points else _missing_interval(a, d)
    bounds = None
    if not points and not why:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (a[1] - level) / (d[1] - level)
        bounds = stats.interval(np.where(d[1] > level, ratio, np.nan))
    verdict = INCONCLUSIVE if why else _decide(share, bounds, CHANCE_SHARE, above=False, margin=0.0)
    return Comparison("toward-chance", row.nominal, column.title, row.label, "chance", share, bounds, verdict, why)


def claim_verdict(key: str, comparisons: list[Comparison]) -> str:
    """Reproduced when reproduced comparisons are at least half and outnumber contradicted ones (existential
    claims: when any is reproduced); contradicted symmetrically; otherwise inconclusive."""
    if not comparisons:
        return UNTESTED
    n = len(comparisons)
    yes = sum(c.verdict == REPRODUCED for c in comparisons)
    no = sum(c.verdict == CONTRADICTED for c in comparisons)
    if key in EXISTENTIAL:
        return REPRODUCED if yes else (CONTRADICTED if no == n else INCONCLUSIVE)
    if yes > no and 2 * yes >= n:
        return REPRODUCED
    if no > yes and 2 * no >= n:
        return CONTRADICTED
    return INCONCLUSIVE


def check(columns: list[ClaimColumn], rows: list[ClaimRow], points: bool = False) -> list[ClaimResult]:
    """Every claim tested on the rows: intervals from replicates, or (points=True) signs beyond a margin."""
    results = []
    dense = next((r for r in rows if r.method == "dense"), None)
    for key, (text, how) in CLAIMS.items():
        found: list = []
        if key == "toward-chance":
            high = [r for r in rows if r.method != "dense" and r.nominal >= FIG7_FROM - 1e-9]
            found = [toward_chance(r, dense, c, points) for r in high for c in columns] if dense else []
        else:
            found = [compare(key, a, b, s, c, points) for a, b, s in pairs(key, rows) for c in columns]
        comparisons = [c for c in found if c is not None]
        results.append(ClaimResult(key, text, how, comparisons, claim_verdict(key, comparisons)))
    return results


def check_board(board: Board) -> list[ClaimResult]:
    """The claims on a leaderboard's records (paired bootstrap intervals)."""
    return check(*board_rows(board))


def check_paper() -> list[ClaimResult]:
    """The claims on the paper's own Figs 6 and 7 (point values; Fig 7 rows join Fig 6's dense row)."""
    (_, columns, fig6), (_, _, fig7) = paper_tables()
    rows = fig6 + [r for r in fig7 if r.method != "dense"]
    return check(columns, rows, points=True)


# -- views for the templates -----------------------------------------------------------------------

MARKS = {REPRODUCED: "✔", CONTRADICTED: "✘", INCONCLUSIVE: "~"}


def count_line(result: ClaimResult) -> str:
    """'12 comparisons: 5 reproduced, 1 contradicted, 6 inconclusive (2 without an interval)'."""
    n = len(result.comparisons)
    if not n:
        return "no comparison possible: the table has no rows this claim speaks about"
    parts = [f"{result.count(v)} {v}" for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE)]
    blind = sum(bool(c.why) for c in result.comparisons)
    tail = (f" ({blind} without an interval: no per-example arrays, collapsed or dense not above chance)"
            if blind else "")
    return f"{n} comparison{'s' if n != 1 else ''}: " + ", ".join(parts) + tail


def effect_text(c: Comparison, digits: int = 3) -> str:
    """'+0.012 [+0.003, +0.021] ✔', '+0.012 ✔' (no interval) or '~ (collapsed)'."""
    if c.effect is None:
        return f"{MARKS[c.verdict]} ({c.why})"
    text = f"{c.effect:+.{digits}f}"
    if c.bounds is not None:
        text += f" [{c.bounds[0]:+.{digits}f}, {c.bounds[1]:+.{digits}f}]"
    return f"{text} {MARKS[c.verdict]}" + (f" ({c.why})" if c.why else "")


def result_view(result: ClaimResult, titles: list[str]) -> dict:
    """One claim as a table: a row per compared pair, a column per metric column."""
    grid: dict[tuple, dict] = {}
    for c in result.comparisons:
        grid.setdefault((c.sparsity, c.first, c.second), {})[c.column] = c
    used = [t for t in titles if any(t in cells for cells in grid.values())]
    rows = [[f"{s:g}", f"{first} vs {second}"] + [effect_text(cells[t]) if t in cells else "" for t in used]
            for (s, first, second), cells in grid.items()]
    return {"key": result.key, "text": result.text, "how": result.how, "verdict": result.verdict,
            "count": count_line(result),
            "headers": ["sparsity", "comparison"] + used, "rows": rows}


def section_view(board: Board) -> dict:
    """Both claim sections (our records, the paper's table) for the templates."""
    ours, theirs = check_board(board), check_paper()
    titles = [c.title for c in board.columns]
    return {"protocol": board.protocol, "rule": MATCHING_RULE, "legend": LEGEND,
            "ours": [result_view(r, titles) for r in ours], "ours_summary": summary(ours),
            "paper": [result_view(r, list(paper.PAPER_COLUMNS)) for r in theirs], "paper_note": PAPER_NOTE,
            "paper_summary": summary(theirs)}


def summary(results: list[ClaimResult]) -> str:
    """'2 claims reproduced, 1 contradicted, 1 inconclusive, 1 not tested'."""
    verdicts = [r.verdict for r in results]
    parts = [f"{verdicts.count(v)} {v}" for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED) if v in verdicts]
    return f"{len(results)} claims: " + ", ".join(parts)


MATCHING_RULE = (f"Equal sparsity: each row's global-equivalent sparsity is its rate for full (global) and random, "
                 f"rate/2 for upper and lower (they prune half of the encoder layers) and the mean of the two rates "
                 f"for mixed rows; a row is compared with the row of the other method whose global-equivalent "
                 f"sparsity is nearest, within {MATCH_TOL:g} (so upper-0.95 and lower-0.95, 0.475, face full-0.495 "
                 f"and random-0.495, as in the paper's Fig 6). The sparsity column is the global row's.")
LEGEND = ("Effect [95% paired bootstrap interval], oriented so that a positive effect favours the first row "
          "(for perplexity: lower is better). ✔ reproduced: the interval lies on the claim's side of its threshold "
          "(0, or the stated margin); ✘ contradicted: it lies on the other side; ~ inconclusive: it straddles the "
          "threshold, or no interval exists. Intervals are not adjusted for multiple comparisons: about 1 in 20 "
          "comparisons with no real difference shows ✔ or ✘ by chance, so read the count line, not one cell. A "
          "claim is reproduced when its reproduced comparisons are at least half and outnumber the contradicted "
          "ones (contradicted symmetrically; 'sometimes': when any comparison is reproduced).")
PAPER_NOTE = (f"{paper.PAPER_CITATION}: point values only, so no interval is possible; a comparison is judged on "
              f"its sign, and a difference smaller than {PAPER_MARGIN:g} ({PAPER_MARGIN:.0%} of the smaller value "
              "for perplexity) is inconclusive. The thresholds of 'close' and 'toward chance' are the same as "
              "above, judged on the point value. Fig 7 rows are compared with the same dense row (printed in both "
              "figures).")
