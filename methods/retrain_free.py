"""`retrain-free`: Kwon et al. (2022), *A Fast Post-Training Pruning Framework for Transformers*.

Three steps, all on calibration data, no training:
1. Mask search under a FLOPs constraint: with the diagonal Fisher importance of every head and neuron
   (``methods.structured.fisher_grads``), try every number of kept heads h; the FLOPs left buy the most
   important neurons; keep the (h, neurons) whose kept importance is largest.
2. Mask rearrangement: inside each layer, with its count fixed, choose which heads (neurons) to prune so
   that the squared norm of the summed per-sequence gradients of the pruned ones is small (the layer's
   block of the Fisher matrix, off-diagonal terms included), greedily.
3. Mask tuning: layer by layer, real-valued scales for the kept heads and neurons, by least squares, so the
   pruned layer's output before LayerNorm matches the dense layer's (on the dense model's own inputs).
   The scales are folded into the attention-output and FFN-output columns (returned as new weights).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from benchmarks.registry import register_method
from methods.calibrated import _layer0_inputs, _run_layer
from methods.structured import (
    DEFAULT_SEQ_LEN,
    STRUCTURED_OPTIONS,
    Structure,
    StructuredResult,
    check_structured,
    encoder_layers,
    fisher_grads,
    flop_geometry,
    structure_masks,
)

SCALE_LIMIT = 10.0  # tuned scales are clamped to [-10, 10], as in Kwon et al.'s code


def search(head_importance: list[torch.Tensor], neuron_importance: list[torch.Tensor], budget: float,
           head_flops: int, neuron_flops: int) -> tuple[int, int]:
    """(heads kept, neurons kept) within ``budget`` FLOPs that keep the largest total Fisher importance."""
    heads = torch.sort(torch.cat(head_importance), descending=True).values
    neurons = torch.sort(torch.cat(neuron_importance), descending=True).values
    head_sums = torch.cat([torch.zeros(1, dtype=heads.dtype), heads.cumsum(0)])
    neuron_sums = torch.cat([torch.zeros(1, dtype=neurons.dtype), neurons.cumsum(0)])
    best, best_score = (0, 0), -1.0
    for h in range(heads.numel() + 1):
        left = budget - h * head_flops
        if left < 0:
            break
        n = min(int(left // neuron_flops), neurons.numel())
        score = float(head_sums[h] + neuron_sums[n])
        if score > best_score:
            best, best_score = (h, n), score
    return best


def top_kept(importance: list[torch.Tensor], keep: int) -> list[int]:
    """How many units each layer keeps when the ``keep`` most important units overall are kept."""
    flat = torch.cat(importance)
    order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))[:keep]
    counts, start = [], 0
    for t in importance:
        counts.append(sum(1 for i in order if start <= i < start + t.numel()))
        start += t.numel()
    return counts


def rearrange(grads: torch.Tensor, kept: int) -> tuple[int, ...]:
    """Pruned indices of one layer: ``units - kept`` of them, greedily minimising ||sum of their gradients||^2.

    ``grads`` is sequences x units. Start from the lowest diagonal importance; then try each other unit in
    order of importance: add it to the pruned set and drop the member whose removal leaves the smallest norm.
    """
    units = grads.shape[1]
    pruned_count = units - kept
    if pruned_count <= 0 or kept <= 0:
        return tuple(range(units)) if kept <= 0 else ()
    vectors = grads.T.contiguous()  # units x sequences
    order = sorted(range(units), key=lambda i: (float(vectors[i].pow(2).sum()), i))
    pruned = list(order[:pruned_count])
    total = vectors[pruned].sum(0)
    for candidate in order[pruned_count:]:
        pruned.append(candidate)
        total = total + vectors[candidate]
        leftover = (total.unsqueeze(0) - vectors[pruned]).pow(2).sum(1)  # norm after removing each member
        drop = int(torch.argmin(leftover))
        total = total - vectors[pruned[drop]]
        del pruned[drop]
    return tuple(sorted(pruned))


def _capture(module: nn.Module, layer: nn.Module, batches: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, residual) that ``module`` (BertSelfOutput / BertOutput) receives, real tokens only, per batch."""
    seen: list = []
    mask: list = [None]

    def hook(mod, args):
        seen.append((args[0][mask[0]].to(torch.float64), args[1][mask[0]].to(torch.float64)))

    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            for hidden, args, kwargs, token_mask in batches:
                mask[0] = token_mask
                layer(hidden, *args, **kwargs)
    finally:
        handle.remove()
    return seen


def _targets(dense: nn.Linear, captured: list) -> list[torch.Tensor]:
    """The dense sublayer's output before LayerNorm: W x + b + residual."""
    w, b = dense.weight.to(torch.float64), dense.bias.to(torch.float64)
    return [x @ w.T + b + res for x, res in captured]


def _solve(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Damped least squares (gram + 1e-6 mean diag I) m = rhs, clamped to +-SCALE_LIMIT."""
    damp = 1e-6 * float(gram.diagonal().mean().clamp(min=1e-12))
    solution = torch.linalg.solve(gram + damp * torch.eye(gram.shape[0], dtype=gram.dtype), rhs)
    return solution.clamp(-SCALE_LIMIT, SCALE_LIMIT)


def tune_heads(dense: nn.Linear, kept: list[int], head_size: int, student: list, targets: list) -> torch.Tensor:
    """Scales of the kept heads so sum_i m_i O_i x_i + b + residual matches the dense output (least squares)."""
    w, b = dense.weight.to(torch.float64), dense.bias.to(torch.float64)
    gram = torch.zeros(len(kept), len(kept), dtype=torch.float64)
    rhs = torch.zeros(len(kept), dtype=torch.float64)
    for (x, res), target in zip(student, targets):
        parts = torch.stack([x[:, h * head_size:(h + 1) * head_size] @ w[:, h * head_size:(h + 1) * head_size].T
                             for h in kept])  # kept x tokens x hidden
        flat = parts.reshape(len(kept), -1)
        gram += flat @ flat.T
        rhs += flat @ (target - b - res).reshape(-1)
    return _solve(gram, rhs)


def tune_neurons(dense: nn.Linear, kept: list[int], student: list, targets: list) -> torch.Tensor:
    """Scales of the kept neurons: contributions a_i w_i, so the gram matrix is (A^T A) * (W^T W)."""
    w, b = dense.weight.to(torch.float64)[:, kept], dense.bias.to(torch.float64)
    acts = torch.zeros(len(kept), len(kept), dtype=torch.float64)
    rhs = torch.zeros(len(kept), dtype=torch.float64)
    for (x, res), target in zip(student, targets):
        a = x[:, kept]
        acts += a.T @ a
        rhs += (a * ((target - b - res) @ w)).sum(0)
    return _solve(acts * (w.T @ w), rhs)


def _scale_columns(linear: nn.Linear, columns: list[int], scales: torch.Tensor) -> None:
    with torch.no_grad():
        linear.weight[:, columns] *= scales.to(linear.weight.dtype)


def tune_masks(model: nn.Module, structure: Structure, calibration) -> dict[str, torch.Tensor]:
    """Layer-by-layer least-squares mask tuning; returns the tuned output matrices {param name: values}."""
    with torch.no_grad():
        return _tune(model, structure, calibration)


def _tune(model: nn.Module, structure: Structure, calibration) -> dict[str, torch.Tensor]:
    geo = flop_geometry(model)
    student = copy.deepcopy(model)
    from benchmarks.masking import apply_masks  # masks zero the removed heads' and neurons' columns

    apply_masks(student, structure_masks(student, structure))
    student.eval()
    teacher_layers, student_layers = encoder_layers(model), encoder_layers(student)
    was_training = model.training
    model.eval()
    try:
        teacher_in = _layer0_inputs(model, teacher_layers[0], calibration)
        student_in = list(teacher_in)
        for index, (t_layer, s_layer) in enumerate(zip(teacher_layers, student_layers)):
            heads = [h for h in range(geo.heads[index]) if h not in structure.heads.get(index, ())]
            if heads:
                targets = _targets(t_layer.attention.output.dense,
                                   _capture(t_layer.attention.output, t_layer, teacher_in))
                captured = _capture(s_layer.attention.output, s_layer, student_in)
                scales = tune_heads(s_layer.attention.output.dense, heads, geo.head_size, captured, targets)
                columns = [c for h in heads for c in range(h * geo.head_size, (h + 1) * geo.head_size)]
                _scale_columns(s_layer.attention.output.dense, columns, scales.repeat_interleave(geo.head_size))
            neurons = [n for n in range(geo.neurons[index]) if n not in structure.neurons.get(index, ())]
            if neurons:
                targets = _targets(t_layer.output.dense, _capture(t_layer.output, t_layer, teacher_in))
                captured = _capture(s_layer.output, s_layer, student_in)
                _scale_columns(s_layer.output.dense, neurons,
                               tune_neurons(s_layer.output.dense, neurons, captured, targets))
            teacher_in, student_in = _run_layer(t_layer, teacher_in), _run_layer(s_layer, student_in)
    finally:
        model.train(was_training)
    params = dict(student.named_parameters())
    prefixes = {id(m): n for n, m in student.named_modules()}
    names = [f"{prefixes[id(layer)]}.{part}.weight" for layer in student_layers
             for part in ("attention.output.dense", "output.dense")]
    return {name: params[name].detach().clone() for name in names}


@register_method("retrain-free", validate=check_structured("retrain-free"), calibration=True,
                 options={**STRUCTURED_OPTIONS, "tune": (bool,)}, example_sparsity=0.3,
                 title="retrain-free (Kwon et al.)", color="C8")
def retrain_free(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, calibration=None,
                 seq_len: int = DEFAULT_SEQ_LEN, tune: bool = True, **options) -> StructuredResult:
    """Kwon et al. 2022: Fisher mask search under a FLOPs budget, mask rearrangement, least-squares mask tuning."""
    check_structured("retrain-free")(sparsity, options)
    geo = flop_geometry(model)
    grads = fisher_grads(model, calibration, generator)
    head_imp, neuron_imp = grads.head_importance(), grads.neuron_importance()
    budget = (1.0 - sparsity) * geo.total_flops(seq_len)
    keep_heads, keep_neurons = search(head_imp, neuron_imp, budget, geo.head_flops(seq_len), geo.neuron_flops())
    head_counts, neuron_counts = top_kept(head_imp, keep_heads), top_kept(neuron_imp, keep_neurons)
    removed_heads = {i: rearrange(g, k) for i, (g, k) in enumerate(zip(grads.heads, head_counts))}
    removed_neurons = {i: rearrange(g, k) for i, (g, k) in enumerate(zip(grads.neurons, neuron_counts))}
    structure = Structure(heads={i: v for i, v in removed_heads.items() if v},
                          neurons={i: v for i, v in removed_neurons.items() if v})
    masks = structure_masks(model, structure)
    weights = tune_masks(model, structure, calibration) if tune else {}
    return StructuredResult(masks, weights, structure)
