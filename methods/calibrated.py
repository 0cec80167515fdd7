"""Layer-by-layer pruning from calibration activations (the loop Wanda and SparseGPT share).

The calibration sequences run through the embeddings once; then, encoder layer by encoder layer,
(1) the layer runs on its current inputs with hooks on its prunable ``Linear`` modules that collect a
statistic of each module's inputs, (2) ``solve`` turns each weight and its statistic into a keep-mask
(and, for SparseGPT, new values), written into the layer, (3) the pruned layer runs again and its
outputs become the next layer's inputs. So each layer sees the activations of the pruned-so-far model,
as in both papers. The model's weights are restored at the end: the method returns, the runner applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from methods.prunable import PrunableWeight, prunable_weights

_LAYER_PREFIX_RE = re.compile(r"^(.*?encoder\.layers?\.\d+)\.(.+)\.weight$")
BATCH = 16  # calibration sequences per layer call: bounds activation memory


class _Captured(Exception):
    """Raised by the hook on encoder layer 0 once its inputs are captured (the rest of the forward is skipped)."""


@dataclass
class LayerSolution:
    """What ``solve`` returns for one matrix: a keep-mask and optionally replacement values for it."""

    keep: torch.Tensor
    weight: torch.Tensor | None = None


Statistic = Callable[[torch.Tensor], torch.Tensor]  # (tokens x inputs) activations -> summand
Solver = Callable[[PrunableWeight, torch.Tensor, int], LayerSolution]  # (weight, summed statistic, tokens)


def layer_groups(model: nn.Module) -> list[tuple[nn.Module, list[tuple[PrunableWeight, nn.Linear]]]]:
    """Encoder layers in order, each with its prunable weights and the ``Linear`` modules that own them."""
    groups: dict[str, list] = {}
    for w in prunable_weights(model):
        match = _LAYER_PREFIX_RE.match(w.name)
        module = model.get_submodule(f"{match.group(1)}.{match.group(2)}") if match else None
        if not isinstance(module, nn.Linear):
            raise ValueError(f"{w.name} is not the weight of an nn.Linear inside an encoder layer; "
                             f"calibrated methods prune Linear layers only")
        groups.setdefault(match.group(1), []).append((w, module))
    return [(model.get_submodule(prefix), members) for prefix, members in groups.items()]


def _layer0_inputs(model: nn.Module, layer0: nn.Module,
                   calibration) -> list[tuple[torch.Tensor, tuple, dict, torch.Tensor]]:
    """(hidden states, other args, kwargs, token mask) that encoder layer 0 receives, per calibration batch."""
    captured: list = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append((hidden, tuple(args[1:]), dict(kwargs)))
        raise _Captured

    handle = layer0.register_forward_pre_hook(hook, with_kwargs=True)
    masks = []
    try:
        for ids, attention in calibration.batches(BATCH):
            masks.append(attention.bool())
            try:
                model(input_ids=ids, attention_mask=attention)
            except _Captured:
                pass
    finally:
        handle.remove()
    return [(h, a, k, m) for (h, a, k), m in zip(captured, masks)]


def _run_layer(layer: nn.Module, batches: list) -> list:
    """The layer's outputs for every batch, as the next layer's inputs."""
    out = []
    for hidden, args, kwargs, mask in batches:
        result = layer(hidden, *args, **kwargs)
        out.append((result[0] if isinstance(result, tuple) else result, args, kwargs, mask))
    return out


def _collect(layer: nn.Module, members: list, batches: list, statistic: Statistic) -> tuple[dict, int]:
    """Sum ``statistic`` of every member's inputs over all real (unmasked) tokens; also the token count."""
    sums: dict[str, torch.Tensor] = {}
    memo: dict = {}  # query/key/value read the same tensor: compute its statistic once
    token_mask: list = [None]

    def make_hook(name: str):
        def hook(module, args):
            x = args[0]
            if memo.get("x") is not x:
                memo.update(x=x, value=statistic(x[token_mask[0]].reshape(-1, x.shape[-1])))
            sums[name] = memo["value"] if name not in sums else sums[name] + memo["value"]
        return hook

    handles = [module.register_forward_pre_hook(make_hook(w.name)) for w, module in members]
    tokens = 0
    try:
        for hidden, args, kwargs, mask in batches:
            token_mask[0] = mask
            tokens += int(mask.sum())
            memo.clear()
            layer(hidden, *args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return sums, tokens


def prune_sequentially(model: nn.Module, calibration, statistic: Statistic, solve: Solver
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Prune every encoder layer in order from calibration activations; returns (keep-masks, new weights).

    ``model`` is left as it was (weights restored); the new weights (only for matrices whose solution
    has values) hold the solved values with pruned entries at zero, as the next layers saw them.
    """
    if calibration is None:
        raise ValueError("this method needs calibration data; register it with calibration=True")
    groups = layer_groups(model)
    originals = {w.name: w.weight.detach().clone() for _, members in groups for w, _ in members}
    was_training = model.training
    model.eval()
    masks: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            batches = _layer0_inputs(model, groups[0][0], calibration)
            for layer, members in groups:
                sums, tokens = _collect(layer, members, batches, statistic)
                for w, module in members:
                    solution = solve(w, sums[w.name], tokens)
                    masks[w.name] = solution.keep
                    if solution.weight is not None:
                        weights[w.name] = (solution.weight * solution.keep).to(module.weight.dtype)
                        module.weight.copy_(weights[w.name])
                    else:
                        module.weight.mul_(solution.keep)
                batches = _run_layer(layer, batches)
    finally:
        with torch.no_grad():
            for _, members in groups:
                for w, module in members:
                    module.weight.copy_(originals[w.name])
        model.train(was_training)
    return masks, weights
