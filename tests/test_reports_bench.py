"""Speed ratio of the leaderboard's vectorised bootstrap against a direct loop over the same resamples
(pytest-benchmark, one process; never absolute timings). Run with `tox -e bench` or `pytest -m bench`."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from reports import stats
from tests.timing import benchmark_min, best_of

pytestmark = pytest.mark.bench

N, RESAMPLES = 1000, 2000


def _arrays() -> dict:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 26, N) / 5  # STS-B-like gold scores: many ties
    return {"pred": gold + rng.normal(0, 1, N), "label": gold}


@pytest.mark.parametrize("metric, floor", [("pearson", 50), ("spearman", 5)])
def test_vectorised_bootstrap_vs_direct_loop(benchmark, metric, floor):
    a = _arrays()
    idx = stats.unit_indices(N, RESAMPLES)
    plain = {"pearson": lambda x, y: sps.pearsonr(x, y)[0], "spearman": lambda x, y: sps.spearmanr(x, y)[0]}[metric]

    def loop():
        return np.array([plain(a["pred"][i], a["label"][i]) for i in idx])

    expected = loop()
    slow = best_of(loop, 1)
    fast = benchmark_min(benchmark, lambda: stats.replicates([a], metric), rounds=3)
    np.testing.assert_allclose(stats.replicates([a], metric), expected, rtol=1e-9)
    ratio = slow / fast
    benchmark.extra_info.update({"loop_s": slow, "vectorised_s": fast, "ratio": ratio})
    print(f"{metric}: {N} examples x {RESAMPLES} resamples: {ratio:.0f}x ({slow:.2f} s vs {fast * 1e3:.0f} ms)")
    assert ratio >= floor, f"vectorised {metric} bootstrap only {ratio:.1f}x faster than the direct loop"
