"""The per-run context handed to every cell and task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunContext:
    """Where data lives, the accelerator, the suite's resolved model and a per-run cache."""

    data_dir: Path | None
    results_dir: Path
    accelerator: Any = None  # accelerate.Accelerator, created once per run
    model_ref: Any = None  # benchmarks.models.ModelRef of the suite's model
    cache: dict = field(default_factory=dict)  # tokenized data, fitted heads, ... keyed by the user
    stack: Any = None  # benchmarks.stacking.StackSession under ``run --stack K`` (K > 1), else None
