"""Weight correlations inside a one-shot pruned BERT (the paper's §3.2.1 / §4.2.1, Figs 3, 4 and 5).

All matrices are torch ``Linear`` weights, laid out [out, in]: row i holds the weights that produce
output feature i, column j the weights that read input feature j.

* Fig 3 (feed-forward nodes): a node's *inputs* are its row of the matrix that feeds it and its
  *outputs* its column of the matrix that reads it. Two node sets per layer:
  ``intermediate`` (the d_ff neurons: rows of ``intermediate.dense`` vs columns of ``output.dense``) and
  ``attention_output`` (the d_model nodes after the attention block: rows of
  ``attention.output.dense`` vs columns of ``intermediate.dense``; the residual add and LayerNorm
  between the two matrices are not part of this weights-only view).
* Fig 4 (self-attention, element by element): Pearson r between two of W_Q, W_K, W_V over all
  d x d positions, of the pruned absolute values (0 where pruned) and of the keep-masks (1 kept, 0 pruned).
* Fig 5 (self-attention rows and columns): the four statistics of every row (and every column) of
  W_Q, W_K, W_V, then Pearson r between the per-row vectors of two matrices.

The four statistics of a weight vector after pruning: count of nonzero weights, mean absolute value of
the nonzero weights, count of positive weights, mean value of the nonzero weights. A vector with no
nonzero weight has undefined means (NaN); such nodes are left out of the mean-based correlations only
(counted in ``excluded``). A correlation whose inputs are constant, or have fewer than 2 valid points,
is NaN (stored as null).

The layers are stacked and every statistic is a whole-tensor torch reduction accumulated in float64
(no Python loop over nodes or layers; only the per-matrix pruning loops over the matrices).
``python -m benchmarks.bertcorr.regen --help`` prints the values for a model,
regenerates the CI reference, and times the analysis on bert-base-sized weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

# The result's layout (torch-free, so reports read it without this module); kept here under the old names.
from benchmarks.bertcorr.fields import AXES, MEAN_STATS, NODE_SETS, PAIRS, STATS  # noqa: F401
from benchmarks.threads import intra_op_threads
from methods.prunable import prunable_weights
from methods.select import exact_magnitude_masks

# Bump when a definition changes, so records of the old definition are not reused.
ANALYSIS_VERSION = 1
DEFAULT_RATE = 0.5
# Intra-op threads for the analysis (see analyze_layers): one thread is fastest on a loaded CPU.
ANALYSIS_THREADS = 1
# Role -> parameter name suffix inside one encoder layer (Hugging Face BERT naming).
ROLES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
}
REFERENCE_PATH = "tests/reference/bert_correlations_minilm.json"
REGENERATE_COMMAND = f"python -m benchmarks.bertcorr.regen --model minilm-l6 --write-reference {REFERENCE_PATH}"

Layer = dict[str, torch.Tensor]


def layer_matrices(model: nn.Module) -> list[Layer]:
    """The six weight matrices of every encoder layer, by role, in layer order."""
    layers: dict[int, Layer] = {}
    for pw in prunable_weights(model):
        for role, suffix in ROLES.items():
            if pw.name.endswith(f"layer.{pw.layer}.{suffix}.weight"):
                layers.setdefault(pw.layer, {})[role] = pw.weight.detach()
    out = []
    for index in sorted(layers):
        missing = sorted(set(ROLES) - set(layers[index]))
        if missing:
            raise ValueError(f"encoder layer {index} has no {', '.join(missing)} weight; expected a BERT-style encoder")
        out.append(layers[index])
    if not out:
        raise ValueError("model has no BERT encoder layers (encoder.layer.<i>.attention.self.query.weight, ...)")
    return out


def prune_per_matrix(layers: list[Layer], rate: float) -> tuple[list[Layer], list[Layer]]:
    """Prune ``rate`` of each matrix independently by magnitude; return (pruned weights, keep-masks)."""
    pruned, masks = [], []
    for layer in layers:
        keep = {role: exact_magnitude_masks({role: w}, rate)[role] for role, w in layer.items()}
        masks.append(keep)
        pruned.append({role: w * keep[role] for role, w in layer.items()})
    return pruned, masks


def vector_stats(w: torch.Tensor, dim: int) -> dict[str, torch.Tensor]:
    """The four statistics of each vector of ``w`` along ``dim`` (-1: per row, -2: per column), in float64.

    Leading dimensions are batch dimensions (a stack of layers). Sums accumulate in float64.
    """
    f64 = torch.float64
    nonzero = (w != 0).sum(dim, dtype=f64)
    divisor = nonzero.clamp(min=1)  # a vector with no nonzero weight gets NaN means below
    undefined = torch.full_like(nonzero, math.nan)
    return {
        "nonzero_count": nonzero,
        "mean_abs": torch.where(nonzero > 0, w.abs().sum(dim, dtype=f64) / divisor, undefined),
        "positive_count": (w > 0).sum(dim, dtype=f64),
        "mean": torch.where(nonzero > 0, w.sum(dim, dtype=f64) / divisor, undefined),
    }


def pearson_batched(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson r along the last dimension, over positions where both are finite; NaN where undefined.

    Undefined: fewer than 2 valid positions, or one side constant over them (as scipy, which warns).
    """
    x, y = x.double(), y.double()
    valid = torch.isfinite(x) & torch.isfinite(y)
    n = valid.sum(-1, keepdim=True)
    x, y = torch.where(valid, x, 0.0), torch.where(valid, y, 0.0)
    xc = torch.where(valid, x - x.sum(-1, keepdim=True) / n.clamp(min=1), 0.0)
    yc = torch.where(valid, y - y.sum(-1, keepdim=True) / n.clamp(min=1), 0.0)
    r = (xc * yc).sum(-1) / torch.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    inf = math.inf
    constant = ((torch.where(valid, x, -inf).amax(-1) == torch.where(valid, x, inf).amin(-1))
                | (torch.where(valid, y, -inf).amax(-1) == torch.where(valid, y, inf).amin(-1)))
    return torch.where((n.squeeze(-1) >= 2) & ~constant, r, math.nan)


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson r of two equal-length vectors over positions where both are finite; NaN if undefined."""
    return float(pearson_batched(x.reshape(-1), y.reshape(-1)))


def _stack_stats(stats: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """[len(stats) * 4, ..., n]: the four statistics of each entry, in STATS order (one batched pearson)."""
    return torch.stack([d[s] for d in stats for s in STATS])


def node_correlations(w_in: torch.Tensor, w_out: torch.Tensor) -> tuple[dict, int | list]:
    """Fig 3 for one node set: r(input stat, output stat) per statistic, and the nodes left out of the means.

    Node j's inputs are row j of ``w_in`` [..., nodes, fan_in]; its outputs are column j of ``w_out``
    [..., fan_out, nodes]. Leading dimensions (layers) give lists instead of numbers.
    """
    if w_in.shape[-2] != w_out.shape[-1]:
        raise ValueError(f"node count mismatch: w_in has {w_in.shape[-2]} rows, w_out {w_out.shape[-1]} columns")
    inputs, outputs = vector_stats(w_in, -1), vector_stats(w_out, -2)
    excluded = ((inputs["nonzero_count"] == 0) | (outputs["nonzero_count"] == 0)).sum(-1)
    r = pearson_batched(_stack_stats([inputs]), _stack_stats([outputs]))
    return dict(zip(STATS, r.tolist())), excluded.tolist()


def pairwise_pearson(vectors: dict[str, torch.Tensor], pairs: dict[str, tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Pearson r along the last dimension for each named pair of equally shaped finite tensors.

    Each tensor is centred once in float64 and shared by the pairs it is in; NaN where a side is constant.
    """
    centred, norms, constant = {}, {}, {}
    for name, x in vectors.items():
        x = x.double()
        constant[name] = x.amax(-1) == x.amin(-1)
        centred[name] = x - x.mean(-1, keepdim=True)
        norms[name] = torch.linalg.vector_norm(centred[name], dim=-1)
    out = {}
    for pair, (a, b) in pairs.items():
        r = torch.linalg.vecdot(centred[a], centred[b]) / (norms[a] * norms[b])
        out[pair] = torch.where(constant[a] | constant[b], math.nan, r)
    return out


def elementwise_correlations(a: torch.Tensor, b: torch.Tensor, keep_a: torch.Tensor,
                             keep_b: torch.Tensor) -> dict:
    """Fig 4 for one pair: r over all positions of the pruned |a| vs |b|, and of the keep-masks.

    Inputs [..., out, in]; leading dimensions (layers) give lists instead of numbers.
    """
    pair = {"ab": ("a", "b")}
    absolute = pairwise_pearson({"a": a.abs().flatten(-2), "b": b.abs().flatten(-2)}, pair)["ab"]
    mask = pairwise_pearson({"a": keep_a.flatten(-2), "b": keep_b.flatten(-2)}, pair)["ab"]
    return {"abs": absolute.tolist(), "mask": mask.tolist()}


def row_column_correlations(a: torch.Tensor, b: torch.Tensor, stats_a: dict | None = None,
                            stats_b: dict | None = None) -> dict:
    """Fig 5 for one pair: {"rows"|"columns": {stat: r}} between the per-row (per-column) stats of a and b.

    ``stats_a``/``stats_b`` may carry precomputed {axis: vector_stats} so each matrix is reduced once.
    """
    stats_a = stats_a or {axis: vector_stats(a, dim) for axis, dim in AXES.items()}
    stats_b = stats_b or {axis: vector_stats(b, dim) for axis, dim in AXES.items()}
    out = {}
    for axis in AXES:  # rows and columns differ in length unless the matrices are square
        r = pearson_batched(_stack_stats([stats_a[axis]]), _stack_stats([stats_b[axis]]))
        out[axis] = dict(zip(STATS, r.tolist()))
    return out


def analyze_layers(layers: list[Layer], rate: float = DEFAULT_RATE, threads: int = ANALYSIS_THREADS) -> dict:
    """Prune each matrix by magnitude at ``rate``, then compute Figs 3-5 per layer (JSON-ready lists).

    The layers are stacked so every statistic and correlation is one batched torch call over all
    layers. The ops are memory-bound reductions; on a shared, oversubscribed CPU, OpenMP threads
    waiting on each other made the bert-base analysis 2-4x slower than one thread (docs), so the
    analysis runs with ``threads`` (default ANALYSIS_THREADS) intra-op threads; the numbers do not depend on it.
    """
    with intra_op_threads(threads):
        return _analyze_layers(layers, rate)


def _analyze_layers(layers: list[Layer], rate: float) -> dict:
    pruned, masks = prune_per_matrix(layers, rate)
    w = {role: torch.stack([layer[role] for layer in pruned]) for role in ROLES}  # [L, out, in]
    keep = {role: torch.stack([layer[role] for layer in masks]) for role in ROLES}
    del pruned, masks
    result: dict = {"version": ANALYSIS_VERSION, "prune_rate": rate, "num_layers": len(layers),
                    "fig3": {}, "fig3_nodes": {}, "fig4": {"abs": {}, "mask": {}},
                    "fig5": {axis: {s: {} for s in STATS} for axis in AXES}}
    for node_set, (src, dst) in NODE_SETS.items():
        result["fig3"][node_set], excluded = node_correlations(w[src], w[dst])
        result["fig3_nodes"][node_set] = {"nodes": int(w[src].shape[-2]), "excluded_from_means": excluded}
    attention = ("query", "key", "value")
    attention_stats = {role: {axis: vector_stats(w[role], dim) for axis, dim in AXES.items()} for role in attention}
    for kind, source in (("abs", {r: w[r].abs().flatten(1) for r in attention}),
                         ("mask", {r: keep[r].flatten(1) for r in attention})):
        result["fig4"][kind] = {pair: r.tolist() for pair, r in pairwise_pearson(source, PAIRS).items()}
    for pair, (a, b) in PAIRS.items():
        for axis, by_stat in row_column_correlations(w[a], w[b], attention_stats[a], attention_stats[b]).items():
            for stat, values in by_stat.items():
                result["fig5"][axis][stat][pair] = values
    zeros = sum((m == 0).flatten(1).sum(1, dtype=torch.float64) for m in w.values())
    result["sparsity"] = (zeros / sum(m[0].numel() for m in w.values())).tolist()
    return json_ready(result)


def analyze_model(model: nn.Module, rate: float = DEFAULT_RATE, threads: int = ANALYSIS_THREADS) -> dict:
    """Figs 3-5 for a BERT-style model (the model itself is not modified)."""
    with torch.no_grad():
        return analyze_layers(layer_matrices(model), rate, threads)


def json_ready(value):
    """Replace NaN/inf floats with None (strict JSON) throughout nested dicts and lists."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def series(result: dict) -> dict[str, list]:
    """Every per-layer series of a result, flattened to dotted names (fig3.intermediate.mean_abs, ...)."""
    out: dict[str, list] = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, list):
            out[prefix] = node
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)

    for fig in ("fig3", "fig4", "fig5", "fig3_nodes"):
        walk(fig, result[fig])
    return out


def compare(actual: Mapping, expected: Mapping, atol: float) -> list[str]:
    """Differences between two results' per-layer series larger than ``atol`` (empty when they agree)."""
    got, want = series(actual), series(expected)
    problems = [f"{name}: missing" for name in sorted(set(want) - set(got))]
    problems += [f"{name}: unexpected" for name in sorted(set(got) - set(want))]
    for name in sorted(set(got) & set(want)):
        a, b = got[name], want[name]
        if len(a) != len(b):
            problems.append(f"{name}: {len(a)} layers, reference has {len(b)}")
            continue
        for layer, (x, y) in enumerate(zip(a, b)):
            if (x is None) != (y is None) or (x is not None and abs(x - y) > atol):
                problems.append(f"{name}[layer {layer}]: {x} vs reference {y}")
    return problems


# ---------------------------------------------------------------- command line (reference, timing)
