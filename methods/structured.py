"""Structured pruning: whole attention heads, FFN neurons or encoder layers (the model can then shrink).

A structured method returns a ``StructuredResult``: the ``Structure`` it removes (heads and neurons per
layer, dropped layers), the equivalent keep-masks over the prunable set (the removed heads' query/key/value
rows and attention-output columns, the removed neurons' intermediate rows and output columns, every matrix
of a dropped layer) and, for ``retrain-free``, replacement values of the output matrices (its tuned mask
scales folded in). The runner applies the masks, then physically removes the structures
(``benchmarks.shrink``), so the evaluated model is smaller and runs faster.

``sparsity`` of every structured method is the share of the encoder's FLOPs per token to remove (at
``seq_len`` tokens, default 128; ``flop_geometry`` says what is counted), so rows of different methods
at one rate cost the same.
- `heads`: the heads with the lowest Fisher importance, globally across layers (Michel et al. 2019; the
  Fisher score of Kwon et al. 2022).
- `neurons`: the FFN neurons with the lowest Fisher importance, globally.
- `retrain-free`: Kwon et al. 2022, in ``methods.retrain_free``.
- `drop-layers`: the top (nearest the output) or bottom encoder layers (Sajjad et al. 2023).

Fisher importance without labels: the calibration text has no task labels and the zero-shot encoder no
head, so the score is the Fisher information of a Gaussian model of the mean-pooled embedding, y ~ N(f(x; m),
I), estimated with targets sampled from it: g = eps . df/dm with eps ~ N(0, I) from the method's seed, and
importance = sum over sequences of g^2 (the diagonal of sum_x J^T J; Kwon et al. use task labels instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from benchmarks.registry import register_method
from methods.patterns import no_pattern
from methods.prunable import prunable_weights
from methods.select import Masks, PruneResult, check_rate

DEFAULT_SEQ_LEN = 128  # tokens per sequence the FLOPs targets are counted at


@dataclass(frozen=True)
class Structure:
    """What a structured method removes: head and neuron indices per layer, and whole layers."""

    heads: dict[int, tuple[int, ...]] = field(default_factory=dict)
    neurons: dict[int, tuple[int, ...]] = field(default_factory=dict)
    layers: tuple[int, ...] = ()

    def summary(self) -> dict:
        """Counts for the record: heads, neurons and layers removed (and which layers)."""
        return {"heads_removed": sum(len(v) for v in self.heads.values()),
                "neurons_removed": sum(len(v) for v in self.neurons.values()),
                "layers_removed": list(self.layers),
                "heads_removed_per_layer": {str(k): len(v) for k, v in sorted(self.heads.items())},
                "neurons_removed_per_layer": {str(k): len(v) for k, v in sorted(self.neurons.items())}}


@dataclass(frozen=True)
class StructuredResult(PruneResult):
    """A method's structured result: keep-masks equivalent to removing ``structure`` (+ optional new weights)."""

    structure: Structure = field(default_factory=Structure)


@dataclass(frozen=True)
class Geometry:
    """Shapes of a BERT encoder: layers, heads per layer, head size, hidden size, FFN width per layer."""

    layers: int
    heads: tuple[int, ...]
    head_size: int
    hidden: int
    neurons: tuple[int, ...]

    def head_flops(self, seq_len: int) -> int:
        """FLOPs per token of one head: its Q/K/V rows and O columns (8 d h) and its scores and mixing (4 S h)."""
        return 8 * self.hidden * self.head_size + 4 * seq_len * self.head_size

    def neuron_flops(self) -> int:
        """FLOPs per token of one FFN neuron: its intermediate row and output column (2 x 2 d)."""
        return 4 * self.hidden

    def total_flops(self, seq_len: int) -> int:
        """Encoder FLOPs per token over heads and neurons (biases, LayerNorm, softmax and embeddings omitted)."""
        return sum(self.heads) * self.head_flops(seq_len) + sum(self.neurons) * self.neuron_flops()


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's layer list of a BERT-style model (BertModel or a BertFor* wrapper)."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError("structured methods need a BERT-style model with encoder.layer; this model has none")
    return layers


def flop_geometry(model: nn.Module) -> Geometry:
    """The encoder's geometry, read from its (possibly already shrunk) modules."""
    layers = encoder_layers(model)
    head_size = int(layers[0].attention.self.attention_head_size)
    # the attention-output projection has one input column per kept head dimension (0 for a layer without heads)
    heads = tuple(int(layer.attention.output.dense.in_features) // head_size for layer in layers)
    neurons = tuple(int(layer.intermediate.dense.out_features) for layer in layers)
    return Geometry(len(layers), heads, head_size, int(layers[0].attention.output.dense.out_features), neurons)


def _layer_prefixes(model: nn.Module) -> list[str]:
    """Parameter-name prefix of each encoder layer (``encoder.layer.3`` or ``bert.encoder.layer.3``)."""
    names = {id(module): name for name, module in model.named_modules()}
    return [names[id(layer)] for layer in encoder_layers(model)]


def structure_masks(model: nn.Module, structure: Structure) -> Masks:
    """Keep-masks over the prunable set that zero exactly what ``structure`` removes."""
    masks = {w.name: torch.ones_like(w.weight, dtype=torch.bool) for w in prunable_weights(model)}
    geo = flop_geometry(model)
    for layer, prefix in enumerate(_layer_prefixes(model)):
        if layer in structure.layers:
            for name in masks:
                if name.startswith(prefix + "."):
                    masks[name].fill_(False)
            continue
        for head in structure.heads.get(layer, ()):
            span = slice(head * geo.head_size, (head + 1) * geo.head_size)
            for part in ("query", "key", "value"):
                masks[f"{prefix}.attention.self.{part}.weight"][span, :] = False
            masks[f"{prefix}.attention.output.dense.weight"][:, span] = False
        neurons = list(structure.neurons.get(layer, ()))
        if neurons:
            masks[f"{prefix}.intermediate.dense.weight"][neurons, :] = False
            masks[f"{prefix}.output.dense.weight"][:, neurons] = False
    return masks


def check_structured(name: str):
    """``validate`` of a structured method: a rate in [0, 1) and no N:M pattern."""
    def validate(sparsity, options: dict) -> None:
        no_pattern(name, options)
        check_rate(sparsity)
        side = options.get("side", "top")
        if name == "drop-layers" and side not in ("top", "bottom"):
            raise ValueError(f"drop-layers side must be 'top' or 'bottom', got {side!r}; e.g. side: top")
    return validate


# -- Fisher importance ----------------------------------------------------------------------------------
@dataclass
class FisherGrads:
    """Per-sequence gradients of the sampled-target loss w.r.t. head and neuron masks, one tensor per layer."""

    heads: list[torch.Tensor]  # [layer] -> sequences x heads
    neurons: list[torch.Tensor]  # [layer] -> sequences x neurons

    def head_importance(self) -> list[torch.Tensor]:
        """Diagonal Fisher of each head: sum over sequences of its squared gradient."""
        return [g.pow(2).sum(0) for g in self.heads]

    def neuron_importance(self) -> list[torch.Tensor]:
        """Diagonal Fisher of each FFN neuron."""
        return [g.pow(2).sum(0) for g in self.neurons]


def _mask_hooks(model: nn.Module, head_masks: list, neuron_masks: list, head_size: int) -> list:
    """Forward hooks multiplying each head's output and each neuron's activation by its mask variable."""
    handles = []
    for layer, hm, nm in zip(encoder_layers(model), head_masks, neuron_masks):
        def heads_hook(module, args, output, hm=hm):
            attn, *rest = output
            shape = attn.shape
            scaled = (attn.view(*shape[:-1], -1, head_size) * hm[:, None, :, None]).reshape(shape)
            return (scaled, *rest)

        def neurons_hook(module, args, output, nm=nm):
            return output * nm[:, None, :]

        handles.append(layer.attention.self.register_forward_hook(heads_hook))
        handles.append(layer.intermediate.register_forward_hook(neurons_hook))
    return handles


def fisher_grads(model: nn.Module, calibration, generator: torch.Generator | None, batch: int = 16) -> FisherGrads:
    """Per-sequence mask gradients on the calibration set (see the module docstring for the loss)."""
    if calibration is None:
        raise ValueError("this method needs calibration data; register it with calibration=True")
    geo = flop_geometry(model)
    base = getattr(model, "base_model", model)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    heads: list[list] = [[] for _ in range(geo.layers)]
    neurons: list[list] = [[] for _ in range(geo.layers)]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for ids, attention in calibration.batches(batch):
                size = ids.shape[0]
                hm = [torch.ones(size, h, requires_grad=True) for h in geo.heads]
                nm = [torch.ones(size, n, requires_grad=True) for n in geo.neurons]
                handles = _mask_hooks(model, hm, nm, geo.head_size)
                try:
                    hidden = base(input_ids=ids, attention_mask=attention).last_hidden_state
                finally:
                    for handle in handles:
                        handle.remove()
                weights = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
                eps = torch.randn(pooled.shape, generator=generator, dtype=pooled.dtype)
                grads = torch.autograd.grad((pooled * eps).sum(), hm + nm)
                for layer in range(geo.layers):
                    heads[layer].append(grads[layer].detach().to(torch.float64))
                    neurons[layer].append(grads[geo.layers + layer].detach().to(torch.float64))
    finally:
        model.train(was_training)
    return FisherGrads([torch.cat(g) for g in heads], [torch.cat(g) for g in neurons])


def lowest_global(importance: list[torch.Tensor], count: int) -> dict[int, tuple[int, ...]]:
    """The ``count`` lowest scores across all layers as {layer: indices}; ties: lower layer, lower index first."""
    flat = torch.cat(importance)
    order = sorted(range(flat.numel()), key=lambda i: (float(flat[i]), i))[:count]
    sizes = [t.numel() for t in importance]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    out: dict[int, list[int]] = {}
    for i in order:
        layer = max(j for j, s in enumerate(starts) if s <= i)
        out.setdefault(layer, []).append(i - starts[layer])
    return {layer: tuple(sorted(idx)) for layer, idx in sorted(out.items())}


def units_for_flops(target: float, total: int, unit_flops: int, available: int, what: str, fix: str) -> int:
    """How many units of ``unit_flops`` each remove ``target`` of ``total`` FLOPs (refused beyond ``available``)."""
    count = int(round(target * total / unit_flops))
    if count > available:
        most = available * unit_flops / total
        raise ValueError(f"removing {target:g} of the FLOPs needs {count} {what} but the model has {available} "
                         f"(at most {most:.3f} of its FLOPs); use a lower sparsity or {fix}")
    return count


def _result(model: nn.Module, structure: Structure, weights: dict | None = None) -> StructuredResult:
    return StructuredResult(structure_masks(model, structure), dict(weights or {}), structure)


STRUCTURED_OPTIONS = {"seq_len": (int,)}


@register_method("heads", validate=check_structured("heads"), calibration=True, options=STRUCTURED_OPTIONS,
                 example_sparsity=0.2, title="heads (Fisher)", color="C5")
def heads(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, calibration=None,
          seq_len: int = DEFAULT_SEQ_LEN, **options) -> StructuredResult:
    """Remove the attention heads of lowest Fisher importance, globally, until ``sparsity`` of the FLOPs go."""
    check_structured("heads")(sparsity, options)
    geo = flop_geometry(model)
    count = units_for_flops(sparsity, geo.total_flops(seq_len), geo.head_flops(seq_len), sum(geo.heads),
                            "heads", "neurons or retrain-free")
    importance = fisher_grads(model, calibration, generator).head_importance()
    return _result(model, Structure(heads=lowest_global(importance, count)))


@register_method("neurons", validate=check_structured("neurons"), calibration=True, options=STRUCTURED_OPTIONS,
                 example_sparsity=0.2, title="FFN neurons (Fisher)", color="C6")
def neurons(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, calibration=None,
            seq_len: int = DEFAULT_SEQ_LEN, **options) -> StructuredResult:
    """Remove the FFN neurons of lowest Fisher importance, globally, until ``sparsity`` of the FLOPs go."""
    check_structured("neurons")(sparsity, options)
    geo = flop_geometry(model)
    count = units_for_flops(sparsity, geo.total_flops(seq_len), geo.neuron_flops(), sum(geo.neurons),
                            "neurons", "heads or retrain-free")
    importance = fisher_grads(model, calibration, generator).neuron_importance()
    return _result(model, Structure(neurons=lowest_global(importance, count)))


def _drop_label(sparsity, options: dict) -> str:
    return f"drop-{options.get('side', 'top')}-{sparsity:g}"


@register_method("drop-layers", validate=check_structured("drop-layers"), options={"side": (str,)},
                 example_sparsity=0.3, label=_drop_label, title="drop layers", color="C7")
def drop_layers(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, side: str = "top",
                **options) -> StructuredResult:
    """Drop round(sparsity x L) whole encoder layers from the top (output side) or the bottom (Sajjad et al. 2023)."""
    check_structured("drop-layers")(sparsity, {**options, "side": side})
    total = flop_geometry(model).layers
    count = int(round(sparsity * total))
    if count >= total:
        raise ValueError(f"drop-layers at {sparsity:g} would drop all {total} layers; use a sparsity below "
                         f"{(total - 0.5) / total:.2f}")
    dropped = range(total - count, total) if side == "top" else range(count)
    return _result(model, Structure(layers=tuple(dropped)))
