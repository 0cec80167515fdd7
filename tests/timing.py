"""Timing helpers shared by the speed-ratio (bench) tests: both sides of a ratio timed the same way."""

from __future__ import annotations

import time


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` wall-clock runs of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def benchmark_min(benchmark, fn, rounds: int) -> float:
    """``fn`` timed by pytest-benchmark (its minimum), or by ``best_of`` when benchmarks are disabled."""
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: time it ourselves
        return best_of(fn, rounds)
    return benchmark.stats.stats.min
