"""What a task is: something that takes a pruned pre-trained model and returns metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from benchmarks.context import RunContext
from benchmarks.models import ModelRef

# Applies the cell's pruning method to a freshly loaded model (in place) and returns its keep-masks,
# or None for the dense row. Tasks call it on whatever head model they load.
Pruner = Callable[[nn.Module], "dict[str, torch.Tensor] | None"]


@dataclass
class TaskResult:
    """Metrics of one cell plus the facts the record must carry."""

    metrics: dict
    sparsity_before: dict
    sparsity_after: dict  # measured again after fine-tuning (equal to before when nothing trains)
    data: dict = field(default_factory=dict)  # data file -> sha256 (or hub id -> revision)
    notes: dict = field(default_factory=dict)  # e.g. {"mlm_head": "fitted"}, {"data_split": "..."}
    arrays: dict = field(default_factory=dict)  # per-example arrays (benchmarks/predictions.py names)


class Task(Protocol):
    """A registered task. ``version`` goes into every cell key, so bump it when numbers would change."""

    name: str
    version: str
    headline: str  # the metric that fills the leaderboard column
    higher_is_better: bool

    def run(self, model_ref: ModelRef, pruner: Pruner, recipe: dict, seed: int, ctx: RunContext) -> TaskResult:
        """Prune a fresh model with ``pruner``, train if the task trains, evaluate; return metrics."""
        ...
