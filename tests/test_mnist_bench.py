"""Speed ratios measured in one process with pytest-benchmark (never absolute timings).

- Table 1 in closed form vs the explicit pair table on a full-size FC1 (784 x 300, 75% pruned): >= 100x.
- Batched ensemble training vs one model at a time (reduced size: 8 models x 30 steps): the measured ratio
  is recorded in extra_info; the assertion is the floor this CPU reaches (see docs/mnist.md for why the
  issue's 25x is not reachable on a CPU, where one 784x300 model already keeps the BLAS busy).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy import stats

from benchmarks.mnist import analysis
from benchmarks.mnist.train import Recipe, init_model, train_models, train_one_reference


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _benchmark_min(benchmark, fn, rounds: int) -> float:
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: time it ourselves
        return _best_of(fn, rounds)
    return benchmark.stats.stats.min


def test_closed_form_table1_vs_explicit_pairs(benchmark):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(784, 300))
    w[np.abs(w) <= np.quantile(np.abs(w), 0.75)] = 0.0

    def explicit():
        table = analysis.explicit_shared_pairs(w, "output")
        return stats.pearsonr(table[:, 0], table[:, 1]).statistic

    slow_value = explicit()
    slow = _best_of(explicit, 2)
    fast = _benchmark_min(benchmark, lambda: analysis.shared_node_corr(w, "output"), rounds=20)
    assert abs(analysis.shared_node_corr(w, "output") - slow_value) < 1e-9
    ratio = slow / fast
    benchmark.extra_info.update({"explicit_s": slow, "closed_form_s": fast, "ratio": ratio})
    print(f"closed-form Table 1 speed-up on full-size FC1: {ratio:.0f}x ({slow:.3f} s vs {fast * 1e3:.2f} ms)")
    assert ratio >= 100, f"closed form only {ratio:.0f}x faster than the explicit pair table"


@pytest.mark.skipif(torch.get_num_threads() < 1, reason="needs torch")
def test_batched_training_vs_one_at_a_time(benchmark):
    torch.manual_seed(0)
    x, y = torch.randn(1800, 784), torch.randint(0, 10, (1800,))
    recipe = Recipe(threads=1, chunk=8)
    seeds, steps = list(range(8)), 30
    inits = [init_model(s, recipe.init) for s in seeds]
    with torch.inference_mode(False):
        one_by_one = _best_of(lambda: [train_one_reference(s, x, y, recipe, steps, i) for s, i in zip(seeds, inits)], 2)
        batched = _benchmark_min(benchmark, lambda: train_models(seeds, x, y, recipe, steps, inits), rounds=2)
    ratio = one_by_one / batched
    benchmark.extra_info.update({"one_by_one_s": one_by_one, "batched_s": batched, "ratio": ratio})
    print(f"batched training speed-up: {ratio:.2f}x (8 models x {steps} steps)")
    assert ratio >= 1.0, f"batched training slower than one at a time ({ratio:.2f}x)"
