"""The paper's Fig 6 / Fig 7 claims as statistical tests, on a leaderboard's records and on the paper's own table.

Each claim is a ``ClaimSpec``: the family of comparisons it makes (rows at equal sparsity, on each admissible
column's primary metric: one vote per task) and its decision rule with familywise error control. A comparison's
p-values come from the paired bootstrap replicates of reports.stats; the rules are in docs/statistics.md and the
calibration by simulation in tests/test_claims_calibration.py. The paper's table has point values only: it is
judged by the same rules on the sign of its differences at the paper's printed precision, in other words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from reports import paper, stats
from reports.leaderboard import Board

REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED = "reproduced", "contradicted", "inconclusive", "not tested"
# The paper's table (point values) has its own words, never "reproduced" next to interval-based verdicts.
CONSISTENT = "consistent at the paper's precision"
INCONSISTENT = "not consistent at the paper's precision"
UNDECIDED = "not decided at the paper's precision"
PAPER_WORDS = {REPRODUCED: CONSISTENT, CONTRADICTED: INCONSISTENT, INCONCLUSIVE: UNDECIDED}
# Rows are at "equal sparsity" when their global-equivalent sparsities (rate for global and random, rate/2 for
# upper and lower, the mean of the two rates for mixed) differ by at most this; each row is matched to the
# nearest candidate, so upper-0.95 (0.475) faces full-0.495, as the paper groups its Fig 6 rows.
MATCH_TOL = 0.025
ALPHA = 0.05  # familywise error of a claim's verdict; each direction (reproduced, contradicted) gets ALPHA / 2
POWER = 0.8  # the power at which the minimum detectable effect is stated
EQUIV_SHARE = 0.2  # "close" / ≈: within this share of the column's dense-minus-baseline gap
MLM_FAR_FROM = 0.45  # the paper's exception: MLM at global-equivalent sparsity >= this is not close
FIG7_FROM = 0.7  # Fig 7 sparsities
CHANCE_SHARE = 0.5  # "toward chance": the row keeps less than this share of dense's gap above the baseline
# The paper prints three decimals: two rounded values' difference is off by up to one unit of the last digit.
PAPER_PRECISION = 0.001
# The primary metric of each task: the one column that votes (MLM accuracy and perplexity come from the same
# predictions; MRPC accuracy and F1 too; STS-B Pearson and Spearman from the same scores).
PRIMARY = {"mrpc": "accuracy", "stsb": "pearson", "qnli": "accuracy", "mnli": "accuracy", "sst2": "accuracy",
           "mlm": "mlm_accuracy"}
# The trivial baseline of the paper's columns: each GLUE dev set's majority share; 0 for STS-B. The paper's MLM
# text has no published baseline; 0 is used (its dense 0.512 is far above any one-token predictor).
PAPER_BASELINE = {("mrpc", "accuracy"): 279 / 408, ("qnli", "accuracy"): 2761 / 5463,
                  ("mnli", "accuracy"): 3479 / 9815, ("sst2", "accuracy"): 444 / 872, ("stsb", "pearson"): 0.0,
                  ("mlm", "mlm_accuracy"): 0.0}


@dataclass(frozen=True)
class ClaimSpec:
    """A paper claim as a test: its family of comparisons, the effect, and the decision rule."""

    key: str
    text: str  # the paper's claim
    rule: str  # every | some | equivalent | toward
    family: str  # which comparisons
    decision: str  # when it is reproduced / contradicted


SPECS = [
    ClaimSpec("global-best", "Global magnitude pruning is the best method at each sparsity", "every",
              "full-s against every other row at equal sparsity; effect = global minus the other row",
              "intersection-union: reproduced on a task when global beats every other row at every sparsity "
              "(each one-sided p < a/2); contradicted when some row beats global (Holm over the claim's family)"),
    ClaimSpec("lower-beats-upper", "Pruning the lower half beats pruning the upper half at equal sparsity", "every",
              "lower-X against upper-X; effect = lower minus upper",
              "intersection-union over every pair (each p < a/2); contradicted when upper beats lower in some pair "
              "(Holm over the family)"),
    ClaimSpec("lower-close", f"Lower stays close to global, except MLM at sparsity >= {MLM_FAR_FROM:g}", "equivalent",
              "global against lower at equal sparsity; effect = global minus lower",
              f"equivalence by two one-sided tests within a margin of {EQUIV_SHARE:g} times the column's "
              "dense-minus-baseline gap (every pair, each p < a/2); contradicted when some pair lies outside the "
              f"margin (Holm); for MLM at >= {MLM_FAR_FROM:g} the claim is the reverse (global ahead by more than "
              "the margin)"),
    ClaimSpec("random-beats-upper", "Random pruning sometimes beats upper", "some",
              "random against upper at equal sparsity; effect = random minus upper",
              "existential: reproduced when some pair shows random ahead with Holm-adjusted p < a/2 over the "
              "family; contradicted when upper is ahead in every pair (each p < a/2)"),
    ClaimSpec("toward-chance", f"At Fig 7 sparsities (>= {FIG7_FROM:g}) every method falls toward chance", "toward",
              "every row at >= 0.7 against dense and the column's trivial baseline; effect = the share of dense's "
              "gap above the baseline the row keeps",
              f"tested as (row - baseline) - {CHANCE_SHARE:g} (dense - baseline) < 0 (no division by the gap), "
              "every row (each p < a/2); contradicted when some row keeps more than half (Holm)"),
]
CLAIMS = {s.key: s for s in SPECS}


@dataclass(eq=False)
class ClaimColumn:
    """A column as the claims see it: its primary metric, trivial baseline and admissibility."""

    key: object
    title: str
    task: str
    metric: str
    higher_is_better: bool
    baseline: float | None = None  # the trivial baseline's value
    base_reps: object = None  # its bootstrap replicates (np.ndarray), paired with the rows'
    admissible: bool = True
    why: str = ""  # why the column is not admissible


@dataclass
class ClaimRow:
    """A row: label, method, global-equivalent sparsity, and per column key (value, replicates or None, collapsed)."""

    label: str
    method: str
    nominal: float
    cells: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """One tested comparison: who against whom, on which column, the effect, its interval, tests and verdict."""

    claim: str
    sparsity: float
    column: str
    first: str
    second: str
    effect: float | None
    bounds: tuple | None  # 95% interval of the effect
    verdict: str
    why: str = ""  # why no test (no arrays, collapsed)
    p: float | None = None  # one-sided p of the claim's side (equivalence: the TOST p)
    p_reverse: float | None = None  # p of the other side (family-adjusted when the rule says so)
    mde: float | None = None  # smallest effect (or margin) the comparison detects with 80% power
    margin: float | None = None  # equivalence margin, or the meaningful effect size of the column


@dataclass
class TaskVerdict:
    """A claim's verdict on one column, and whether the data or reality is why it is inconclusive."""

    column: str
    verdict: str
    comparisons: int
    reason: str = ""


@dataclass
class ClaimResult:
    """A claim, its comparisons, its verdicts per task and overall."""

    key: str
    text: str  # the paper's claim
    how: str  # how it is tested
    comparisons: list
    verdict: str
    tasks: list = field(default_factory=list)  # TaskVerdict per admissible column
    excluded: list = field(default_factory=list)  # (column title, why) of columns left out

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.comparisons)


# -- rows from a board or from the paper -----------------------------------------------------------

def base_metric(metric: str) -> str:
    """A record metric without its split prefix ('mismatched_accuracy' -> 'accuracy')."""
    parsed = stats.split_metric(metric)
    return metric if parsed is None else metric[len(parsed[0]):]


def is_primary(task: str, metric: str) -> bool:
    """True for the metric that votes for its task (PRIMARY; unprefixed, so MNLI votes with matched)."""
    return PRIMARY.get(task) == metric


def board_rows(board: Board) -> tuple[list[ClaimColumn], list[ClaimRow]]:
    """The primary columns of a leaderboard with their baselines, and its rows with replicates where complete."""
    columns = []
    for c in board.columns:
        if not is_primary(c.task, c.metric):
            continue
        base = board.column_baselines.get(c)
        ok = base is not None and base.admissible
        columns.append(ClaimColumn(c, c.title, c.task, c.metric, c.higher_is_better,
                                   base.value if base else None, base.reps if base else None, ok,
                                   "" if ok else (base.why if base else "no baseline")))
    rows = []
    for row in board.rows:
        out = ClaimRow(row.label, row.method, row.nominal)
        for column in columns:
            entry = row.entries[column.key]
            if entry.values and entry.complete:
                out.cells[column.key] = (entry.mean, entry.reps, entry.collapsed)
        rows.append(out)
    return columns, rows


def paper_tables() -> list[tuple[int, list[ClaimColumn], list[ClaimRow]]]:
    """The paper's Fig 6 and Fig 7 as claim rows (point values; baselines from the GLUE dev sets)."""
    columns = [ClaimColumn(key, title, *key, higher_is_better=True, baseline=PAPER_BASELINE.get(key))
               for title, key in paper.PAPER_COLUMNS.items() if is_primary(*key)]
    out = []
    for figure in (6, 7):
        rows = []
        for raw in paper.paper_rows():
            if raw["figure"] != figure:
                continue
            method, nominal = parse_label(raw["label"])
            cells = {c.key: (raw[c.key], None, False) for c in columns}
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


# -- measuring one comparison ----------------------------------------------------------------------

def _sign(column: ClaimColumn) -> float:
    return 1.0 if column.higher_is_better else -1.0


def _untestable(*cells: tuple) -> str:
    """Why two or three cells cannot be tested together, or ''."""
    if any(c[2] for c in cells):
        return "collapsed"
    reps = [c[1] for c in cells]
    if any(r is None for r in reps) or len({r.shape for r in reps}) != 1:
        return "no interval"
    return ""


def gap(column: ClaimColumn, dense: ClaimRow | None) -> float | None:
    """Dense minus the column's trivial baseline (point values), oriented so that positive favours dense."""
    cell = dense.cells.get(column.key) if dense is not None else None
    if cell is None or column.baseline is None:
        return None
    return _sign(column) * (cell[0] - column.baseline)


def _point_ps(statistic: float, above: float) -> tuple[float, float]:
    """The paper's table: (p, p_reverse) as 0 or 1, the sign of statistic - above beyond the printed precision."""
    if statistic - above > PAPER_PRECISION:
        return 0.0, 1.0
    if statistic - above < -PAPER_PRECISION:
        return 1.0, 0.0
    return 1.0, 1.0


def _spread(reps: np.ndarray) -> float:
    return float(np.nanstd(reps, ddof=1))


def _pairwise(spec: ClaimSpec, a: tuple, b: tuple, column: ClaimColumn, margin: float | None, far: bool) -> dict:
    """p-values, interval and spread of effect = first - second (oriented) for the pairwise rules."""
    effect = _sign(column) * (a[0] - b[0])
    if a[1] is None:  # the paper's table
        if spec.rule != "equivalent":
            return {"effect": effect, **dict(zip(("p", "p_reverse"), _point_ps(effect, 0.0), strict=True))}
        inside = abs(effect) < margin - PAPER_PRECISION
        outside = abs(effect) > margin + PAPER_PRECISION
        p, rev = (1.0 - outside, 1.0 - inside) if far else (1.0 - inside, 1.0 - outside)
        return {"effect": effect, "p": p, "p_reverse": rev}
    d = _sign(column) * (a[1] - b[1])
    out = {"effect": effect, "bounds": stats.interval(d), "se": _spread(d)}
    if spec.rule != "equivalent":
        return {**out, "p": stats.p_above(d), "p_reverse": stats.p_below(d)}
    outside = min(1.0, 2 * min(stats.p_above(d, margin), stats.p_below(d, -margin)))
    if far:  # the exception: global ahead by more than the margin
        return {**out, "p": stats.p_above(d, margin), "p_reverse": stats.p_equivalent(d, margin)}
    return {**out, "p": stats.p_equivalent(d, margin), "p_reverse": outside}


def compare(spec: ClaimSpec, first: ClaimRow, second: ClaimRow, sparsity: float, column: ClaimColumn,
            dense: ClaimRow | None) -> Comparison | None:
    """One pairwise comparison on a column, not yet judged (None when either row has no value there)."""
    a, b = first.cells.get(column.key), second.cells.get(column.key)
    if a is None or b is None:
        return None
    size = gap(column, dense)
    margin = EQUIV_SHARE * size if size is not None else None
    far = spec.rule == "equivalent" and column.task == "mlm" and sparsity >= MLM_FAR_FROM - 1e-9
    why = "" if a[1] is None and b[1] is None else _untestable(a, b)
    if spec.rule == "equivalent" and margin is None:
        why = "no baseline"
    if why:
        return Comparison(spec.key, sparsity, column.title, first.label, second.label,
                          _sign(column) * (a[0] - b[0]), None, INCONCLUSIVE, why, margin=margin)
    found = _pairwise(spec, a, b, column, margin, far)
    return Comparison(spec.key, sparsity, column.title, first.label, second.label, found["effect"],
                      found.get("bounds"), INCONCLUSIVE, "", found["p"], found["p_reverse"],
                      found.get("se"), margin)


def toward_chance(row: ClaimRow, dense: ClaimRow, column: ClaimColumn) -> Comparison | None:
    """The share of dense's gap above the baseline that a Fig 7 row keeps, tested without dividing by the gap:
    (row - baseline) - CHANCE_SHARE (dense - baseline) < 0 on paired replicates."""
    a, d = row.cells.get(column.key), dense.cells.get(column.key)
    size = gap(column, dense)
    if a is None or d is None or size is None:
        return None
    share = _sign(column) * (a[0] - column.baseline) / size if size > 0 else None
    base = (column.baseline, column.base_reps, False)
    # A collapsed row (no better than a label-blind predictor) is the claim's strongest case, not an untestable
    # one: it is tested like any other row. Only a collapsed dense row leaves nothing to measure the gap against.
    row_cell = (a[0], a[1], False)
    why = "" if a[1] is None and d[1] is None else _untestable(row_cell, d, base)
    if why or share is None:
        return Comparison("toward-chance", row.nominal, column.title, row.label, "dense", share, None,
                          INCONCLUSIVE, why or "dense not above the baseline")
    if a[1] is None:  # the paper's table
        statistic = _sign(column) * ((a[0] - column.baseline) - CHANCE_SHARE * (d[0] - column.baseline))
        rev, p = _point_ps(statistic, 0.0)
        return Comparison("toward-chance", row.nominal, column.title, row.label, "dense", share, None,
                          INCONCLUSIVE, "", p, rev)
    stat = _sign(column) * ((a[1] - column.base_reps) - CHANCE_SHARE * (d[1] - column.base_reps))
    lo, hi = stats.interval(stat)
    # the share's interval: the statistic's, in units of the point gap (a fixed scale: no random denominator)
    bounds = (CHANCE_SHARE + lo / size, CHANCE_SHARE + hi / size)
    return Comparison("toward-chance", row.nominal, column.title, row.label, "dense", share, bounds, INCONCLUSIVE,
                      "", stats.p_below(stat), stats.p_above(stat), _spread(stat) / size, EQUIV_SHARE)


# -- judging a family ------------------------------------------------------------------------------

def _mde(spec: ClaimSpec, c: Comparison, family: int) -> float | None:
    """The smallest effect the comparison detects with POWER at the level its rule uses (equivalence: the
    smallest margin within which a true difference of 0 is shown)."""
    if c.mde is None:  # holds the replicates' spread until judged
        return None
    alpha = ALPHA / 2 / (family if spec.rule == "some" else 1)
    power = 1 - (1 - POWER) / 2 if spec.rule == "equivalent" else POWER
    return float((NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)) * c.mde)


def judge(spec: ClaimSpec, comparisons: list[Comparison]) -> list[Comparison]:
    """Each comparison's verdict under the claim's rule: the existential side Holm-adjusted over the family,
    the universal side (intersection-union) at ALPHA / 2 each."""
    tested = [c for c in comparisons if c.p is not None]
    p = [c.p for c in tested]
    rev = [c.p_reverse for c in tested]
    if spec.rule == "some":
        p = stats.holm(p)
    else:
        rev = stats.holm(rev)
    decided = {}
    for c, forward, backward in zip(tested, p, rev, strict=True):
        verdict = REPRODUCED if forward < ALPHA / 2 else CONTRADICTED if backward < ALPHA / 2 else INCONCLUSIVE
        decided[id(c)] = Comparison(**{**c.__dict__, "verdict": verdict, "mde": _mde(spec, c, len(tested))})
    return [decided.get(id(c), c) for c in comparisons]


def combine(rule: str, verdicts: list[str]) -> str:
    """A verdict from parts: universal rules need every part reproduced and fall on one contradicted part;
    'some' needs one part reproduced and falls when every part is contradicted."""
    if not verdicts:
        return UNTESTED
    if rule == "some":
        if REPRODUCED in verdicts:
            return REPRODUCED
        return CONTRADICTED if all(v == CONTRADICTED for v in verdicts) else INCONCLUSIVE
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return REPRODUCED if all(v == REPRODUCED for v in verdicts) else INCONCLUSIVE


def _reason(spec: ClaimSpec, comparisons: list[Comparison], size: float | None) -> str:
    """Why a task is inconclusive: the data (its least powered undecided comparison cannot detect an effect of
    EQUIV_SHARE of the gap) or reality (it could, and the effects are smaller)."""
    open_ = [c for c in comparisons if c.verdict == INCONCLUSIVE]
    blind = [c for c in open_ if c.why]
    if blind:
        return f"{len(blind)} comparison(s) without a test ({', '.join(sorted({c.why for c in blind}))})"
    mdes = [c.mde for c in open_ if c.mde is not None]
    if not mdes:
        return "undecided at the paper's precision" if open_ else ""
    worst = max(mdes)
    meaningful = EQUIV_SHARE if spec.rule == "toward" else (EQUIV_SHARE * size if size else None)
    if meaningful is None:
        return f"smallest detectable effect {worst:.3f}"
    what = "margin it could establish" if spec.rule == "equivalent" else "smallest effect it detects"
    unit = "of the gap" if spec.rule == "toward" else f"({EQUIV_SHARE:g} of the gap)"
    if worst > meaningful:
        return (f"the data: the least powered undecided comparison's {what} at 80% power is {worst:.3f}, "
                f"more than {meaningful:.3f} {unit}")
    return (f"reality: every undecided comparison detects {meaningful:.3f} {unit} with 80% power "
            f"(at worst {worst:.3f}); the effects are smaller")


def check(columns: list[ClaimColumn], rows: list[ClaimRow], keys: list[str] | None = None) -> list[ClaimResult]:
    """Every claim (or those in ``keys``) tested on the admissible columns of the rows (replicates; the paper's
    rows: point values)."""
    dense = next((r for r in rows if r.method == "dense"), None)
    usable = [c for c in columns if c.admissible]
    excluded = [(c.title, c.why) for c in columns if not c.admissible]
    results = []
    for spec in SPECS:
        if keys is not None and spec.key not in keys:
            continue
        if spec.rule == "toward":
            high = [r for r in rows if r.method != "dense" and r.nominal >= FIG7_FROM - 1e-9]
            found = [toward_chance(r, dense, c) for c in usable for r in high] if dense else []
        else:
            found = [compare(spec, a, b, s, c, dense) for c in usable for a, b, s in pairs(spec.key, rows)]
        comparisons = judge(spec, [c for c in found if c is not None])
        tasks = []
        for column in usable:
            mine = [c for c in comparisons if c.column == column.title]
            if mine:
                verdict = combine(spec.rule, [c.verdict for c in mine])
                reason = _reason(spec, mine, gap(column, dense)) if verdict == INCONCLUSIVE else ""
                tasks.append(TaskVerdict(column.title, verdict, len(mine), reason))
        verdict = combine(spec.rule, [t.verdict for t in tasks])
        how = f"{spec.family}. Decision: {spec.decision}."
        results.append(ClaimResult(spec.key, spec.text, how, comparisons, verdict, tasks, excluded))
    return results


def speaks_about(board: Board) -> bool:
    """True when some claim has rows of this board to compare (whether or not its columns are admissible)."""
    rows = [ClaimRow(r.label, r.method, r.nominal) for r in board.rows]
    high = any(r.method != "dense" and r.nominal >= FIG7_FROM - 1e-9 for r in rows)
    return any(pairs(s.key, rows) for s in SPECS if s.rule != "toward") or (high and any(r.dense for r in board.rows))


def check_board(board: Board) -> list[ClaimResult]:
    """The claims on a leaderboard's records (paired bootstrap replicates, admissible columns only)."""
    return check(*board_rows(board))


def check_paper() -> list[ClaimResult]:
    """The claims on the paper's own Figs 6 and 7 (point values; Fig 7 rows join Fig 6's dense row)."""
    (_, columns, fig6), (_, _, fig7) = paper_tables()
    rows = fig6 + [r for r in fig7 if r.method != "dense"]
    return check(columns, rows)


# -- views for the templates -----------------------------------------------------------------------

MARKS = {REPRODUCED: "✔", CONTRADICTED: "✘", INCONCLUSIVE: "~"}


def count_line(result: ClaimResult) -> str:
    """'12 comparisons: 5 reproduced, 1 contradicted, 6 inconclusive (2 without a test)'."""
    n = len(result.comparisons)
    if not n:
        return "no comparison possible: no admissible column has rows this claim speaks about"
    parts = [f"{result.count(v)} {MARKS[v]}" for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE)]
    blind = sum(bool(c.why) for c in result.comparisons)
    tail = f" ({blind} without a test: collapsed or no per-example arrays)" if blind else ""
    return f"{n} comparison{'s' if n != 1 else ''}: " + ", ".join(parts) + tail


def effect_text(c: Comparison, digits: int = 3) -> str:
    """'+0.012 [+0.003, +0.021] ✔', '+0.012 ✔' (no interval) or '~ (collapsed)'."""
    if c.effect is None:
        return f"{MARKS[c.verdict]} ({c.why})"
    text = f"{c.effect:+.{digits}f}"
    if c.bounds is not None:
        text += f" [{c.bounds[0]:+.{digits}f}, {c.bounds[1]:+.{digits}f}]"
    return f"{text} {MARKS[c.verdict]}" + (f" ({c.why})" if c.why else "")


def _words(verdict: str, points: bool) -> str:
    return PAPER_WORDS.get(verdict, verdict) if points else verdict


def result_view(result: ClaimResult, titles: list[str], points: bool = False) -> dict:
    """One claim as tables: its verdict per task, then a row per compared pair and a column per task."""
    grid: dict[tuple, dict] = {}
    for c in result.comparisons:
        grid.setdefault((c.sparsity, c.first, c.second), {})[c.column] = c
    used = [t for t in titles if any(t in cells for cells in grid.values())]
    rows = [[f"{s:g}", f"{first} vs {second}"] + [effect_text(cells[t]) if t in cells else "" for t in used]
            for (s, first, second), cells in grid.items()]
    margins = {c.column: c.margin for c in result.comparisons if c.margin is not None}
    tasks = []
    for t in result.tasks:
        margin = f"margin ±{margins[t.column]:.3f}" if result.key == "lower-close" and t.column in margins else ""
        why = "; ".join(filter(None, [margin, "" if points else t.reason]))
        tasks.append([t.column, _words(t.verdict, points), str(t.comparisons), why])
    return {"key": result.key, "text": result.text, "how": result.how, "verdict": _words(result.verdict, points),
            "count": count_line(result), "headers": ["sparsity", "comparison"] + used, "rows": rows,
            "task_headers": ["task (primary metric)", "verdict", "comparisons", "why / margin"], "tasks": tasks,
            "excluded": "; ".join(f"{t}: {why}" for t, why in result.excluded)}


def section_view(board: Board) -> dict:
    """Both claim sections (our records, the paper's table) for the templates."""
    ours, theirs = check_board(board), check_paper()
    titles = [c.title for c in board.columns]
    return {"protocol": board.protocol, "rule": MATCHING_RULE, "legend": LEGEND,
            "ours": [result_view(r, titles) for r in ours], "ours_summary": summary(ours),
            "paper": [result_view(r, list(paper.PAPER_COLUMNS), points=True) for r in theirs],
            "paper_note": PAPER_NOTE, "paper_summary": summary(theirs, points=True)}


def summary(results: list[ClaimResult], points: bool = False) -> str:
    """'5 claims: 2 reproduced, 1 contradicted, 1 inconclusive, 1 not tested'."""
    verdicts = [r.verdict for r in results]
    parts = [f"{verdicts.count(v)} {_words(v, points)}" for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED)
             if v in verdicts]
    return f"{len(results)} claims: " + ", ".join(parts)


MATCHING_RULE = (f"Equal sparsity: each row's global-equivalent sparsity is its rate for full (global) and random, "
                 f"rate/2 for upper and lower (they prune half of the encoder layers) and the mean of the two rates "
                 f"for mixed rows; a row is compared with the row of the other method whose global-equivalent "
                 f"sparsity is nearest, within {MATCH_TOL:g} (so upper-0.95 and lower-0.95, 0.475, face full-0.495 "
                 f"and random-0.495, as in the paper's Fig 6). The sparsity column is the global row's.")
LEGEND = ("Only admissible columns enter (dense beats the column's trivial baseline with its 95% paired interval), "
          "and of each task only its primary metric (one vote per task: MRPC, QNLI, MNLI, SST-2 accuracy, STS-B "
          "Pearson, MLM accuracy). Effect [95% paired bootstrap interval], oriented so that a positive effect "
          "favours the first row. ✔ the comparison supports the claim, ✘ it contradicts it, ~ neither (or no test), "
          f"each decided by one-sided bootstrap tests at {ALPHA / 2:g} per side with the familywise control the "
          "claim states (Holm over the family for an existential side, intersection-union for a universal one), "
          "so the chance of a false verdict per claim is at most about "
          f"{ALPHA:g} (checked by simulation in tests/test_claims_calibration.py). A task's verdict follows the "
          "same rule over its comparisons; an inconclusive task says whether the data (the smallest effect it "
          f"could detect with {POWER:.0%} power exceeds {EQUIV_SHARE:g} of the dense-minus-baseline gap) or "
          "reality (it could, and the effects are smaller) is the reason.")
PAPER_NOTE = (f"{paper.PAPER_CITATION}: point values printed to three decimals, so no interval and no test is "
              "possible. The same rules are applied to the signs of the differences, a difference within "
              f"{PAPER_PRECISION:g} (the printed precision) deciding nothing, and the verdicts say only whether the "
              "printed values are consistent with the claim at the paper's precision: they are not reproductions "
              "and carry no error control. Baselines: each GLUE dev set's majority share (MRPC 279/408, QNLI "
              "2761/5463, MNLI matched 3479/9815, SST-2 444/872), 0 for STS-B and for MLM accuracy (no baseline "
              "is published for the paper's text). Fig 7 rows are compared with the dense row printed in both "
              "figures.")
