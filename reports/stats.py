"""Leaderboard statistics from per-example arrays (benchmarks/predictions.py): metrics, bootstrap intervals,
paired differences, a paired permutation test and McNemar's test. numpy and scipy only (no torch).

Every metric is computed for a whole matrix of resamples at once: ``fn(arrays, idx)`` with ``idx`` of shape
(resamples, units) returns one value per resample. The resample indices depend only on the number of
units and the fixed ``SEED``, so every row of a column (same dev examples, same order) is resampled with
the same indices: the difference of two rows' replicates *is* their paired bootstrap (Koehn 2004;
Berg-Kirkpatrick et al. 2012). docs/statistics.md explains the choices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchmarks import predictions as P

SEED = 20221  # fixed: the same records give the same intervals on every run
RESAMPLES = 2000
LEVEL = 0.95
Arrays = dict  # array name (without prefix) -> np.ndarray, one seed of one cell


# -- metrics, vectorised over resamples -----------------------------------------------------------

def _accuracy(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return (a[P.PRED] == a[P.LABEL]).astype(np.float64)[idx].mean(axis=-1)


def _f1(a: Arrays, idx: np.ndarray) -> np.ndarray:
    """Binary F1 of class 1; 0 where undefined (as benchmarks.tasks.glue.binary_f1)."""
    pred, label = (a[P.PRED] == 1), (a[P.LABEL] == 1)
    tp = (pred & label)[idx].sum(axis=-1)
    denom = pred[idx].sum(axis=-1) + label[idx].sum(axis=-1)
    return np.where(denom == 0, 0.0, 2 * tp / np.maximum(denom, 1))


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata  # scipy.stats imports slowly; only reports with arrays need it

    return rankdata(x, axis=-1)


def _roc_auc(a: Arrays, idx: np.ndarray) -> np.ndarray:
    """Mann-Whitney form of ROC AUC (ties count a half, as sklearn); nan without both classes."""
    positive = (a[P.LABEL] == 1)[idx]
    n1 = positive.sum(axis=-1)
    n0 = idx.shape[-1] - n1
    rank_sum = (_ranks(a[P.SCORE][idx]) * positive).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r; 0 for a constant row (the tasks' convention for a constant regressor)."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=-1) / denom, 0.0)


def _pearson(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return _correlation(a[P.PRED].astype(np.float64)[idx], a[P.LABEL].astype(np.float64)[idx])


def _spearman(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return _correlation(_ranks(a[P.PRED][idx]), _ranks(a[P.LABEL][idx]))


def _mlm_accuracy(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return a[P.MLM_CORRECT][idx].sum(axis=-1) / a[P.MLM_TOKENS][idx].sum(axis=-1)


def _mlm_ppl(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return np.exp(a[P.MLM_NLL][idx].sum(axis=-1) / a[P.MLM_TOKENS][idx].sum(axis=-1))


def _drift(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return a[P.DRIFT].astype(np.float64)[idx].mean(axis=-1)


@dataclass(frozen=True)
class MetricSpec:
    """How a record metric is recomputed from arrays, and which array decides collapse (None: never)."""

    fn: Callable[[Arrays, np.ndarray], np.ndarray]
    needs: tuple
    collapse_on: str | None = None
    regression: bool = False


# Record metric base name -> spec; a record metric is ``<prefix><base>`` (MNLI: e.g. ``mismatched_accuracy``).
METRICS = {
    "mlm_accuracy": MetricSpec(_mlm_accuracy, (P.MLM_CORRECT, P.MLM_TOKENS)),
    "mlm_ppl": MetricSpec(_mlm_ppl, (P.MLM_NLL, P.MLM_TOKENS)),
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
    return out if len(lengths) == 1 and lengths != {0} else None


def units(a: Arrays) -> int:
    """Evaluation units (examples or MLM blocks) in one cell's arrays."""
    return len(next(iter(a.values())))


def value(a: Arrays, metric: str) -> float:
    """The metric on every unit (no resampling)."""
    _, spec = split_metric(metric)
    n = units(a)
    return float(spec.fn(a, np.arange(n)[None, :])[0])


def is_collapsed(a: Arrays, metric: str) -> bool:
    """benchmarks.predictions.collapsed on the array the metric's verdict rests on (False for MLM, drift)."""
    _, spec = split_metric(metric)
    if spec.collapse_on is None:
        return False
    return P.collapsed(a[spec.collapse_on], spec.regression)


def chance(a: Arrays, metric: str) -> float | None:
    """The metric of a predictor that knows nothing: majority share, AUC 0.5, correlation 0, MLM 0."""
    _, spec = split_metric(metric)
    if spec.fn is _accuracy:
        _, counts = np.unique(a[P.LABEL], return_counts=True)
        return float(counts.max() / counts.sum())
    if spec.fn is _roc_auc:
        return 0.5
    if spec.fn in (_pearson, _spearman, _mlm_accuracy):
        return 0.0
    return None


# -- resampling -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def unit_indices(n: int, resamples: int = RESAMPLES) -> np.ndarray:
    """(resamples, n) indices drawn with replacement; a function of (n, resamples) only, so shared by rows."""
    return np.random.default_rng([SEED, n]).integers(0, n, size=(resamples, n))


@functools.lru_cache(maxsize=16)
def seed_indices(k: int, resamples: int = RESAMPLES) -> np.ndarray:
    """(resamples, k) seed positions drawn with replacement (one seed: all zeros)."""
    return np.random.default_rng([SEED, 0, k]).integers(0, k, size=(resamples, k))


def replicates(per_seed: list[Arrays], metric: str, resamples: int = RESAMPLES) -> np.ndarray:
    """Bootstrap replicates of the seed-mean of ``metric``: seeds and units resampled, units shared by seeds.

    Replicate b averages, over k seeds drawn with replacement, each seed's metric on the b-th resample of
    units (the same units for every seed: they share the dev set)."""
    _, spec = split_metric(metric)
    n = units(per_seed[0])
    if any(units(a) != n for a in per_seed):
        raise ValueError("every seed of a cell must have the same evaluation units")
    idx = unit_indices(n, resamples)
    by_seed = np.stack([spec.fn(a, idx) for a in per_seed])  # (k, resamples)
    chosen = seed_indices(len(per_seed), resamples)  # (resamples, k)
    return by_seed[chosen, np.arange(resamples)[:, None]].mean(axis=1)


def interval(reps: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (Efron & Tibshirani 1993, ch. 13); nan replicates dropped."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(reps, [tail, 100 - tail])
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
