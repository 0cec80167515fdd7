"""Exact mask selection shared by the methods: a partition for the threshold, deterministic ties."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


# Below this many values a plain partition is fast enough; above it the sampled bracket pays off.
_BRACKET_MIN = 1 << 20
_SAMPLE = 1 << 16
_CHUNK = 1 << 16  # values per pass step: keeps the temporaries in cache


def _chunks(arrays: list[np.ndarray]):
    """(array index, start, chunk) over all arrays in order, ``_CHUNK`` values at a time."""
    for i, arr in enumerate(arrays):
        for start in range(0, arr.size, _CHUNK):
            yield i, start, arr[start:start + _CHUNK]


def _kth_abs(arrays: list[np.ndarray], k: int) -> float:
    """The k-th smallest (0-based) |value| over 1-D float32 ``arrays`` taken as one, exactly, by selection.

    A fixed-seed sample brackets the answer; one cache-friendly chunked pass counts the values below
    the bracket and gathers those inside it; numpy's introselect partitions only those. The sample
    affects speed only: the result is always the exact k-th value.
    """
    sizes = np.array([a.size for a in arrays])
    n = int(sizes.sum())
    if n <= _BRACKET_MIN:
        return float(np.partition(np.abs(np.concatenate(arrays)), k)[k])
    picks = np.sort(np.random.default_rng(0).integers(0, n, _SAMPLE))
    owner = np.searchsorted(np.cumsum(sizes), picks, side="right")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sample = np.abs(np.concatenate([arrays[i][picks[owner == i] - starts[i]] for i in range(len(arrays))]))
    q = (k + 0.5) / n
    margin = 5.0 * math.sqrt(q * (1 - q) / _SAMPLE) + 2.0 / _SAMPLE  # ~5 sigma of the sample quantile
    lo, hi = np.quantile(sample, [max(0.0, q - margin), min(1.0, q + margin)]).astype(np.float32)
    buf = np.empty(_CHUNK, dtype=np.float32)
    below, inside = 0, []
    for _, _, chunk in _chunks(arrays):
        mag = np.abs(chunk, out=buf[:chunk.size])
        is_below = mag < lo
        below += int(np.count_nonzero(is_below))
        inside.append(mag[~is_below & (mag <= hi)])
    candidates = np.concatenate(inside)
    rank = k - below
    if 0 <= rank < candidates.size:
        return float(np.partition(candidates, rank)[rank])
    return float(np.partition(np.abs(np.concatenate(arrays)), k)[k])  # the bracket missed (rare)


def kth_smallest(values: torch.Tensor, k: int) -> float:
    """The k-th smallest (0-based) of a 1-D tensor of non-negative floats, exactly, by selection (no sort)."""
    return _kth_abs([values.detach().float().cpu().numpy().reshape(-1)], k)


def _as_flat_numpy(weight: torch.Tensor) -> np.ndarray:
    """The weight as a 1-D float32 CPU numpy array (a view when it already is one)."""
    w = weight.detach()
    if w.dtype != torch.float32 or w.device.type != "cpu":
        w = w.float().cpu()
    return w.reshape(-1).numpy()


def exact_magnitude_masks(weights: dict[str, torch.Tensor], rate: float) -> Masks:
    """Keep-masks that prune exactly round(rate*n) of the smallest |w| over all ``weights`` together.

    The threshold is the k-th smallest magnitude found by selection (``_kth_abs``: a sampled
    bracket and numpy's introselect, never a sort). Weights equal to the threshold are pruned
    in parameter order, then in flat index order, so ties are broken deterministically.
    Works chunk by chunk on the weights themselves: no copy of all magnitudes is ever built.
    """
    rate = check_rate(rate)
    names = list(weights)
    arrays = [_as_flat_numpy(weights[name]) for name in names]
    k = prune_count(rate, sum(a.size for a in arrays))
    if k == 0:
        return {name: torch.ones_like(weights[name], dtype=torch.bool) for name in names}
    threshold = np.float32(_kth_abs(arrays, k - 1))
    keeps = [np.empty(a.size, dtype=bool) for a in arrays]
    buf = np.empty(_CHUNK, dtype=np.float32)
    kept = 0
    for i, start, chunk in _chunks(arrays):
        out = keeps[i][start:start + chunk.size]
        np.greater(np.abs(chunk, out=buf[:chunk.size]), threshold, out=out)
        kept += int(np.count_nonzero(out))
    extra = sum(a.size for a in arrays) - kept - k  # ties at the threshold pruned beyond k
    if extra > 0:
        _restore_last_ties(arrays, keeps, threshold, extra)
    return {name: torch.from_numpy(keep).view(weights[name].shape).to(weights[name].device)
            for name, keep in zip(names, keeps)}


def _restore_last_ties(arrays: list[np.ndarray], keeps: list[np.ndarray], threshold, extra: int) -> None:
    """Keep the last ``extra`` weights equal to the threshold, so the earliest ties are the ones pruned."""
    for arr, keep in zip(reversed(arrays), reversed(keeps)):
        ties = np.flatnonzero(np.abs(arr) == threshold)
        take = ties[max(0, ties.size - extra):]
        keep[take] = True
        extra -= take.size
        if extra == 0:
            return


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


@dataclass(frozen=True)
class PruneResult:
    """What a method that also updates kept weights returns: keep-masks and the new weight values.

    ``weights[name]`` replaces the whole matrix ``name``; the runner then applies ``masks`` on top,
    so pruned entries are exactly zero whatever ``weights`` holds there.
    """

    masks: Masks
    weights: dict[str, torch.Tensor] = field(default_factory=dict)


def split_result(result: "Masks | PruneResult") -> tuple[Masks, dict[str, torch.Tensor]]:
    """(masks, replacement weights) from a method's return value; no replacements for plain masks."""
    if isinstance(result, PruneResult):
        return result.masks, dict(result.weights)
    return result, {}


def row_counts(k: int, rows: int) -> torch.Tensor:
    """Split ``k`` pruned weights over ``rows`` rows as evenly as possible (counts differ by at most one)."""
    edges = torch.div(torch.arange(rows + 1, dtype=torch.int64) * k, rows, rounding_mode="floor")
    return edges[1:] - edges[:-1]


def per_row_keep(scores: torch.Tensor, rate: float) -> torch.Tensor:
    """Keep-mask pruning the lowest scores within each row; exactly round(rate*n) over the matrix.

    Every row prunes the same count when rate*columns is whole (0.5 of an even width), otherwise
    counts differ by one between rows so the matrix total stays exact. Ties: lower column first.
    """
    rows, cols = scores.shape
    counts = row_counts(prune_count(check_rate(rate), rows * cols), rows)
    order = torch.argsort(scores, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(cols).expand(rows, cols).contiguous())
    return rank >= counts.unsqueeze(1)
