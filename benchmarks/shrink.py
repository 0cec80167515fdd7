"""Physically remove what a structured method pruned, so the evaluated model is smaller and faster.

Heads: the query/key/value rows and attention-output columns of each removed head are sliced away and the
layer's head count updated (transformers 5.25's ``BertModel`` has no ``prune_heads``); a layer left with no
head gets ``NoHeads`` (its attention block then adds only the output bias). Neurons: the intermediate rows and
output columns are sliced away. Layers: removed from the encoder's layer list. Unstructured and N:M results
are never shrunk: those models stay dense-shaped, with zeros.

``shrink_model`` records on the model (attribute ``SHRUNK``) which original layer each remaining layer was and
how many prunable weights each original layer lost, so ``benchmarks.masking.measure_sparsity`` counts the
removed weights as pruned.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from methods.prunable import prunable_weights
from methods.structured import Structure, encoder_layers, flop_geometry

# The attribute holding {"layer_map": [...], "removed": {layer: weights}}; benchmarks.masking reads it by this name.
SHRUNK = "prunebench_shrunk"


class NoHeads(nn.Module):
    """Self-attention with every head removed: a zero-width output, so only the output bias remains."""

    def __init__(self, head_size: int) -> None:
        super().__init__()
        self.attention_head_size = head_size  # read by methods.structured.flop_geometry

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, None]:
        """Zeros of width 0 for the (0-column) attention-output projection."""
        return hidden_states.new_zeros(*hidden_states.shape[:-1], 0), None


def sliced_linear(linear: nn.Linear, rows: list[int] | None = None, columns: list[int] | None = None) -> nn.Linear:
    """A new ``Linear`` holding only the given output rows and/or input columns of ``linear``."""
    weight, bias = linear.weight.detach(), None if linear.bias is None else linear.bias.detach()
    if rows is not None:
        index = torch.tensor(rows, dtype=torch.long)
        weight = weight.index_select(0, index)
        bias = None if bias is None else bias.index_select(0, index)
    if columns is not None:
        weight = weight.index_select(1, torch.tensor(columns, dtype=torch.long))
    with warnings.catch_warnings():  # a zero-width Linear warns that its (skipped) initialisation is a no-op
        warnings.simplefilter("ignore", UserWarning)
        out = torch.nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0], bias=bias is not None,
                                       device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out


def remove_heads(layer: nn.Module, heads: tuple[int, ...], head_size: int) -> None:
    """Slice the removed heads out of one encoder layer's attention block."""
    attention = layer.attention.self
    count = attention.query.out_features // head_size
    kept = [h for h in range(count) if h not in set(heads)]
    rows = [c for h in kept for c in range(h * head_size, (h + 1) * head_size)]
    layer.attention.output.dense = sliced_linear(layer.attention.output.dense, columns=rows)
    if not kept:
        layer.attention.self = NoHeads(head_size)
        return
    for part in ("query", "key", "value"):
        setattr(attention, part, sliced_linear(getattr(attention, part), rows=rows))
    attention.num_attention_heads = len(kept)
    attention.all_head_size = len(rows)


def remove_neurons(layer: nn.Module, neurons: tuple[int, ...]) -> None:
    """Slice the removed FFN neurons out of one encoder layer."""
    kept = [n for n in range(layer.intermediate.dense.out_features) if n not in set(neurons)]
    layer.intermediate.dense = sliced_linear(layer.intermediate.dense, rows=kept)
    layer.output.dense = sliced_linear(layer.output.dense, columns=kept)


def _prunable_per_layer(model: nn.Module) -> dict[int, int]:
    counts: dict[int, int] = {}
    for w in prunable_weights(model):
        counts[w.layer] = counts.get(w.layer, 0) + w.weight.numel()
    return counts


def shrink_model(model: nn.Module, structure: Structure) -> dict:
    """Remove ``structure`` from ``model`` in place; returns prunable weights before/after and what went."""
    if getattr(model, SHRUNK, None) is not None:
        raise ValueError("this model was already shrunk; apply a structured result to a fresh model")
    before = _prunable_per_layer(model)
    head_size = flop_geometry(model).head_size
    layers = encoder_layers(model)
    for index, layer in enumerate(layers):
        if structure.heads.get(index):
            remove_heads(layer, structure.heads[index], head_size)
        if structure.neurons.get(index):
            remove_neurons(layer, structure.neurons[index])
    kept = [i for i in range(len(layers)) if i not in set(structure.layers)]
    base = getattr(model, "base_model", model)
    base.encoder.layer = nn.ModuleList([layers[i] for i in kept])
    base.config.num_hidden_layers = len(kept)
    after_by_new = _prunable_per_layer(model) if kept else {}
    after = {kept[new]: count for new, count in after_by_new.items()}
    removed = {layer: before[layer] - after.get(layer, 0) for layer in before}
    setattr(model, SHRUNK, {"layer_map": kept, "removed": removed})
    return {"prunable_before": sum(before.values()), "prunable_after": sum(after.values()),
            "prunable_removed": sum(removed.values()), **structure.summary()}
