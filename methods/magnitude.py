"""Magnitude pruning over the whole encoder (`global`), one half of it (`lower`, `upper`), or both halves at
separate rates (`mixed`).

`global`, `upper` and `lower` also take ``pattern="N:M"``: the N smallest magnitudes of every M
consecutive inputs are pruned. N:M leaves no choice between matrices, so `global` with a pattern
prunes exactly as `layerwise` does.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.registry import register_method
from methods.patterns import check_nm_width, nm_keep, no_pattern, parse_pattern, pattern_label, pattern_rate
from methods.prunable import PrunableWeight, layer_halves, prunable_weights
from methods.select import Masks, check_rate, exact_magnitude_masks


def _as_dict(weights: list[PrunableWeight]) -> dict[str, torch.Tensor]:
    return {w.name: w.weight for w in weights}


def _rate_within(group: list[PrunableWeight], total: int, sparsity: float, global_target: bool) -> float:
    """Rate inside ``group``: ``sparsity`` itself, or the rate that yields ``sparsity`` over all weights."""
    check_rate(sparsity)
    if not global_target:
        return sparsity
    size = sum(w.weight.numel() for w in group)
    rate = sparsity * total / size
    if rate >= 1.0:
        raise ValueError(
            f"global sparsity {sparsity} needs rate {rate:.3f} >= 1 inside one half; "
            f"use a global sparsity below {size / total:.3f} or the 'mixed' method"
        )
    return rate


def magnitude_masks(group: list[PrunableWeight], rate: float, pattern: str | None = None) -> Masks:
    """Smallest magnitudes over ``group`` together at ``rate``, or N:M within each matrix row."""
    nm = parse_pattern(pattern)
    if nm is None:
        return exact_magnitude_masks(_as_dict(group), rate)
    masks = {}
    for w in group:
        check_nm_width(w.name, w.weight.shape[1], nm[1])
        masks[w.name] = nm_keep(w.weight.detach().abs(), *nm)
    return masks


def check_pattern_rate(sparsity: float | None, options: dict) -> float:
    """A valid rate for (sparsity, pattern): sparsity in [0, 1) that agrees with an N:M pattern."""
    rate = pattern_rate(check_rate(sparsity), options.get("pattern"))
    return rate


@register_method("global", label=lambda sparsity, options: pattern_label("full", sparsity, options),
                 patterns=True, validate=check_pattern_rate, options={},
                 title="full (global magnitude)", color="C0")
def global_magnitude(model: nn.Module, sparsity: float, generator: torch.Generator | None = None,
                     pattern: str | None = None, **options) -> Masks:
    """Prune the smallest-magnitude weights across all encoder matrices together (or N:M per row)."""
    return magnitude_masks(prunable_weights(model), check_pattern_rate(sparsity, {"pattern": pattern}), pattern)


def _half_groups(which: str):
    """The ``groups`` metadata of ``lower``/``upper``: one half at its rate, the other half untouched."""
    def groups(weights: list[PrunableWeight], sparsity: float, options: dict) -> dict:
        lower, upper = layer_halves(weights)
        group = lower if which == "lower" else upper
        total = sum(w.weight.numel() for w in weights)
        rate = _rate_within(group, total, sparsity, bool(options.get("global_target")))
        return {which: ([w.name for w in group], rate)}

    return groups


def _check_half(sparsity: float, options: dict) -> None:
    """``upper``/``lower`` arguments: a rate in [0, 1); with ``global_target`` below 0.5 (half the weights);
    an N:M pattern fixes the rate inside the half, so it cannot also meet a global target."""
    check_pattern_rate(sparsity, options)
    if options.get("global_target") and parse_pattern(options.get("pattern")) is not None:
        raise ValueError(f"pattern {options['pattern']} fixes the rate inside the half at {sparsity}; "
                         f"drop global_target (the overall rate is then about half of it)")
    if options.get("global_target") and sparsity >= 0.5:
        raise ValueError(f"global sparsity {sparsity} cannot come from one half of the layers; "
                         f"use a global sparsity below 0.5 or the 'mixed' method")


def _mixed_groups(weights: list[PrunableWeight], sparsity, options: dict) -> dict:
    lower, upper = layer_halves(weights)
    return {"lower": ([w.name for w in lower], options["lower"]), "upper": ([w.name for w in upper], options["upper"])}


def _half(model: nn.Module, sparsity: float, which: str, global_target: bool, pattern: str | None) -> Masks:
    _check_half(sparsity, {"global_target": global_target, "pattern": pattern})
    weights = prunable_weights(model)
    lower, upper = layer_halves(weights)
    group, other = (lower, upper) if which == "lower" else (upper, lower)
    total = sum(w.weight.numel() for w in weights)
    masks = magnitude_masks(group, _rate_within(group, total, sparsity, global_target), pattern)
    masks.update({w.name: torch.ones_like(w.weight, dtype=torch.bool) for w in other})
    return masks


def _half_label(name: str):
    """``lower-0.6`` (the rate inside the half), ``lower-2:4``, or ``lower-0.3-overall`` with ``global_target``."""
    def label(sparsity, options: dict) -> str:
        base = pattern_label(name, sparsity, options)
        return f"{base}-overall" if options.get("global_target") else base

    return label


def _half_nominal(sparsity, options: dict) -> float:
    """One half's rate covers half the prunable weights (BERT's halves are equal); with global_target it is overall."""
    rate = pattern_rate(sparsity, options.get("pattern"))
    return rate if options.get("global_target") else rate / 2


HALF_OPTIONS = {"global_target": (bool,)}


@register_method("lower", groups=_half_groups("lower"), validate=_check_half, patterns=True, options=HALF_OPTIONS,
                 label=_half_label("lower"), nominal=_half_nominal, title="lower half", color="C3")
def lower_magnitude(model: nn.Module, sparsity: float, generator: torch.Generator | None = None,
                    global_target: bool = False, pattern: str | None = None, **options) -> Masks:
    """Magnitude-prune only layers [0, L/2); ``sparsity`` is the rate inside that half
    (or, with ``global_target``, the overall rate, which must stay below 0.5)."""
    return _half(model, sparsity, "lower", global_target, pattern)


@register_method("upper", groups=_half_groups("upper"), validate=_check_half, patterns=True, options=HALF_OPTIONS,
                 label=_half_label("upper"), nominal=_half_nominal, title="upper half", color="C2")
def upper_magnitude(model: nn.Module, sparsity: float, generator: torch.Generator | None = None,
                    global_target: bool = False, pattern: str | None = None, **options) -> Masks:
    """Magnitude-prune only layers [L/2, L); ``sparsity`` as for ``lower``."""
    return _half(model, sparsity, "upper", global_target, pattern)


def _mixed_label(sparsity, options: dict) -> str:
    return f"upper-{options['upper']:g}-lower-{options['lower']:g}"


def _check_mixed(sparsity, options: dict) -> None:
    no_pattern("mixed", options)


@register_method("mixed", example_options={"upper": 0.6, "lower": 0.8}, example_sparsity=None,
                 groups=_mixed_groups, rate_options=("upper", "lower"), label=_mixed_label, validate=_check_mixed,
                 options={"upper": (int, float), "lower": (int, float), "pattern": (str,)}, required=("upper", "lower"),
                 takes_sparsity=False, nominal=lambda sparsity, options: (options["upper"] + options["lower"]) / 2,
                 title="mixed (upper/lower)", color="C4")
def mixed_magnitude(model: nn.Module, sparsity: float | None = None, generator: torch.Generator | None = None,
                    upper: float | None = None, lower: float | None = None, **options) -> Masks:
    """Magnitude-prune the upper half at rate ``upper`` and the lower half at rate ``lower``."""
    no_pattern("mixed", options)
    if upper is None or lower is None:
        raise ValueError("mixed needs both rates, e.g. {method: mixed, upper: 0.6, lower: 0.8}")
    if sparsity is not None:
        raise ValueError("mixed takes its rates from 'upper' and 'lower', not 'sparsity'; drop 'sparsity'")
    lo, up = layer_halves(prunable_weights(model))
    masks = exact_magnitude_masks(_as_dict(lo), check_rate(lower, "lower rate"))
    masks.update(exact_magnitude_masks(_as_dict(up), check_rate(upper, "upper rate")))
    return masks
