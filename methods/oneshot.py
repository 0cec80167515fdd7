"""One-shot methods beside the paper's: `layerwise` magnitude, `wanda` and `sparsegpt`.

Each prunes every encoder matrix at the same rate (or the same N:M pattern, option ``pattern``).
- `layerwise`: the smallest magnitudes of each matrix (the baseline both papers compare against).
- `wanda` (Sun et al. 2023): score |W_ij| * ||X_j||_2, X the calibration inputs of that matrix,
  compared within each output row.
- `sparsegpt` (Frantar and Alistarh 2023): per-matrix OBS pruning with weight updates from the
  calibration Hessian H = 2 X X^T (see ``methods.sparsegpt``).
Wanda and SparseGPT prune encoder layer by encoder layer on the activations of the pruned-so-far model
(``methods.calibrated``); both need calibration data.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.registry import register_method
from methods.calibrated import LayerSolution, prune_sequentially
from methods.magnitude import check_pattern_rate, magnitude_masks
from methods.patterns import check_nm_width, nm_keep, parse_pattern
from methods.prunable import PrunableWeight, prunable_weights
from methods.select import Masks, PruneResult, per_row_keep
from methods.sparsegpt import sparsegpt_matrix


def per_matrix_groups(weights: list[PrunableWeight], sparsity: float, options: dict) -> dict:
    """``groups`` metadata: every matrix on its own, at the method's rate (N/M for an N:M pattern)."""
    rate = check_pattern_rate(sparsity, options)
    return {w.name: ([w.name], rate) for w in weights}


def _checked(model: nn.Module, sparsity: float, pattern: str | None) -> tuple[float, tuple[int, int] | None]:
    """(rate, N:M or None) after checking the arguments and, for N:M, every matrix's width."""
    rate = check_pattern_rate(sparsity, {"pattern": pattern})
    nm = parse_pattern(pattern)
    if nm is not None:
        for w in prunable_weights(model):
            check_nm_width(w.name, w.weight.shape[1], nm[1])
    return rate, nm


@register_method("layerwise", groups=per_matrix_groups, validate=check_pattern_rate, patterns=True, options={})
def layerwise_magnitude(model: nn.Module, sparsity: float, generator: torch.Generator | None = None,
                        pattern: str | None = None, **options) -> Masks:
    """Magnitude-prune each encoder matrix separately at the same rate (or N:M)."""
    rate, _ = _checked(model, sparsity, pattern)
    masks: Masks = {}
    for w in prunable_weights(model):
        masks.update(magnitude_masks([w], rate, pattern))
    return masks


def _sum_of_squares(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64).pow(2).sum(0)


def wanda_keep(weight: torch.Tensor, input_sq_norms: torch.Tensor, rate: float,
               nm: tuple[int, int] | None = None) -> torch.Tensor:
    """Wanda keep-mask: prune the lowest |W_ij| * ||X_j||_2 within each row (or N of every M in a row)."""
    scores = weight.detach().abs().to(torch.float64) * input_sq_norms.to(torch.float64).sqrt().unsqueeze(0)
    return per_row_keep(scores, rate) if nm is None else nm_keep(scores, *nm)


@register_method("wanda", groups=per_matrix_groups, validate=check_pattern_rate, patterns=True, calibration=True,
                 options={})
def wanda(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, pattern: str | None = None,
          calibration=None, **options) -> Masks:
    """Wanda: |weight| x input-activation norm, compared within each output row (Sun et al. 2023)."""
    rate, nm = _checked(model, sparsity, pattern)

    def solve(w: PrunableWeight, sq_norms: torch.Tensor, tokens: int) -> LayerSolution:
        return LayerSolution(wanda_keep(w.weight, sq_norms, rate, nm))

    masks, _ = prune_sequentially(model, calibration, _sum_of_squares, solve)
    return masks


def _gram(x: torch.Tensor) -> torch.Tensor:
    return (x.T @ x).to(torch.float64)  # float32 product per batch, float64 sum across batches


@register_method("sparsegpt", groups=per_matrix_groups, validate=check_pattern_rate, patterns=True, calibration=True,
                 options={"blocksize": (int,), "percdamp": (int, float)})
def sparsegpt(model: nn.Module, sparsity: float, generator: torch.Generator | None = None, pattern: str | None = None,
              calibration=None, blocksize: int = 128, percdamp: float = 0.01, **options) -> PruneResult:
    """SparseGPT: OBS pruning with weight updates from the calibration Hessian (Frantar and Alistarh 2023)."""
    rate, nm = _checked(model, sparsity, pattern)

    def solve(w: PrunableWeight, gram: torch.Tensor, tokens: int) -> LayerSolution:
        keep, new = sparsegpt_matrix(w.weight, 2.0 * gram / max(tokens, 1), rate, nm, blocksize, percdamp)
        return LayerSolution(keep, new)

    masks, weights = prune_sequentially(model, calibration, _gram, solve)
    return PruneResult(masks, weights)
