"""What a suite kind is (``SuiteKind``) and what running a cell gives back (``CellOutcome``).

Kept apart from ``benchmarks/kinds/__init__.py``, which imports the built-in kinds: the kinds
import this module, so the package's ``__init__`` and the kinds never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from benchmarks.config import Cell, Suite
from benchmarks.context import RunContext

__all__ = ["SuiteKind", "CellOutcome", "RunContext"]


@dataclass
class CellOutcome:
    """What running a cell produced; the runner adds key, status, timings and provenance."""

    metrics: dict
    sparsity: dict = field(default_factory=dict)  # global_before/after, per_layer_before/after
    data: dict = field(default_factory=dict)  # data file -> sha256
    notes: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)  # larger per-cell results (tables, per-layer lists)
    arrays: dict = field(default_factory=dict)  # per-example arrays, saved as records/<key>.npz (predictions.py)


class SuiteKind(Protocol):
    """A suite kind. An optional class attribute ``loads_pretrained = True`` says its cells load the suite's
    model with from_pretrained: `run` then checks a hub model is cached or reachable before the first cell."""

    def validate(self, suite: Suite) -> None:
        """Raise UserError on a field this kind cannot use."""

    def cells(self, suite: Suite) -> list[Cell]:
        """The suite's grid, in a deterministic order."""

    def run(self, cell: Cell, ctx: RunContext) -> CellOutcome:
        """Run one cell; raise DataMissing to record it as skipped."""
