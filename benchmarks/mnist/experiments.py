"""The MNIST experiments behind the suites: Tables 1-2 for an ensemble, Table 3 (correlated initialization)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from benchmarks.mnist import statistics
from benchmarks.mnist.data import load_split, scale_images
from benchmarks.mnist.train import Recipe, _generator, accuracy, init_model, stack_models, train_models

DEFAULT_FACTORS = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.5, 2.0, 2.5, 3.0)


def load_xy(data_dir: Path | None, scaling: str, train_limit: int | None = None) -> tuple:
    """(x_train, y_train, x_test, y_test, sha256s) scaled as the recipe asks."""
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    n = train.images.shape[0] if not train_limit else min(train_limit, train.images.shape[0])
    return (scale_images(train.images[:n], scaling), train.labels[:n], scale_images(test.images, scaling),
            test.labels, {**train.sha256, **test.sha256})


class Timer:
    """Wall and process CPU seconds since creation (CPU time shows contention: cpu/wall < threads)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        """{'wall_s', 'cpu_s'} so far."""
        return {"wall_s": round(time.perf_counter() - self.wall, 2), "cpu_s": round(time.process_time() - self.cpu, 2)}


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _test_accuracy(models: list[list[torch.Tensor]], pruned: list[list[np.ndarray]] | None, recipe: Recipe,
                   x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Test accuracy per model, dense or with the pruned weights substituted."""
    params = [list(m) for m in models]
    if pruned is not None:
        for m, ws in zip(params, pruned):
            m[0], m[2], m[4] = (torch.from_numpy(w).float() for w in ws)
    out = []
    for start in range(0, len(params), recipe.chunk):
        stack = stack_models(params[start:start + recipe.chunk], recipe.activation)
        out.append(accuracy(stack, x, y).numpy())
    return np.concatenate(out)


def model_seeds(seed: int, n_models: int) -> list[int]:
    """The per-model seeds of a correlations cell with cell seed ``seed``."""
    return [seed * 100_000 + i for i in range(n_models)]


def summarize_pruned(pruned: list[list[np.ndarray]]) -> dict:
    """Table 1 (mean, std and per model), Table 2 (model 0 and mean over models), model 0's per-node
    properties (Fig 2) and dead hidden-1 nodes per model, from each model's pruned [W1, W2, W3]."""
    t1 = [statistics.table1(ws) for ws in pruned]
    t2 = [statistics.table2(ws) for ws in pruned]
    t2_mean = {layer: {p: _nanmean([t[layer][p] for t in t2]) for p in (*statistics.PROPERTIES, "dead_nodes")}
               for layer in ("hidden1", "hidden2")}
    return {
        "table1": {row: _nanmean([t[row] for t in t1]) for row in statistics.TABLE1_ROWS},
        "table1_std": {row: float(np.nanstd([t[row] for t in t1])) for row in statistics.TABLE1_ROWS},
        "table1_per_model": t1,
        "table2": {layer: t2[0][layer] for layer in ("hidden1", "hidden2")},
        "table2_mean": t2_mean,
        "nodes_model0": {layer: {k: v.tolist() for k, v in props.items()} for layer, props in t2[0]["nodes"].items()},
        "dead_nodes_per_model": [t["hidden1"]["dead_nodes"] for t in t2],
    }


def run_correlations(recipe: Recipe, n_models: int, seed: int, rates: dict, data_dir: Path | None,
                     train_limit: int | None = None, device: str | torch.device = "cpu",
                     init_params: list[list[torch.Tensor]] | None = None) -> dict:
    """Train ``n_models`` models (from ``init_params`` when given), prune them, and compute Table 1 (mean
    over models) and Table 2 (model 0)."""
    timer = Timer()
    x, y, xt, yt, sha = load_xy(data_dir, recipe.input_scaling, train_limit)
    seeds = model_seeds(seed, n_models)
    models = train_models(seeds, x.to(device), y.to(device), recipe, init_params=init_params)
    train_time = timer.read()
    pruned = statistics.prune_models(models, rates)
    dense_acc = _test_accuracy(models, None, recipe, xt, yt)
    pruned_acc = _test_accuracy(models, pruned, recipe, xt, yt)
    return {
        **summarize_pruned(pruned),
        "accuracy_dense": float(dense_acc.mean()),
        "accuracy_pruned": float(pruned_acc.mean()),
        "train_timing": train_time,
        "timing": timer.read(),
        "seeds": seeds,
        "sha256": sha,
    }


def correlated_scales(seed: int, f: float) -> tuple[torch.Tensor, torch.Tensor]:
    """s_i ~ U(1, f), inverted with probability 0.5, for hidden 1 (300) and hidden 2 (100)."""
    gen = _generator(seed, 2)
    out = []
    for n in (300, 100):
        s = 1.0 + (f - 1.0) * torch.rand(n, generator=gen)
        flip = torch.rand(n, generator=gen) < 0.5
        out.append(torch.where(flip, 1.0 / s, s))
    return out[0], out[1]


def correlate_init(params: list[torch.Tensor], s1: torch.Tensor, s2: torch.Tensor) -> list[torch.Tensor]:
    """Multiply every weight touching hidden node i by s_i (W2 gets both factors); biases unchanged."""
    w1, b1, w2, b2, w3, b3 = params
    return [w1 * s1[None, :], b1, w2 * s1[:, None] * s2[None, :], b2, w3 * s2[:, None], b3]


def run_init(recipe: Recipe, factors: list[float], n_models: int, seed: int, controlled: bool,
             data_dir: Path | None, device: str | torch.device = "cpu") -> dict:
    """Table 3 column: test accuracy after ``recipe.epochs`` for each f, with one-sided tests against f=1.0."""
    timer = Timer()
    x, y, xt, yt, sha = load_xy(data_dir, recipe.input_scaling)
    base_seeds = [seed * 100_000 + m for m in range(n_models)]
    inits, order_seeds = [], []
    for fi, f in enumerate(factors):
        for s in base_seeds:
            s1, s2 = correlated_scales(s * 1000 + fi, f)
            inits.append(correlate_init(init_model(s, recipe.init), s1, s2))
            # Controlled: model m sees the same subset and order for every f; uncontrolled: a fresh one.
            order_seeds.append(s if controlled else 10_000_000 + s * 1000 + fi)
    models = train_models(list(range(len(inits))), x.to(device), y.to(device), recipe, init_params=inits,
                          order_seeds=order_seeds)
    acc = _test_accuracy(models, None, recipe, xt, yt).reshape(len(factors), n_models)
    base = acc[list(factors).index(1.0)] if 1.0 in factors else None
    rows = []
    for fi, f in enumerate(factors):
        row = {"f": f, "mean": float(acc[fi].mean()), "std": float(acc[fi].std(ddof=1)) if n_models > 1 else 0.0}
        if base is not None and f != 1.0 and n_models > 1:
            test = (stats.ttest_rel(acc[fi], base, alternative="greater") if controlled
                    else stats.ttest_ind(acc[fi], base, equal_var=False, alternative="greater"))
            row["p_value"] = float(test.pvalue)
            row["test"] = "paired t (ttest_rel)" if controlled else "Welch t (ttest_ind, equal_var=False)"
        rows.append(row)
    return {"rows": rows, "accuracy": acc.tolist(), "timing": timer.read(), "sha256": sha}
