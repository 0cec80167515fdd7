"""Exact mask selection shared by the methods: a partition for the threshold, deterministic ties."""

from __future__ import annotations

import numpy as np
import torch

Masks = dict[str, torch.Tensor]


def check_rate(rate: float, what: str = "sparsity") -> float:
    """A pruning rate must lie in [0, 1); anything else is a clear error."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{what} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def prune_count(rate: float, n: int) -> int:
    """Number of weights to prune: round(rate * n), as torch.nn.utils.prune does."""
    return int(round(rate * n))


def exact_magnitude_masks(weights: dict[str, torch.Tensor], rate: float) -> Masks:
    """Keep-masks that prune exactly round(rate*n) of the smallest |w| over all ``weights`` together.

    The threshold is the k-th smallest magnitude found with numpy's introselect (a partition,
    not a sort). Weights equal to the threshold are pruned in parameter order, then in
    flat index order, so ties are broken deterministically.
    """
    rate = check_rate(rate)
    names = list(weights)
    n = sum(weights[name].numel() for name in names)
    k = prune_count(rate, n)
    if k == 0:
        return {name: torch.ones_like(weights[name], dtype=torch.bool) for name in names}
    with torch.no_grad():
        flat = torch.cat([weights[name].detach().reshape(-1).abs().float().cpu() for name in names])
    buf = flat.numpy()
    buf.partition(k - 1)  # in place: ``flat`` is our own copy
    return _threshold_masks(weights, names, float(buf[k - 1]), k)


def _threshold_masks(weights: dict[str, torch.Tensor], names: list[str], threshold: float, k: int) -> Masks:
    masks: Masks = {}
    pruned = 0
    for name in names:
        masks[name] = weights[name].detach().abs().float() > threshold
        pruned += masks[name].numel() - int(masks[name].sum())
    if pruned == k:  # no surplus ties at the threshold: the common case
        return masks
    # Weights equal to the threshold: prune the earliest (parameter order, then flat index).
    ties_to_prune = k - (pruned - sum(int((weights[n].detach().abs().float() == threshold).sum()) for n in names))
    for name in names:
        mag = weights[name].detach().abs().float()
        tie = (mag == threshold).reshape(-1)
        n_tie = int(tie.sum())
        if n_tie == 0:
            continue
        keep = masks[name].reshape(-1).clone()
        tie_idx = tie.nonzero().squeeze(1)
        take = min(ties_to_prune, n_tie)
        keep[tie_idx[take:]] = True  # ties beyond the quota are kept
        ties_to_prune -= take
        masks[name] = keep.reshape(mag.shape)
    return masks


def exact_random_masks(weights: dict[str, torch.Tensor], rate: float, generator: torch.Generator) -> Masks:
    """Keep-masks that prune exactly round(rate*n) weights chosen uniformly from the seeded generator."""
    rate = check_rate(rate)
    names = list(weights)
    sizes = [weights[name].numel() for name in names]
    n = sum(sizes)
    k = prune_count(rate, n)
    keep = torch.ones(n, dtype=torch.bool)
    if k:
        keep[torch.randperm(n, generator=generator)[:k]] = False
    parts = torch.split(keep, sizes)
    return {name: part.reshape(weights[name].shape).to(weights[name].device) for name, part in zip(names, parts)}
