"""Applying masks, keeping pruned weights at exactly zero through training, and measuring sparsity."""

from __future__ import annotations

import torch
from torch import nn

from methods.prunable import prunable_weights

SHRUNK = "prunebench_shrunk"  # set by benchmarks.shrink on a physically shrunk model


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every pruned weight in place (masks are keep-masks: True = kept)."""
    apply_pruning(model, masks)


def apply_pruning(model: nn.Module, masks: dict[str, torch.Tensor],
                  weights: dict[str, torch.Tensor] | None = None) -> None:
    """Write a method's replacement ``weights`` (if any), then zero every pruned weight in place.

    Masks go last, so a pruned entry is exactly zero whatever the replacement holds there; a
    replacement is allowed only for a masked matrix (it is part of the method's pruning).
    """
    params = dict(model.named_parameters())
    weights = weights or {}
    unknown = sorted((set(masks) | set(weights)) - set(params))
    if unknown:
        raise ValueError(f"masks name parameters the model does not have: {unknown[:3]}")
    unmasked = sorted(set(weights) - set(masks))
    if unmasked:
        raise ValueError(f"replacement weights for matrices without a mask: {unmasked[:3]}; return a mask for each")
    for name, tensor in (*masks.items(), *weights.items()):
        if tensor.shape != params[name].shape:
            what = "mask" if name in masks and tensor is masks[name] else "replacement"
            raise ValueError(f"{what} for {name} has shape {tuple(tensor.shape)}, weight {tuple(params[name].shape)}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
        for name, keep in masks.items():
            params[name].mul_(keep.to(params[name].device, params[name].dtype))


class MaskKeeper:
    """Re-applies masks after every optimizer step so pruned weights stay exactly zero.

    Uses ``Optimizer.register_step_post_hook``; gradients of pruned weights are also zeroed
    before the step so Adam's moment estimates never see them.
    """

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        self._keep(dict(model.named_parameters()), masks)

    @classmethod
    def for_params(cls, params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> "MaskKeeper":
        """A keeper of named parameter tensors that belong to no module (e.g. a ``run --stack`` stack's)."""
        keeper = cls.__new__(cls)
        keeper._keep(params, masks)
        return keeper

    def _keep(self, params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
        self.pairs = [(params[name], keep.to(params[name].device, params[name].dtype)) for name, keep in masks.items()]
        self._handles: list = []

    def attach(self, optimizer: torch.optim.Optimizer, reapply_each_step: bool = True) -> "MaskKeeper":
        """Hook the optimizer: zero masked grads before a step and (``reapply_each_step``) masked weights after it.

        Without the second pass the weights stay zero only under an optimizer whose update of a weight that is
        zero and never has a gradient is zero (AdamW, SGD with momentum and weight decay); call ``reapply`` at
        the end to be sure.
        """
        self._handles.append(optimizer.register_step_pre_hook(lambda *_: self._mask_grads()))
        if reapply_each_step:
            self._handles.append(optimizer.register_step_post_hook(lambda *_: self.reapply()))
        return self

    def _mask_grads(self) -> None:
        pairs = [(param.grad, keep) for param, keep in self.pairs if param.grad is not None]
        if pairs:  # one multi-tensor multiply, not one kernel per masked matrix (a GPU step is launch-bound)
            torch._foreach_mul_([g for g, _ in pairs], [k for _, k in pairs])

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
    """Achieved sparsity (fraction of exact zeros) over the prunable set, globally and per layer.

    On a model shrunk by ``benchmarks.shrink`` the removed weights count as zeros of their original layer.
    """
    per_layer_zero: dict[int, int] = {}
    per_layer_total: dict[int, int] = {}
    shrunk = getattr(model, SHRUNK, None)  # a physically shrunk model: removed weights count as pruned
    layer_map = shrunk["layer_map"] if shrunk else None
    for w in prunable_weights(model):
        layer = layer_map[w.layer] if layer_map else w.layer
        per_layer_zero[layer] = per_layer_zero.get(layer, 0) + int((w.weight == 0).sum())
        per_layer_total[layer] = per_layer_total.get(layer, 0) + w.weight.numel()
    for layer, removed in (shrunk["removed"] if shrunk else {}).items():
        per_layer_zero[layer] = per_layer_zero.get(layer, 0) + removed
        per_layer_total[layer] = per_layer_total.get(layer, 0) + removed
    zeros, total = sum(per_layer_zero.values()), sum(per_layer_total.values())
    return {
        "global": zeros / total,
        "zeros": zeros,
        "total": total,
        "per_layer": {str(layer): per_layer_zero[layer] / per_layer_total[layer] for layer in sorted(per_layer_total)},
    }


def prune_with_method(model: nn.Module, row_config: dict, seed: int, ctx=None, with_result: bool = False) -> tuple:
    """Run the row's registered method on ``model`` and apply what it returns, in place.

    Returns (keep-masks, record notes, data provenance), plus the method's return value ``with_result``.
    A method registered with ``calibration=True``
    gets the calibration set of the row's ``calibration`` config (built once per run, in ``ctx.cache``).
    """
    from methods.select import split_result

    result, data = method_result(model, row_config, seed, ctx)
    masks, weights = split_result(result)
    notes = {"weights_updated": True} if weights else {}
    kept_masks, shrunk = apply_result(model, result)
    if shrunk is not None:
        notes["structure"] = shrunk
    return (kept_masks, notes, data, result) if with_result else (kept_masks, notes, data)


def method_result(model: nn.Module, row_config: dict, seed: int, ctx=None) -> tuple:
    """(what the row's registered method returns for ``model``, data provenance), nothing applied: the method is
    called with the row's options, a generator seeded with ``seed`` and its calibration set if it needs one."""
    from benchmarks.calibration import needs_calibration
    from benchmarks.registry import METHODS

    method = row_config["method"]
    kwargs = dict(row_config.get("options") or {})
    data: dict = {}
    if needs_calibration(method):
        kwargs["calibration"] = calibration_for(model, row_config.get("calibration"), ctx)
        data.update(kwargs["calibration"].source)
    generator = torch.Generator().manual_seed(seed)
    return METHODS.get(method)(model, row_config["sparsity"], generator, **kwargs), data


def apply_result(model: nn.Module, result) -> tuple[dict, dict | None]:
    """Apply a method's return value in place: (masks to hold through training, shrink summary or None).

    A structured result is applied as masks, then its structures are removed physically
    (``benchmarks.shrink``); nothing of it is left to hold at zero, so its masks to hold are {}.
    """
    from benchmarks.shrink import shrink_model
    from methods.select import split_result
    from methods.structured import StructuredResult

    masks, weights = split_result(result)
    apply_pruning(model, masks, weights)
    if not isinstance(result, StructuredResult):
        return masks, None
    return {}, shrink_model(model, result.structure)


def calibration_for(model: nn.Module, config: dict | None, ctx=None):
    """The calibration set for ``model`` (tokenizer from the run's model, text from the run's data folder)."""
    from transformers import AutoTokenizer

    from benchmarks.calibration import calibration_config, load_calibration
    from benchmarks.config import canonical_json

    config = calibration_config(config, "row")
    location = ctx.model_ref.location if ctx is not None and ctx.model_ref is not None else model.name_or_path
    data_dir = ctx.data_dir if ctx is not None else None
    cache = ctx.cache if ctx is not None else {}
    key = ("calibration", location, str(data_dir), canonical_json(config))
    if key not in cache:
        tokenizer = AutoTokenizer.from_pretrained(location)
        positions = getattr(model.config, "max_position_embeddings", None)
        cache[key] = load_calibration(config, tokenizer, data_dir, positions)
    return cache[key]
