"""Applying masks, keeping pruned weights at exactly zero through training, and measuring sparsity."""

from __future__ import annotations

import torch
from torch import nn

from methods.prunable import prunable_weights


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every pruned weight in place (masks are keep-masks: True = kept)."""
    params = dict(model.named_parameters())
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"masks name parameters the model does not have: {unknown[:3]}")
    with torch.no_grad():
        for name, keep in masks.items():
            if keep.shape != params[name].shape:
                raise ValueError(f"mask for {name} has shape {tuple(keep.shape)}, weight {tuple(params[name].shape)}")
            params[name].mul_(keep.to(params[name].device, params[name].dtype))


class MaskKeeper:
    """Re-applies masks after every optimizer step so pruned weights stay exactly zero.

    Uses ``Optimizer.register_step_post_hook``; gradients of pruned weights are also zeroed
    before the step so Adam's moment estimates never see them.
    """

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        self.pairs = [(params[name], keep.to(params[name].device, params[name].dtype)) for name, keep in masks.items()]
        self._handles: list = []

    def attach(self, optimizer: torch.optim.Optimizer) -> "MaskKeeper":
        """Hook the optimizer: zero masked grads before a step and masked weights after it."""
        self._handles.append(optimizer.register_step_pre_hook(lambda *_: self._mask_grads()))
        self._handles.append(optimizer.register_step_post_hook(lambda *_: self.reapply()))
        return self

    def _mask_grads(self) -> None:
        for param, keep in self.pairs:
            if param.grad is not None:
                param.grad.mul_(keep)

    def reapply(self) -> None:
        """Zero the pruned weights again."""
        with torch.no_grad():
            for param, keep in self.pairs:
                param.mul_(keep)

    def detach(self) -> None:
        """Remove the optimizer hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def measure_sparsity(model: nn.Module) -> dict:
    """Achieved sparsity (fraction of exact zeros) over the prunable set, globally and per layer."""
    per_layer_zero: dict[int, int] = {}
    per_layer_total: dict[int, int] = {}
    for w in prunable_weights(model):
        per_layer_zero[w.layer] = per_layer_zero.get(w.layer, 0) + int((w.weight == 0).sum())
        per_layer_total[w.layer] = per_layer_total.get(w.layer, 0) + w.weight.numel()
    zeros, total = sum(per_layer_zero.values()), sum(per_layer_total.values())
    return {
        "global": zeros / total,
        "zeros": zeros,
        "total": total,
        "per_layer": {str(layer): per_layer_zero[layer] / per_layer_total[layer] for layer in sorted(per_layer_total)},
    }
