"""Suite kinds: each expands a suite into cells and runs one cell.

``prune-finetune`` is the paper's BERT grid (Figs 6 and 7). Other kinds (MNIST correlations,
BERT weight correlations) register here too, so `run`, the store and `report` serve them all.
Importing this package registers the built-in kinds (``benchmarks.registry.KINDS`` imports it
on its first lookup); ``benchmarks.kinds.base`` defines what a kind is.
"""

from __future__ import annotations

from benchmarks.kinds import bert_correlations, mnist, prune_finetune  # noqa: F401 - they register themselves
from benchmarks.kinds.base import CellOutcome, RunContext, SuiteKind

__all__ = ["SuiteKind", "CellOutcome", "RunContext"]
