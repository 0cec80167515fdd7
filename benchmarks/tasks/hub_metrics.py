"""GLUE metrics through Hugging Face ``evaluate``: the hub's reference implementation of our local metrics.

The local metrics (``benchmarks.tasks.glue``) are what every record holds, because ``evaluate`` fetches its GLUE
metric script from the hub at run time and the offline default has no hub. Where the hub is reachable (or a copy of
``evaluate-metric/glue`` sits under ``$PRUNEBENCH_HUB_DIR``), ``crosscheck`` compares the two on the same
predictions; ``tests/test_hub_metrics.py`` runs it whenever the metric can be loaded.
"""

from __future__ import annotations

import numpy as np

from benchmarks import paths

# evaluate's GLUE metric names -> ours (the same quantities; evaluate says "spearmanr").
_NAMES = {"accuracy": "accuracy", "f1": "f1", "pearson": "pearson", "spearmanr": "spearman"}


def evaluate_glue(task: str, preds: np.ndarray, labels: np.ndarray) -> dict:
    """GLUE metrics of ``task`` computed by ``evaluate.load("glue", task)``, renamed to our metric names."""
    import evaluate  # optional (extra "hub"): only this cross-check needs it

    metric = evaluate.load(paths.hub_location("evaluate-metric/glue"), task)
    values = metric.compute(predictions=preds.tolist(), references=labels.tolist())
    return {_NAMES[name]: float(value) for name, value in values.items()}


def crosscheck(task: str, local: dict, preds: np.ndarray, labels: np.ndarray) -> float:
    """Largest absolute difference between ``local`` metrics and evaluate's on the metrics both report."""
    reference = evaluate_glue(task, preds, labels)
    shared = set(reference) & set(local)
    if not shared:
        raise ValueError(f"no metric in common for {task}: ours {sorted(local)}, evaluate's {sorted(reference)}")
    return max(abs(reference[name] - local[name]) for name in shared)
