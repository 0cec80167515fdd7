"""Torch's intra-op thread count for a block of work, put back afterwards (bertcorr, the MNIST trainer)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run torch CPU ops with ``n`` intra-op threads inside the block (0 leaves the setting as is), then restore it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
