"""Our GLUE metrics against Hugging Face evaluate's (runs where the hub or a local copy of the metric is reachable)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.tasks import hub_metrics
from benchmarks.tasks.glue import classification_metrics, regression_metrics


def _load_or_skip(task: str, preds: np.ndarray, labels: np.ndarray) -> dict:
    pytest.importorskip("evaluate", reason="evaluate is the optional 'hub' extra")
    try:
        return hub_metrics.evaluate_glue(task, preds, labels)
    except Exception as exc:  # offline: evaluate cannot fetch evaluate-metric/glue (error types vary by version)
        pytest.skip(f"evaluate-metric/glue is not reachable here ({type(exc).__name__}); runs where the hub is")


@pytest.mark.parametrize("task", ["mrpc", "sst2", "qnli"])
def test_classification_matches_evaluate(task: str) -> None:
    rng = np.random.default_rng(0)
    preds, labels = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    _load_or_skip(task, preds, labels)
    local = classification_metrics(preds, labels, f1=task == "mrpc")
    assert hub_metrics.crosscheck(task, local, preds, labels) < 1e-12


def test_regression_matches_evaluate() -> None:
    rng = np.random.default_rng(1)
    labels = rng.uniform(0, 5, 300)
    preds = labels + rng.normal(0, 1, 300)
    _load_or_skip("stsb", preds, labels)
    assert hub_metrics.crosscheck("stsb", regression_metrics(preds, labels), preds, labels) < 1e-12


def test_crosscheck_names_map_onto_ours() -> None:
    """Every evaluate GLUE metric name maps to one our metric functions return (checked without the hub)."""
    rng = np.random.default_rng(2)
    preds, labels = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    ours = set(classification_metrics(preds, labels, f1=True)) | set(regression_metrics(preds * 1.0, labels * 1.0))
    assert set(hub_metrics._NAMES.values()) <= ours
