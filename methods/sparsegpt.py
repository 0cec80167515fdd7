"""The SparseGPT solve for one matrix (Frantar and Alistarh 2023, Algorithm 1), written from the paper.

Given a weight W (rows x inputs) and the Hessian H = 2 X X^T of the layer-wise reconstruction error
||W X - W' X||^2, columns are pruned left to right; pruning column i compensates with the columns to its
right through row i of the upper Cholesky factor of H^-1 (the OBS update restricted to the columns not
yet processed). Updates to later blocks are applied lazily once per block of ``blocksize`` columns. The
mask is chosen adaptively: per block for unstructured sparsity (lowest w^2 / [U]_ii^2 over the block),
per group of M columns for N:M. Arithmetic is float64 (cheap next to the forward passes).
"""

from __future__ import annotations

import torch
from scipy.linalg import lapack

from methods.select import prune_count

BLOCKSIZE = 128
PERCDAMP = 0.01


def inverse_hessian_factor(hessian: torch.Tensor, percdamp: float = PERCDAMP) -> torch.Tensor:
    """Upper Cholesky factor U of (H + damp*I)^-1 (U^T U = H^-1), damp = ``percdamp`` x mean diag(H).

    Computed as U = J L^-1 J with J the order reversal and L L^T = J H J: one Cholesky and one
    triangular inverse (LAPACK trtri through scipy; 2/3 d^3 flops) instead of factor, invert, factor
    again (4/3 d^3); the same U, since the Cholesky factor is unique. Inputs that never fire (zero
    diagonal) get a unit diagonal.
    """
    h = hessian.to(torch.float64).clone()
    diag = torch.diagonal(h)
    diag[diag == 0] = 1.0
    diag += percdamp * float(diag.mean())
    lower, info = torch.linalg.cholesky_ex(h.flip(0, 1))
    if int(info):
        raise ValueError("the calibration Hessian is not positive definite; raise the dampening or use more "
                         "calibration sequences")
    inverse, info = lapack.dtrtri(lower.numpy(), lower=1)
    if info:
        raise ValueError(f"the Cholesky factor of the calibration Hessian is singular (LAPACK info {info})")
    # trtri leaves the strictly upper triangle as it was: zeros, as torch's Cholesky factor has there
    return torch.from_numpy(inverse).flip(0, 1).contiguous()


def _block_prune_counts(k_total: int, cols: int, starts: list[int]) -> list[int]:
    """Pruned weights per column block so the matrix total is exactly ``k_total`` (proportional to width)."""
    edges = [k_total * c // cols for c in (*starts, cols)]
    return [b - a for a, b in zip(edges[:-1], edges[1:])]


def _block_mask(w1: torch.Tensor, d: torch.Tensor, k: int) -> torch.Tensor:
    """Prune-mask of the ``k`` lowest OBS scores w^2 / d^2 over the whole block (ties: lower flat index)."""
    scores = (w1 ** 2 / d.unsqueeze(0) ** 2).reshape(-1)
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[torch.argsort(scores, stable=True)[:k]] = True
    return mask.reshape(w1.shape)


def _group_mask(w: torch.Tensor, d: torch.Tensor, n: int) -> torch.Tensor:
    """Prune-mask of the ``n`` lowest OBS scores in each row of a group of M columns."""
    scores = w ** 2 / d.unsqueeze(0) ** 2
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(1, torch.argsort(scores, dim=1, stable=True)[:, :n], True)
    return mask


def sparsegpt_matrix(weight: torch.Tensor, hessian: torch.Tensor, rate: float, nm: tuple[int, int] | None = None,
                     blocksize: int = BLOCKSIZE, percdamp: float = PERCDAMP) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep-mask, new weight) pruning exactly round(rate x size) weights (or N of every M) with OBS updates."""
    rows, cols = weight.shape
    if nm is not None:
        blocksize = max(nm[1], blocksize - blocksize % nm[1])  # groups of M never straddle two blocks
    u = inverse_hessian_factor(hessian, percdamp)
    w = weight.detach().to(torch.float64).clone()
    prune = torch.zeros(rows, cols, dtype=torch.bool)
    starts = list(range(0, cols, blocksize))
    counts = _block_prune_counts(prune_count(rate, rows * cols), cols, starts) if nm is None else None
    for b, i1 in enumerate(starts):
        i2 = min(i1 + blocksize, cols)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]
        d = torch.diagonal(u1)
        mask1 = _block_mask(w1, d, counts[b]) if nm is None else torch.zeros_like(w1, dtype=torch.bool)
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                mask1[:, i:i + nm[1]] = _group_mask(w1[:, i:i + nm[1]], d[i:i + nm[1]], nm[0])
            col = w1[:, i]
            err = torch.where(mask1[:, i], col, torch.zeros_like(col)) / d[i]
            w1[:, i:] -= err.unsqueeze(1) * u1[i, i:].unsqueeze(0)  # column i becomes 0 where pruned
            err1[:, i] = err
        w1[mask1] = 0.0  # exact zeros (the update leaves rounding-level residue)
        w[:, i1:i2] = w1
        prune[:, i1:i2] = mask1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return ~prune, w.to(weight.dtype)
