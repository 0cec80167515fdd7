"""Pruning methods: small functions from (model, sparsity, generator, options) to masks.

A method never trains or logs. Register one with ``@register_method("name")``; the
built-ins live in ``methods.magnitude``, ``methods.random`` and ``methods.oneshot``
(layerwise magnitude, Wanda, SparseGPT).
"""

from __future__ import annotations

from methods.prunable import PrunableWeight, layer_halves, prunable_weights
from methods.patterns import nm_keep, parse_pattern, pattern_label
from methods.select import PruneResult, exact_magnitude_masks, exact_random_masks


def method_example(name: str) -> tuple[float | None, dict]:
    """A valid (sparsity, options) for method ``name``, from its registration metadata."""
    from benchmarks.registry import METHODS

    meta = METHODS.meta(name)
    return meta.get("example_sparsity", 0.3), dict(meta.get("example_options") or {})


def method_groups(name: str, weights: list[PrunableWeight], sparsity: float | None, options: dict) -> dict:
    """{group: (param names, rate)}: which weights method ``name`` prunes, and at which exact rate."""
    from benchmarks.registry import method_spec

    groups = method_spec(name).groups
    if groups is None:
        return {"all": ([w.name for w in weights], sparsity)}
    return groups(weights, sparsity, options)


def method_label(name: str, sparsity: float | None, options: dict) -> str:
    """The leaderboard row label of a method's row: its registered ``label`` or ``name-0.5`` / ``name-2:4``."""
    from benchmarks.registry import method_spec

    return method_spec(name).label_for(sparsity, options)


def method_nominal(name: str, sparsity: float | None, options: dict) -> float:
    """The overall sparsity a method's row aims at (its registered ``nominal``, else its rate)."""
    from benchmarks.registry import method_spec

    return method_spec(name).nominal_for(sparsity, options)


__all__ = [
    "PrunableWeight",
    "prunable_weights",
    "layer_halves",
    "exact_magnitude_masks",
    "exact_random_masks",
    "method_example",
    "method_groups",
    "method_label",
    "method_nominal",
    "nm_keep",
    "parse_pattern",
    "PruneResult",
]
