"""Pruning methods: small functions from (model, sparsity, generator, options) to masks.

A method never trains or logs. Register one with ``@register_method("name")``; the
built-ins live in ``methods.magnitude``, ``methods.random``, ``methods.oneshot``
(layerwise magnitude, Wanda, SparseGPT), ``methods.structured``, ``methods.retrain_free`` and
``methods.iterative`` (IMP, whose rounds the runner drives) and register themselves when this package is imported
(``benchmarks.registry.METHODS`` imports it on its first lookup).
"""

from __future__ import annotations

from benchmarks.registry import METHODS, method_spec
from methods import (  # noqa: F401 - importing them registers the built-ins
    iterative,
    magnitude,
    oneshot,
    random,
    retrain_free,
    structured,
)
from methods.patterns import nm_keep, parse_pattern, pattern_label, pattern_rate
from methods.prunable import PrunableWeight, layer_halves, prunable_weights
from methods.select import PruneResult, exact_magnitude_masks, exact_random_masks


def method_example(name: str) -> tuple[float | None, dict]:
    """A valid (sparsity, options) for method ``name``, from its registration metadata."""
    meta = METHODS.meta(name)
    return meta.get("example_sparsity", 0.3), dict(meta.get("example_options") or {})


def method_groups(name: str, weights: list[PrunableWeight], sparsity: float | None, options: dict) -> dict:
    """{group: (param names, rate)}: which weights method ``name`` prunes, and at which exact rate."""
    groups = method_spec(name).groups
    if groups is None:
        return {"all": ([w.name for w in weights], sparsity)}
    return groups(weights, sparsity, options)


def method_label(name: str, sparsity: float | None, options: dict) -> str:
    """The leaderboard row label of a method's row: its registered ``label`` or ``name-0.5`` / ``name-2:4``."""
    spec = method_spec(name)
    return spec.label(sparsity, dict(options)) if spec.label else pattern_label(name, sparsity, dict(options))


def method_nominal(name: str, sparsity: float | None, options: dict) -> float:
    """The overall sparsity a method's row aims at (its registered ``nominal``, else its rate)."""
    spec = method_spec(name)
    if spec.nominal is not None:
        return float(spec.nominal(sparsity, dict(options)))
    return float(pattern_rate(sparsity, options.get("pattern")))


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
