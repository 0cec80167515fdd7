"""Pruning and the paper's weight statistics: Table 1 (pair correlations, closed form) and Table 2 (node correlations).

Pair convention (Table 1). Within a group of unpruned weights (a column of W = weights sharing an output
node, or a row = sharing an input node) every *ordered* pair (i, j) with i != j is one row of the pair
table (|w_i|, |w_j|); both orders are taken, so the two columns have the same values and the Pearson
correlation does not depend on an arbitrary orientation. With n, S1 = sum |w|, S2 = sum w^2 per group:
    N = sum n(n-1),  sum X = sum Y = sum (n-1) S1,  sum X^2 = sum Y^2 = sum (n-1) S2,  sum XY = sum (S1^2 - S2).
Across a hidden node h the table holds every (input weight, output weight) pair of h, X from the input
side and Y from the output side: N = sum n_in n_out, sum X = sum n_out S1_in, sum XY = sum S1_in S1_out, ...
Both are linear in the number of weights; the explicit table in ``explicit_*`` is the check.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.errors import UserError
from methods.select import exact_magnitude_masks

LAYERS = ("fc1", "fc2", "fc3")
DEFAULT_RATES = {"fc1": 0.75, "fc2": 0.75, "fc3": 0.375}
TABLE1_ROWS = ("fc1_share_output", "fc2_share_output", "fc2_share_input", "fc3_share_input",
               "hidden1_node_io", "hidden2_node_io")
PROPERTIES = ("count", "count_excl_dead", "mean", "abs_mean", "frac_positive")


def check_rates(rates: dict) -> dict:
    """Validated per-layer pruning rates (fraction of weights removed) with defaults filled in."""
    out = dict(DEFAULT_RATES)
    for name, rate in rates.items():
        if name not in out:
            raise UserError(f"unknown layer {name!r} in prune rates; use {', '.join(LAYERS)}")
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise UserError(f"prune rate for {name} is {rate!r}; use a fraction in [0, 1)")
        out[name] = float(rate)
    return out


def magnitude_masks(weights: torch.Tensor, rate: float) -> torch.Tensor:
    """Layer-wise magnitude masks for stacked weights [K, in, out]: keep the largest (1-rate) per model.

    Each model's matrix goes through the shared exact selection (``methods.select``), whose ties
    are pruned earliest-position first, so the masks are deterministic.
    """
    return torch.stack([exact_magnitude_masks({"w": w}, rate)["w"] for w in weights.detach()])


def prune_models(models: list[list[torch.Tensor]], rates: dict) -> list[list[np.ndarray]]:
    """Per model the pruned weight matrices [W1, W2, W3] ([in, out], float64, pruned entries exactly 0)."""
    out: list[list[np.ndarray]] = [[] for _ in models]
    for layer, name in enumerate(LAYERS):
        stacked = torch.stack([m[2 * layer] for m in models])
        masked = (stacked * magnitude_masks(stacked, rates[name])).double().numpy()
        for k in range(len(models)):
            out[k].append(masked[k])
    return out


# ---- Table 1: closed form ------------------------------------------------------------------------

def _pearson_from_sums(n, sx, sy, sxx, syy, sxy) -> float:
    """Pearson r from the six sums of a (virtual) pair table; nan when a side has no variance."""
    cov = n * sxy - sx * sy
    var = (n * sxx - sx * sx) * (n * syy - sy * sy)
    return float(cov / np.sqrt(var)) if n > 1 and var > 0 else float("nan")


def _group_sums(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (reduce along ``axis``) of |w| over unpruned (nonzero) weights: count, S1, S2."""
    absw = np.abs(a)
    return (absw != 0).sum(axis).astype(np.float64), absw.sum(axis), (absw * absw).sum(axis)


def shared_node_corr(w: np.ndarray, share: str) -> float:
    """Table 1 pair correlation of |w| over ordered pairs sharing an ``output`` (column) or ``input`` (row) node."""
    n, s1, s2 = _group_sums(w, 0 if share == "output" else 1)
    sx = ((n - 1) * s1).sum()
    sxx = ((n - 1) * s2).sum()
    return _pearson_from_sums((n * (n - 1)).sum(), sx, sx, sxx, sxx, (s1 * s1 - s2).sum())


def node_io_corr(w_in: np.ndarray, w_out: np.ndarray) -> float:
    """Table 1 correlation of |input weight| vs |output weight| over all pairs across each hidden node."""
    n_in, s1_in, s2_in = _group_sums(w_in, 0)  # node h's inputs: column h of W_in
    n_out, s1_out, s2_out = _group_sums(w_out, 1)  # node h's outputs: row h of W_out
    return _pearson_from_sums((n_in * n_out).sum(), (n_out * s1_in).sum(), (n_in * s1_out).sum(),
                              (n_out * s2_in).sum(), (n_in * s2_out).sum(), (s1_in * s1_out).sum())


def table1(ws: list[np.ndarray]) -> dict:
    """One model's Table 1 values from its pruned [W1, W2, W3]."""
    w1, w2, w3 = ws
    return {
        "fc1_share_output": shared_node_corr(w1, "output"),
        "fc2_share_output": shared_node_corr(w2, "output"),
        "fc2_share_input": shared_node_corr(w2, "input"),
        "fc3_share_input": shared_node_corr(w3, "input"),
        "hidden1_node_io": node_io_corr(w1, w2),
        "hidden2_node_io": node_io_corr(w2, w3),
    }


# ---- Table 1: explicit pair tables (the reference for tests and the benchmark baseline) ----------

def explicit_shared_pairs(w: np.ndarray, share: str) -> np.ndarray:
    """The explicit pair table [N, 2] of (|w_i|, |w_j|), all ordered pairs i != j within each group."""
    groups = w.T if share == "output" else w
    parts = []
    for g in groups:
        v = np.abs(g[g != 0])
        i, j = np.nonzero(~np.eye(v.size, dtype=bool))
        parts.append(np.stack([v[i], v[j]], 1))
    return np.concatenate(parts) if parts else np.empty((0, 2))


def explicit_node_pairs(w_in: np.ndarray, w_out: np.ndarray) -> np.ndarray:
    """The explicit pair table [N, 2] of (|input weight|, |output weight|) across each hidden node."""
    parts = []
    for h in range(w_in.shape[1]):
        a, b = np.abs(w_in[:, h]), np.abs(w_out[h, :])
        a, b = a[a != 0], b[b != 0]
        parts.append(np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2))
    return np.concatenate(parts)


# ---- Table 2: node properties --------------------------------------------------------------------

def _side_props(a: np.ndarray, axis: int) -> dict:
    """Per node: count of nonzero weights, mean, mean |w| and fraction > 0 among the nonzero ones (nan if none)."""
    nz = a != 0
    count = nz.sum(axis).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "count": count,
            "mean": a.sum(axis) / count,
            "abs_mean": np.abs(a).sum(axis) / count,
            "frac_positive": (a > 0).sum(axis) / count,
        }


def node_properties(w_in: np.ndarray, w_out: np.ndarray) -> dict:
    """Per hidden node: input-side (column of W_in) and output-side (row of W_out) properties."""
    inp, out = _side_props(w_in, 0), _side_props(w_out, 1)
    return {f"{side}_{name}": vals for side, props in (("in", inp), ("out", out)) for name, vals in props.items()}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over the nodes where both values are defined; nan when fewer than 3 or no variance."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def table2_layer(props: dict) -> dict:
    """One hidden layer's Table 2 column; "dead" nodes are those whose inputs and outputs are all pruned."""
    dead = (props["in_count"] == 0) & (props["out_count"] == 0)
    return {
        "count": _pearson(props["in_count"], props["out_count"]),
        "count_excl_dead": _pearson(props["in_count"][~dead], props["out_count"][~dead]),
        "mean": _pearson(props["in_mean"], props["out_mean"]),
        "abs_mean": _pearson(props["in_abs_mean"], props["out_abs_mean"]),
        "frac_positive": _pearson(props["in_frac_positive"], props["out_frac_positive"]),
        "dead_nodes": int(dead.sum()),
        "nodes": int(dead.size),
    }


def table2(ws: list[np.ndarray]) -> dict:
    """One model's Table 2 for hidden 1 (W1 -> W2) and hidden 2 (W2 -> W3), plus its per-node properties."""
    w1, w2, w3 = ws
    p1, p2 = node_properties(w1, w2), node_properties(w2, w3)
    return {"hidden1": table2_layer(p1), "hidden2": table2_layer(p2), "nodes": {"hidden1": p1, "hidden2": p2}}
