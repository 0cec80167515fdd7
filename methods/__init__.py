"""Pruning methods: small functions from (model, sparsity, generator, options) to masks.

A method never trains or logs. Register one with ``@register_method("name")``; the
built-ins live in ``methods.magnitude`` and ``methods.random``.
"""

from methods.prunable import PrunableWeight, prunable_weights, layer_halves
from methods.select import exact_magnitude_masks, exact_random_masks

__all__ = [
    "PrunableWeight",
    "prunable_weights",
    "layer_halves",
    "exact_magnitude_masks",
    "exact_random_masks",
]
