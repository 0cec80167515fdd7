"""Weight correlations inside a one-shot pruned BERT (the paper's §3.2.1 / §4.2.1, Figs 3, 4 and 5).

All matrices are torch ``Linear`` weights, laid out [out, in]: row i holds the weights that produce
output feature i, column j the weights that read input feature j.

* Fig 3 (feed-forward nodes): a node's *inputs* are its row of the matrix that feeds it and its
  *outputs* its column of the matrix that reads it. Two node sets per layer:
  ``intermediate`` (the d_ff neurons: rows of ``intermediate.dense`` vs columns of ``output.dense``) and
  ``attention_output`` (the d_model nodes after the attention block: rows of
  ``attention.output.dense`` vs columns of ``intermediate.dense``; the residual add and LayerNorm
  between them are ignored, as the paper's node view does).
* Fig 4 (self-attention, element by element): Pearson r between two of W_Q, W_K, W_V over all
  d x d positions, of the pruned absolute values (0 where pruned) and of the keep-masks (1 kept, 0 pruned).
* Fig 5 (self-attention rows and columns): the four statistics of every row (and every column) of
  W_Q, W_K, W_V, then Pearson r between the per-row vectors of two matrices.

The four statistics of a weight vector after pruning: count of nonzero weights, mean absolute value of
the nonzero weights, count of positive weights, mean value of the nonzero weights. A vector with no
nonzero weight has undefined means (NaN); such nodes are left out of the mean-based correlations only
(counted in ``excluded``). A correlation whose inputs are constant, or have fewer than 2 valid points,
is NaN (stored as null).

Every statistic is computed with whole-tensor torch reductions in float64 (a Python loop runs over
layers, never over nodes). ``python -m benchmarks.bertcorr --help`` prints the values for a model,
regenerates the CI reference, and times the analysis on bert-base-sized weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Mapping

import torch
from torch import nn

from methods.prunable import prunable_weights
from methods.select import exact_magnitude_masks

# Bump when a definition changes, so records of the old definition are not reused.
ANALYSIS_VERSION = 1
DEFAULT_RATE = 0.5
STATS = ("nonzero_count", "mean_abs", "positive_count", "mean")
MEAN_STATS = ("mean_abs", "mean")
# Fig 5 axis -> the dimension a per-row / per-column statistic reduces over ([out, in] weights).
AXES = {"rows": 1, "columns": 0}
PAIRS = {"QK": ("query", "key"), "QV": ("query", "value"), "KV": ("key", "value")}
# Role -> parameter name suffix inside one encoder layer (Hugging Face BERT naming).
ROLES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
}
# Node set -> (matrix whose rows are the node's inputs, matrix whose columns are its outputs).
NODE_SETS = {"intermediate": ("intermediate", "output"), "attention_output": ("attention_output", "intermediate")}
REFERENCE_PATH = "tests/reference/bert_correlations_minilm.json"
REGENERATE_COMMAND = f"python -m benchmarks.bertcorr --model minilm-l6 --write-reference {REFERENCE_PATH}"

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
        # float64 once here, so every statistic below reduces exactly the same numbers.
        pruned.append({role: w.double() * keep[role] for role, w in layer.items()})
    return pruned, masks


def vector_stats(w: torch.Tensor, dim: int) -> dict[str, torch.Tensor]:
    """The four statistics of each vector of ``w`` along ``dim`` (dim=1: per row, dim=0: per column)."""
    w = w.double()
    nonzero = (w != 0).sum(dim).double()
    divisor = nonzero.clamp(min=1)  # a vector with no nonzero weight gets NaN means below
    undefined = torch.full_like(nonzero, math.nan)
    return {
        "nonzero_count": nonzero,
        "mean_abs": torch.where(nonzero > 0, w.abs().sum(dim) / divisor, undefined),
        "positive_count": (w > 0).sum(dim).double(),
        "mean": torch.where(nonzero > 0, w.sum(dim) / divisor, undefined),
    }


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson r of two equal-length vectors over positions where both are finite; NaN if undefined."""
    x, y = x.reshape(-1).double(), y.reshape(-1).double()
    valid = torch.isfinite(x) & torch.isfinite(y)
    if not bool(valid.all()):
        x, y = x[valid], y[valid]
    if x.numel() < 2:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    if denominator == 0.0:  # a constant vector: r is undefined
        return math.nan
    return float((xc * yc).sum()) / denominator


def node_correlations(w_in: torch.Tensor, w_out: torch.Tensor) -> tuple[dict[str, float], int]:
    """Fig 3 for one node set: r(input stat, output stat) per statistic, and the nodes left out of the means.

    Node j's inputs are row j of ``w_in`` [nodes, fan_in]; its outputs are column j of ``w_out`` [fan_out, nodes].
    """
    if w_in.shape[0] != w_out.shape[1]:
        raise ValueError(f"node count mismatch: w_in has {w_in.shape[0]} rows, w_out {w_out.shape[1]} columns")
    inputs, outputs = vector_stats(w_in, 1), vector_stats(w_out, 0)
    excluded = int(((inputs["nonzero_count"] == 0) | (outputs["nonzero_count"] == 0)).sum())
    return {s: pearson(inputs[s], outputs[s]) for s in STATS}, excluded


def elementwise_correlations(a: torch.Tensor, b: torch.Tensor, keep_a: torch.Tensor,
                             keep_b: torch.Tensor) -> dict[str, float]:
    """Fig 4 for one pair: r over all positions of the pruned |a| vs |b|, and of the keep-masks."""
    return {"abs": pearson(a.abs(), b.abs()), "mask": pearson(keep_a.double(), keep_b.double())}


def row_column_correlations(a: torch.Tensor, b: torch.Tensor, stats_a: dict | None = None,
                            stats_b: dict | None = None) -> dict[str, dict[str, float]]:
    """Fig 5 for one pair: {"rows"|"columns": {stat: r}} between the per-row (per-column) stats of a and b.

    ``stats_a``/``stats_b`` may carry precomputed {axis: vector_stats} so each matrix is reduced once.
    """
    stats_a = stats_a or {axis: vector_stats(a, dim) for axis, dim in AXES.items()}
    stats_b = stats_b or {axis: vector_stats(b, dim) for axis, dim in AXES.items()}
    return {axis: {s: pearson(stats_a[axis][s], stats_b[axis][s]) for s in STATS} for axis in AXES}


def _empty_result(num_layers: int, rate: float) -> dict:
    return {
        "version": ANALYSIS_VERSION,
        "prune_rate": rate,
        "num_layers": num_layers,
        "fig3": {ns: {s: [] for s in STATS} for ns in NODE_SETS},
        "fig3_nodes": {ns: {"nodes": None, "excluded_from_means": []} for ns in NODE_SETS},
        "fig4": {kind: {p: [] for p in PAIRS} for kind in ("abs", "mask")},
        "fig5": {axis: {s: {p: [] for p in PAIRS} for s in STATS} for axis in AXES},
        "sparsity": [],
    }


def analyze_layers(layers: list[Layer], rate: float = DEFAULT_RATE) -> dict:
    """Prune each matrix by magnitude at ``rate``, then compute Figs 3-5 per layer (JSON-ready lists)."""
    pruned, masks = prune_per_matrix(layers, rate)
    result = _empty_result(len(layers), rate)
    for w, keep in zip(pruned, masks):
        for node_set, (src, dst) in NODE_SETS.items():
            values, excluded = node_correlations(w[src], w[dst])
            for stat in STATS:
                result["fig3"][node_set][stat].append(values[stat])
            result["fig3_nodes"][node_set]["nodes"] = int(w[src].shape[0])
            result["fig3_nodes"][node_set]["excluded_from_means"].append(excluded)
        attention_stats = {role: {axis: vector_stats(w[role], dim) for axis, dim in AXES.items()}
                           for role in ("query", "key", "value")}
        for pair, (a, b) in PAIRS.items():
            for kind, value in elementwise_correlations(w[a], w[b], keep[a], keep[b]).items():
                result["fig4"][kind][pair].append(value)
            for axis, values in row_column_correlations(w[a], w[b], attention_stats[a], attention_stats[b]).items():
                for stat in STATS:
                    result["fig5"][axis][stat][pair].append(values[stat])
        zeros = sum(int((m == 0).sum()) for m in w.values())
        result["sparsity"].append(zeros / sum(m.numel() for m in w.values()))
    return json_ready(result)


def analyze_model(model: nn.Module, rate: float = DEFAULT_RATE) -> dict:
    """Figs 3-5 for a BERT-style model (the model itself is not modified)."""
    with torch.no_grad():
        return analyze_layers(layer_matrices(model), rate)


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

def _load_model(name: str) -> tuple[nn.Module, dict]:
    from transformers import AutoModel

    from benchmarks.models import resolve_model

    ref = resolve_model(name)
    return AutoModel.from_pretrained(ref.location), ref.identity


def bert_base_random(seed: int = 0) -> nn.Module:
    """A randomly initialised bert-base-sized BertModel (BertConfig() defaults), for timing."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig())


def time_bert_base(repeats: int = 1) -> dict:
    """Seconds for the whole analysis (prune + Figs 3-5) on random bert-base weights."""
    model = bert_base_random()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        analyze_model(model, DEFAULT_RATE)
        times.append(time.perf_counter() - start)
    return {"model": "BertModel(BertConfig()) random init", "threads": torch.get_num_threads(),
            "seconds": times, "best": min(times)}


def main(argv: list[str] | None = None) -> int:
    """Print a model's Figs 3-5 values as JSON, write the CI reference, or time bert-base."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bertcorr", description=main.__doc__)
    parser.add_argument("--model", default="minilm-l6", help="alias, hub id or local folder (default minilm-l6)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="per-matrix prune rate (default 0.5)")
    parser.add_argument("--write-reference", metavar="PATH", help="write the CI reference JSON here")
    parser.add_argument("--time-bert-base", action="store_true", help="time the analysis on random bert-base weights")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (default 3)")
    args = parser.parse_args(argv)
    if args.time_bert_base:
        print(json.dumps(time_bert_base(args.repeats), indent=1))
        return 0
    model, identity = _load_model(args.model)
    result = analyze_model(model, args.rate)
    if args.write_reference:
        from benchmarks.store import write_json_atomic

        payload = {"regenerate": REGENERATE_COMMAND, "model": identity, "atol": 1e-6, "result": result}
        write_json_atomic(args.write_reference, payload)
        print(f"wrote {args.write_reference}", file=sys.stderr)
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
