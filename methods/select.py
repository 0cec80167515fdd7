"""Exact mask selection shared by the methods: a partition for the threshold, deterministic ties."""

from __future__ import annotations

import math

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


def _flat_magnitudes(weights: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """|w| of all ``weights`` in one float32 CPU vector, written in one pass (no per-weight temporaries)."""
    n = sum(weights[name].numel() for name in names)
    flat = torch.empty(n, dtype=torch.float32)
    offset = 0
    with torch.no_grad():
        for name in names:
            w = weights[name].detach().reshape(-1)
            size = w.numel()
            if w.dtype == torch.float32 and w.device.type == "cpu":
                torch.abs(w, out=flat[offset:offset + size])
            else:
                flat[offset:offset + size] = w.abs().float().cpu()
            offset += size
    return flat


# Below this many values a plain partition is fast enough; above it the sampled bracket pays off.
_BRACKET_MIN = 1 << 20
_SAMPLE = 1 << 16
_CHUNK = 1 << 18  # values per pass step: keeps the temporaries in cache


def kth_smallest(values: torch.Tensor, k: int) -> float:
    """The k-th smallest (0-based) of a 1-D float tensor, exactly, by selection (no sort).

    Large inputs: a fixed-seed sample brackets the answer, one cache-friendly chunked pass counts
    the values below the bracket and gathers those inside it, and numpy's introselect partitions
    only those few. The sample only affects speed: the result is always the exact k-th value.
    """
    x = values.numpy()
    n = x.size
    if n <= _BRACKET_MIN:
        return float(np.partition(x, k)[k])
    sample = x[np.random.default_rng(0).integers(0, n, _SAMPLE)]
    q = (k + 0.5) / n
    margin = 5.0 * math.sqrt(q * (1 - q) / _SAMPLE) + 2.0 / _SAMPLE  # ~5 sigma of the sample quantile
    lo, hi = np.quantile(sample, [max(0.0, q - margin), min(1.0, q + margin)]).astype(x.dtype)
    below, inside = 0, []
    for start in range(0, n, _CHUNK):
        chunk = x[start:start + _CHUNK]
        is_below = chunk < lo
        below += int(np.count_nonzero(is_below))
        inside.append(chunk[~is_below & (chunk <= hi)])
    candidates = np.concatenate(inside)
    rank = k - below
    if 0 <= rank < candidates.size:
        return float(np.partition(candidates, rank)[rank])
    return float(np.partition(x, k)[k])  # the bracket missed (rare): select over everything


def exact_magnitude_masks(weights: dict[str, torch.Tensor], rate: float) -> Masks:
    """Keep-masks that prune exactly round(rate*n) of the smallest |w| over all ``weights`` together.

    The threshold is the k-th smallest magnitude found with numpy's introselect (a partition,
    not a sort). Weights equal to the threshold are pruned in parameter order, then in
    flat index order, so ties are broken deterministically.
    """
    rate = check_rate(rate)
    names = list(weights)
    sizes = [weights[name].numel() for name in names]
    k = prune_count(rate, sum(sizes))
    if k == 0:
        return {name: torch.ones_like(weights[name], dtype=torch.bool) for name in names}
    flat = _flat_magnitudes(weights, names)
    threshold = kth_smallest(flat, k - 1)
    keep = flat > threshold  # prunes every weight <= threshold: k of them, or more when ties straddle it
    extra = keep.numel() - int(np.count_nonzero(keep.numpy())) - k
    if extra > 0:
        # Ties at the threshold: prune the earliest ones in (parameter order, flat index) order.
        tie_idx = (flat == threshold).nonzero().squeeze(1)
        keep[tie_idx[tie_idx.numel() - extra:]] = True
    parts = torch.split(keep, sizes)
    return {name: part.view(weights[name].shape).to(weights[name].device) for name, part in zip(names, parts)}


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
