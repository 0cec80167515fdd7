"""Sparsity patterns: unstructured, or N:M (exactly N zeros in every M consecutive weights of a row).

N:M groups run along the input dimension (the columns of a torch ``Linear`` weight), as sparse tensor
cores need them (Mishra et al. 2021). This project's N:M counts zeros: 2:4 and 4:8 both prune half.
"""

from __future__ import annotations

import re

import torch

UNSTRUCTURED = "unstructured"
_NM_RE = re.compile(r"([0-9]+):([0-9]+)")  # ASCII digits only, the whole string (fullmatch)


def parse_pattern(pattern: str | None) -> tuple[int, int] | None:
    """None for unstructured, else (N, M) with 0 < N < M; a one-line ValueError naming the fix otherwise."""
    if pattern is None or pattern == UNSTRUCTURED:
        return None
    if isinstance(pattern, int) and not isinstance(pattern, bool) and getattr(pattern, "yaml_text", None):
        raise ValueError(f"pattern {pattern.yaml_text} was read as the number {int(pattern)} (YAML 1.1 reads an "
                         f"unquoted N:M as a base-60 number); quote it: pattern: \"{pattern.yaml_text}\"")
    match = _NM_RE.fullmatch(pattern) if isinstance(pattern, str) else None
    if match is None:
        raise ValueError(f"pattern {pattern!r} is not 'unstructured' or 'N:M' (two whole numbers, no spaces); "
                         f"write e.g. pattern: \"2:4\"")
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n < m:
        raise ValueError(f"pattern {pattern!r} prunes N={n} of every M={m} weights; N:M needs 0 < N < M, "
                         f"e.g. pattern: \"2:4\"")
    return n, m


def canonical_pattern(pattern):
    """The one spelling of a pattern in cell keys and labels: '02:04' -> '2:4' ('unstructured' and None kept)."""
    nm = parse_pattern(pattern)
    return pattern if nm is None else f"{nm[0]}:{nm[1]}"


def pattern_rate(sparsity: float | None, pattern: str | None) -> float | None:
    """The rate a (sparsity, pattern) pair prunes: ``sparsity``, or N/M, which ``sparsity`` must then equal."""
    nm = parse_pattern(pattern)
    if nm is None:
        return sparsity
    rate = nm[0] / nm[1]
    if sparsity is not None and abs(float(sparsity) - rate) > 1e-9:
        raise ValueError(f"sparsity {sparsity} conflicts with pattern {pattern} (which prunes {rate:g}); "
                         f"use sparsity {rate:g} or drop the pattern")
    return rate


def check_nm_width(name: str, columns: int, m: int) -> None:
    """N:M needs whole groups: the input dimension must be a multiple of M."""
    if columns % m:
        raise ValueError(f"{name} has {columns} inputs, not a multiple of M={m}; choose an M that divides it")


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask pruning the N lowest scores in every M consecutive columns of each row (ties: lower column)."""
    rows, cols = scores.shape
    groups = scores.reshape(rows, cols // m, m)
    order = torch.argsort(groups, dim=-1, stable=True)
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(-1, order[..., :n], False)
    return keep.reshape(rows, cols)


def pattern_label(name: str, sparsity: float | None, options: dict) -> str:
    """Row label: ``name-0.5``, or ``name-2:4`` for an N:M pattern."""
    pattern = options.get("pattern")
    if parse_pattern(pattern) is not None:
        return f"{name}-{pattern}"
    return f"{name}-{sparsity:g}"


def no_pattern(method: str, options: dict) -> None:
    """Methods that cannot honour a pattern refuse one (instead of silently pruning unstructured)."""
    if parse_pattern(options.get("pattern")) is not None:
        raise ValueError(f"method {method!r} does not take an N:M pattern; use layerwise, global, upper, lower, "
                         f"wanda or sparsegpt for N:M")
