"""Uniform random pruning over the prunable set: the paper's random-subnetwork baseline."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.registry import register_method
from methods.patterns import no_pattern
from methods.prunable import prunable_weights
from methods.select import Masks, check_rate, exact_random_masks


def _check_random(sparsity: float, options: dict) -> None:
    check_rate(sparsity)
    no_pattern("random", options)


@register_method("random", validate=_check_random, options={"pattern": (str,)}, title="random", color="C1")
def global_random(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, **options) -> Masks:
    """Prune exactly round(sparsity*n) encoder weights chosen uniformly at random from ``generator``."""
    _check_random(sparsity, options)
    if generator is None:
        raise ValueError("random pruning needs a seeded torch.Generator")
    weights = {w.name: w.weight for w in prunable_weights(model)}
    return exact_random_masks(weights, sparsity, generator)
