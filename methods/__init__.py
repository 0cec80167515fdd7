"""Pruning methods: small functions from (model, sparsity, generator, options) to masks.

A method never trains or logs. Register one with ``@register_method("name")``; the
built-ins live in ``methods.magnitude`` and ``methods.random``.
"""

from __future__ import annotations

from methods.prunable import PrunableWeight, layer_halves, prunable_weights
from methods.select import exact_magnitude_masks, exact_random_masks


def method_example(name: str) -> tuple[float | None, dict]:
    """A valid (sparsity, options) for method ``name``, from its registration metadata."""
    from benchmarks.registry import METHODS

    meta = METHODS.meta(name)
    return meta.get("example_sparsity", 0.3), dict(meta.get("example_options") or {})


def method_groups(name: str, weights: list[PrunableWeight], sparsity: float | None, options: dict) -> dict:
    """{group: (param names, rate)}: which weights method ``name`` prunes, and at which exact rate."""
    from benchmarks.registry import METHODS

    groups = METHODS.meta(name).get("groups")
    if groups is None:
        return {"all": ([w.name for w in weights], sparsity)}
    return groups(weights, sparsity, options)

__all__ = [
    "PrunableWeight",
    "prunable_weights",
    "layer_halves",
    "exact_magnitude_masks",
    "exact_random_masks",
    "method_example",
    "method_groups",
]
