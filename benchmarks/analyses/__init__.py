"""Suite kinds ("analyses"): each expands a suite into cells and runs one cell.

``prune-finetune`` is the paper's BERT grid (Figs 6 and 7). Other kinds (MNIST correlations,
BERT weight correlations) register here too, so `run`, the store and `report` serve them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from benchmarks.config import Cell, Suite
from benchmarks.context import RunContext

__all__ = ["Analysis", "CellOutcome", "RunContext"]

@dataclass
class CellOutcome:
    """What running a cell produced; the runner adds key, status, timings and provenance."""

    metrics: dict
    sparsity: dict = field(default_factory=dict)  # global_before/after, per_layer_before/after
    data: dict = field(default_factory=dict)  # data file -> sha256
    notes: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)  # larger per-cell results (tables, per-layer lists)
    arrays: dict = field(default_factory=dict)  # per-example arrays, saved as records/<key>.npz (predictions.py)


class Analysis(Protocol):
    """A suite kind."""

    def validate(self, suite: Suite) -> None:
        """Raise UserError on a field this kind cannot use."""

    def cells(self, suite: Suite) -> list[Cell]:
        """The suite's grid, in a deterministic order."""

    def run(self, cell: Cell, ctx: RunContext) -> CellOutcome:
        """Run one cell; raise DataMissing to record it as skipped."""


# Import the built-in kinds so they register themselves.
from benchmarks.analyses import prune_finetune  # noqa: E402,F401
from benchmarks.analyses import bert_correlations  # noqa: E402,F401
from benchmarks.analyses import mnist  # noqa: E402,F401
