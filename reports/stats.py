"""Leaderboard statistics from per-example arrays (benchmarks/predictions.py): metrics, bootstrap intervals,
paired differences, a paired permutation test and McNemar's test. numpy and scipy only (no torch).

Every metric is computed for a whole matrix of resamples at once: ``fn(arrays, w)`` with ``w`` of shape
(units, resamples), how often each resample drew each unit, returns one value per resample. The resamples
depend only on the number of units and the fixed ``SEED``, so every row of a column (same dev examples,
same order) is resampled with the same indices: the difference of two rows' replicates *is* their paired
bootstrap (Koehn 2004; Berg-Kirkpatrick et al. 2012). docs/statistics.md explains the choices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from benchmarks import predictions as P

SEED = 20221  # fixed: the same records give the same intervals on every run
RESAMPLES = 2000
LEVEL = 0.95
Arrays = dict  # array name (without prefix) -> np.ndarray, one seed of one cell


# -- metrics, vectorised over resamples -----------------------------------------------------------
# A resample is a column of weights, how many times it drew each unit: ``w`` has shape (units, resamples)
# (``unit_weights``). Sums over resamples are then one product ``x @ w``, and gathering units gathers whole
# contiguous rows, which is what keeps 2,000 resamples of a few thousand examples fast.

def _sum(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) @ w


def _accuracy(a: Arrays, w: np.ndarray) -> np.ndarray:
    return _sum(a[P.PRED] == a[P.LABEL], w) / w.sum(axis=0)


def _f1(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Binary F1 of class 1; 0 where undefined (as benchmarks.tasks.glue.binary_f1)."""
    pred, label = (a[P.PRED] == 1), (a[P.LABEL] == 1)
    tp, denom = _sum(pred & label, w), _sum(pred, w) + _sum(label, w)
    return np.where(denom == 0, 0.0, 2 * tp / np.maximum(denom, 1))


def _tie_groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order that sorts x, start of each run of equal values in that order, tie group of each unit)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    group = np.empty(len(x), dtype=np.intp)
    group[order] = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(x)]))
    return order, starts, group


def _group_sums(w: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Rows of ``w`` summed per tie group (groups in increasing value): shape (groups, resamples)."""
    sorted_w = w[order]
    return sorted_w if len(starts) == len(order) else np.add.reduceat(sorted_w, starts, axis=0)


def _ranks(w: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(average rank of each tie group per resample, the group's weight, each unit's group).

    Ranks are 1-based with ties averaged, as scipy.stats.rankdata: a group's rank is the weight of the
    smaller groups plus (its own weight + 1) / 2, the mean of the ranks its copies take in the resample."""
    order, starts, group = _tie_groups(np.asarray(x))
    weight = _group_sums(w, order, starts)
    return np.cumsum(weight, axis=0) - weight + (weight + 1) / 2, weight, group


def _roc_auc(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Mann-Whitney form of ROC AUC (ties count a half, as sklearn); nan without both classes."""
    positive = (a[P.LABEL] == 1)
    ranks, _, group = _ranks(w, a[P.SCORE])
    rank_sum = (ranks[group[positive]] * w[positive]).sum(axis=0)
    n1 = _sum(positive, w)
    n0 = w.sum(axis=0) - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def _r_from_sums(n, sx, sy, sxx, syy, sxy) -> np.ndarray:
    """Pearson r from weighted sums; 0 where either variable is constant (the tasks' convention)."""
    cxx, cyy, cxy = sxx - sx * sx / n, syy - sy * sy / n, sxy - sx * sy / n
    denom = np.sqrt(np.maximum(cxx, 0) * np.maximum(cyy, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 1e-9 * (sxx + syy + 1e-300), cxy / denom, 0.0)


def _pearson(a: Arrays, w: np.ndarray) -> np.ndarray:
    x, y = a[P.PRED].astype(np.float64), a[P.LABEL].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()  # centred first: fewer cancellation errors in the sums
    return _r_from_sums(w.sum(axis=0), x @ w, y @ w, (x * x) @ w, (y * y) @ w, (x * y) @ w)


def _spearman(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Pearson r of the resample's average ranks (scipy.stats.spearmanr)."""
    rx, wx, gx = _ranks(w, a[P.PRED])
    ry, wy, gy = _ranks(w, a[P.LABEL])
    cross = (w * rx[gx] * ry[gy]).sum(axis=0)
    return _r_from_sums(w.sum(axis=0), (wx * rx).sum(0), (wy * ry).sum(0), (wx * rx * rx).sum(0),
                        (wy * ry * ry).sum(0), cross)


def _mlm_accuracy(a: Arrays, w: np.ndarray) -> np.ndarray:
    return _sum(a[P.MLM_CORRECT], w) / _sum(a[P.MLM_TOKENS], w)


def _mlm_ppl(a: Arrays, w: np.ndarray) -> np.ndarray:
    return np.exp(_sum(a[P.MLM_NLL], w) / _sum(a[P.MLM_TOKENS], w))


def _drift(a: Arrays, w: np.ndarray) -> np.ndarray:
    return _sum(a[P.DRIFT], w) / w.sum(axis=0)


# The MLM baselines' inputs, written by the MLM task beside its own arrays (names agreed with it): per masked
# position in block order (or already summed per block), whether the most frequent token of the fitting text is
# the target, and the log-probability of the target under a unigram model of the fitting text.
MFT_CORRECT = "baseline_mft_correct"
UNIGRAM_LOGP = "baseline_unigram_logp"


@dataclass(frozen=True)
class MetricSpec:
    """How a record metric is recomputed from arrays, and which array decides collapse (None: never)."""

    fn: Callable[[Arrays, np.ndarray], np.ndarray]
    needs: tuple
    collapse_on: str | None = None
    regression: bool = False
    optional: tuple = ()  # arrays read when present (the MLM baselines' per-unit inputs)


# Record metric base name -> spec; a record metric is ``<prefix><base>`` (MNLI: e.g. ``mismatched_accuracy``).
METRICS = {
    "mlm_accuracy": MetricSpec(_mlm_accuracy, (P.MLM_CORRECT, P.MLM_TOKENS), optional=(MFT_CORRECT,)),
    "mlm_ppl": MetricSpec(_mlm_ppl, (P.MLM_NLL, P.MLM_TOKENS), optional=(UNIGRAM_LOGP,)),
    "drift_cosine": MetricSpec(_drift, (P.DRIFT,)),
    "accuracy": MetricSpec(_accuracy, (P.PRED, P.LABEL), P.PRED),
    "f1": MetricSpec(_f1, (P.PRED, P.LABEL), P.PRED),
    "roc_auc": MetricSpec(_roc_auc, (P.SCORE, P.LABEL), P.SCORE, regression=True),
    "auc": MetricSpec(_roc_auc, (P.SCORE, P.LABEL), P.SCORE, regression=True),
    "pearson": MetricSpec(_pearson, (P.PRED, P.LABEL), P.PRED, regression=True),
    "spearman": MetricSpec(_spearman, (P.PRED, P.LABEL), P.PRED, regression=True),
}


def split_metric(metric: str) -> tuple[str, MetricSpec] | None:
    """(array prefix, spec) of a record metric name, or None when it cannot be recomputed from arrays."""
    for base in sorted(METRICS, key=len, reverse=True):  # longest first: mlm_accuracy is not <mlm_>accuracy
        if metric.endswith(base):
            return metric[: -len(base)], METRICS[base]
    return None


def cell_arrays(arrays: dict | None, metric: str) -> Arrays | None:
    """The arrays one metric needs from a record's npz (prefix stripped), or None when any is missing."""
    parsed = split_metric(metric)
    if arrays is None or parsed is None:
        return None
    prefix, spec = parsed
    names = set(spec.needs) | ({spec.collapse_on} if spec.collapse_on else set())
    if not all(prefix + n in arrays for n in names):
        return None
    out = {n: np.asarray(arrays[prefix + n]) for n in names}
    lengths = {len(v) for v in out.values()}
    if len(lengths) != 1 or lengths == {0}:
        return None
    for name in spec.optional:
        per_unit = _per_unit(arrays.get(prefix + name), out)
        if per_unit is not None:
            out[name] = per_unit
    return out


def _per_unit(values: np.ndarray | None, out: Arrays) -> np.ndarray | None:
    """An MLM baseline array summed per block: as saved when it has one value per block, summed over each
    block's masked positions when it has one per position (blocks in order); None when it fits neither."""
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    tokens = np.asarray(out[P.MLM_TOKENS], dtype=np.intp)
    if len(values) == len(tokens):
        return values
    if len(values) != tokens.sum() or np.any(tokens <= 0):
        return None
    return np.add.reduceat(values, np.r_[0, np.cumsum(tokens)[:-1]])


def units(a: Arrays) -> int:
    """Evaluation units (examples or MLM blocks) in one cell's arrays."""
    return len(next(iter(a.values())))


def value(a: Arrays, metric: str) -> float:
    """The metric on every unit (no resampling)."""
    _, spec = split_metric(metric)
    return float(spec.fn(a, np.ones((units(a), 1)))[0])


def is_collapsed(a: Arrays, metric: str) -> bool:
    """True when the array the metric's verdict rests on is constant (one class, one score): the check for a
    cell without every seed's arrays; ``label_blind`` judges the others against the label distribution."""
    _, spec = split_metric(metric)
    if spec.collapse_on is None:
        return False
    values = np.asarray(a[spec.collapse_on])
    return values.size > 0 and bool(np.ptp(values) == 0)


def _balanced_accuracy(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Mean over classes of the recall of each class: 1/K for any predictor that ignores its input."""
    recalls = []
    for cls in np.unique(a[P.LABEL]):
        of_class = a[P.LABEL] == cls
        recalls.append(_sum(of_class & (a[P.PRED] == a[P.LABEL]), w) / np.maximum(_sum(of_class, w), 1e-12))
    return np.mean(recalls, axis=0)


def label_blind(per_seed: list[Arrays], metric: str, level: float = LEVEL) -> bool:
    """Collapse judged against the label distribution: the 95% interval of balanced accuracy (classes) or of
    ROC AUC / the correlation (scores) contains what a predictor that ignores its input gets (1/K, 0.5, 0);
    constant outputs always. False for MLM and drift, which have no such level."""
    _, spec = split_metric(metric)
    if spec.collapse_on is None:
        return False
    if any(is_collapsed(a, metric) for a in per_seed):
        return True
    if spec.regression:
        blind_level = 0.5 if spec.fn is _roc_auc else 0.0
        reps = replicates(per_seed, metric)
    else:
        blind_level = 1 / len(np.unique(per_seed[0][P.LABEL]))
        reps = replicates(per_seed, metric, fn=_balanced_accuracy)
    return interval(reps, level)[0] <= blind_level


# -- trivial baselines ------------------------------------------------------------------------------
# The strongest predictor that learns nothing from the model, on the same units: a column whose dense row does
# not beat it (95% paired interval above it) cannot rank methods (docs/statistics.md, "admissible columns").

def _majority(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Accuracy of always predicting the most frequent label of the evaluated units."""
    values, counts = np.unique(a[P.LABEL], return_counts=True)
    return _sum(a[P.LABEL] == values[np.argmax(counts)], w) / w.sum(axis=0)


def _always_positive_f1(a: Arrays, w: np.ndarray) -> np.ndarray:
    """F1 of class 1 for a predictor that always says 1: 2p / (p + n); always 0 is worse (F1 0)."""
    positives = _sum(a[P.LABEL] == 1, w)
    return 2 * positives / (positives + w.sum(axis=0))


def _constant(level: float) -> Callable[[Arrays, np.ndarray], np.ndarray]:
    def fn(a: Arrays, w: np.ndarray) -> np.ndarray:
        return np.full(w.shape[1], level)
    return fn


def _mft_accuracy(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Masked-token accuracy of always predicting the fitting text's most frequent token."""
    return _sum(a[MFT_CORRECT], w) / _sum(a[P.MLM_TOKENS], w)


def _unigram_ppl(a: Arrays, w: np.ndarray) -> np.ndarray:
    """Perplexity of the fitting text's unigram model on the masked targets."""
    return np.exp(-_sum(a[UNIGRAM_LOGP], w) / _sum(a[P.MLM_TOKENS], w))


# metric function -> (baseline name, its function, the array it needs beyond the metric's own, or None)
BASELINES = {
    _accuracy: ("majority class", _majority, None),
    _f1: ("always positive", _always_positive_f1, None),
    _roc_auc: ("chance (0.5)", _constant(0.5), None),
    _pearson: ("no correlation (0)", _constant(0.0), None),
    _spearman: ("no correlation (0)", _constant(0.0), None),
    _mlm_accuracy: ("most frequent token", _mft_accuracy, MFT_CORRECT),
    _mlm_ppl: ("unigram model", _unigram_ppl, UNIGRAM_LOGP),
}


def baseline_name(metric: str) -> str | None:
    """The trivial baseline a metric is judged against, or None (drift: nothing to beat)."""
    parsed = split_metric(metric)
    found = BASELINES.get(parsed[1].fn) if parsed else None
    return found[0] if found else None


def baseline_replicates(per_seed: list[Arrays], metric: str, resamples: int = RESAMPLES) -> np.ndarray | None:
    """Bootstrap replicates of the metric's trivial baseline on the same resamples as the metric's own
    (so dense minus baseline is a paired difference), or None when its inputs are not in the arrays."""
    _, spec = split_metric(metric)
    found = BASELINES.get(spec.fn)
    if found is None or (found[2] is not None and not all(found[2] in a for a in per_seed)):
        return None
    return replicates(per_seed, metric, resamples, fn=found[1])


def baseline_value(per_seed: list[Arrays], metric: str) -> float | None:
    """The trivial baseline on every unit (mean over seeds), or None when it cannot be computed."""
    _, spec = split_metric(metric)
    found = BASELINES.get(spec.fn)
    if found is None or (found[2] is not None and not all(found[2] in a for a in per_seed)):
        return None
    return float(np.mean([found[1](a, np.ones((units(a), 1)))[0] for a in per_seed]))


# -- resampling -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def unit_indices(n: int, resamples: int = RESAMPLES) -> np.ndarray:
    """(resamples, n) indices drawn with replacement; a function of (n, resamples) only, so shared by rows."""
    return np.random.default_rng([SEED, n]).integers(0, n, size=(resamples, n))


@functools.lru_cache(maxsize=16)
def unit_weights(n: int, resamples: int = RESAMPLES) -> np.ndarray:
    """(n, resamples) draw counts of ``unit_indices``: column b says how often resample b took each unit."""
    idx = unit_indices(n, resamples)
    flat = (idx + n * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * n).reshape(resamples, n)
    weights = np.ascontiguousarray(counts.T, dtype=np.float64)
    weights.flags.writeable = False  # cached and shared: nobody may change it
    return weights


@functools.lru_cache(maxsize=16)
def seed_indices(k: int, resamples: int = RESAMPLES) -> np.ndarray:
    """(resamples, k) seed positions drawn with replacement (one seed: all zeros)."""
    return np.random.default_rng([SEED, 0, k]).integers(0, k, size=(resamples, k))


def replicates(per_seed: list[Arrays], metric: str, resamples: int = RESAMPLES,
               fn: Callable[[Arrays, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Bootstrap replicates of the seed-mean of ``metric``: seeds and units resampled, units shared by seeds.

    Replicate b averages, over k seeds drawn with replacement, each seed's metric on the b-th resample of
    units (the same units for every seed: they share the dev set). ``fn`` replaces the metric's own function
    (a baseline's, a balanced accuracy) on the same resamples."""
    _, spec = split_metric(metric)
    fn = fn or spec.fn
    n = units(per_seed[0])
    if any(units(a) != n for a in per_seed):
        raise ValueError("every seed of a cell must have the same evaluation units")
    weights = unit_weights(n, resamples)
    by_seed = np.stack([fn(a, weights) for a in per_seed])  # (k, resamples)
    chosen = seed_indices(len(per_seed), resamples)  # (resamples, k)
    return by_seed[chosen, np.arange(resamples)[:, None]].mean(axis=1)


def interval(reps: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (Efron & Tibshirani 1993, ch. 13); nan replicates dropped."""
    tail = 100 * (1 - level) / 2
    reps = np.asarray(reps)
    lo, hi = (np.nanpercentile if np.isnan(reps).any() else np.percentile)(reps, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_interval(reps_a: np.ndarray, reps_b: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of a - b from replicates drawn on the same resamples (paired bootstrap)."""
    if reps_a.shape != reps_b.shape:
        raise ValueError("paired replicates must come from the same resamples")
    return interval(reps_a - reps_b, level)


def excludes_zero(bounds: tuple[float, float]) -> bool:
    """True when an interval lies entirely on one side of 0."""
    return bounds[0] > 0 or bounds[1] < 0


# -- classical paired tests (cross-checks; see docs/statistics.md) ----------------------------------

def paired_permutation_p(diff: np.ndarray, resamples: int = 10000) -> float:
    """Two-sided p of a paired sign-flip permutation test of mean(diff) = 0 (exact when 2^n <= resamples).

    Randomised: p counts the observed statistic, (1 + hits) / (1 + resamples) as scipy does."""
    diff = np.asarray(diff, dtype=np.float64)
    n = diff.size
    observed = abs(diff.mean())
    if 2 ** n <= resamples:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        stats = np.abs((signs * diff).mean(axis=1))
        return float(np.mean(stats >= observed * (1 - 1e-12)))
    signs = np.random.default_rng(SEED).choice([-1.0, 1.0], size=(resamples, n))
    hits = np.sum(np.abs((signs * diff).mean(axis=1)) >= observed * (1 - 1e-12))
    return float((1 + hits) / (1 + resamples))


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar test of equal accuracy on the same examples: a binomial test on the discordant pairs."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


# -- tests on paired replicates (reports.claims, the ≈ mark) -----------------------------------------
# A one-sided p-value of "effect > threshold" from bootstrap replicates of the effect is the share of replicates
# at or below the threshold: it is below a/2 exactly when the 95% percentile interval lies above the threshold,
# so a test and the printed interval never disagree (the percentile test; Efron & Tibshirani 1993, ch. 16).

TAIL_HITS = 10  # fewer replicates than this beyond the threshold cannot resolve a small p: use the normal tail


def p_above(reps: np.ndarray, threshold: float = 0.0) -> float:
    """One-sided bootstrap p of 'effect > threshold': the share of replicates at or below the threshold,
    (1 + hits) / (1 + B); where fewer than TAIL_HITS replicates reach it (p below about 0.005 with 2,000
    resamples, too coarse for a Holm step over dozens of comparisons), the normal tail of the replicates'
    mean and spread. nan replicates are dropped; 1 when none is left."""
    reps = np.asarray(reps, dtype=np.float64)
    reps = reps[~np.isnan(reps)]
    if not reps.size:
        return 1.0
    hits = int(np.sum(reps <= threshold))
    if hits >= TAIL_HITS:
        return float((1 + hits) / (1 + reps.size))
    spread = float(np.std(reps, ddof=1)) if reps.size > 1 else 0.0
    if spread == 0:  # a constant difference: decided by its sign
        return 0.0 if reps[0] > threshold else 1.0
    return float(NormalDist().cdf(-(reps.mean() - threshold) / spread))


def p_below(reps: np.ndarray, threshold: float = 0.0) -> float:
    """One-sided bootstrap p of 'effect < threshold'."""
    return p_above(-np.asarray(reps, dtype=np.float64), -threshold)


def p_equivalent(reps: np.ndarray, margin: float) -> float:
    """Two one-sided tests (Schuirmann 1987) of |effect| < margin: the larger of the two one-sided p-values."""
    return max(p_above(reps, -margin), p_below(reps, margin))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values: reject where adjusted p < alpha, familywise error <= alpha."""
    order = np.argsort(pvalues, kind="stable")
    m = len(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def detectable(reps: np.ndarray, alpha: float, power: float = 0.8) -> float:
    """Minimum detectable effect of a one-sided test at level alpha with the given power, from the spread of
    the paired replicates (normal approximation: (z_{1-alpha} + z_power) times the bootstrap standard error)."""
    reps = np.asarray(reps, dtype=np.float64)
    spread = float(np.nanstd(reps, ddof=1)) if np.sum(~np.isnan(reps)) > 1 else float("nan")
    return (NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)) * spread
