"""CI regression on the MNIST correlation values: the mnist-ci suite must reproduce tests/reference/mnist_ci.json."""

from __future__ import annotations

import copy
import json

import pytest

from benchmarks import store
from benchmarks.config import load_suite
from benchmarks.mnist import regen
from benchmarks.paths import default_data_dir


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    """Run the mnist-ci suite once through the runner into a temporary results folder."""
    from benchmarks.runner import run_suite

    data_dir = default_data_dir()
    if data_dir is None or not (data_dir / "mnist").is_dir():
        pytest.skip("MNIST mirror not found (set PRUNEBENCH_DATA_DIR)")
    results = tmp_path_factory.mktemp("mnist-ci")
    summary = run_suite(load_suite("mnist-ci"), results, data_dir, progress=False, accelerator=regen._NoAccelerator())
    assert summary.ok == summary.total == 1, summary
    (record,) = store.load_records(results).records.values()
    return results, record


@pytest.fixture(scope="module")
def reference():
    return json.loads(regen.REFERENCE.read_text())


def test_reference_documents_its_regeneration(reference):
    assert reference["regenerate_with"] == regen.COMMAND
    assert reference["suite"] == "mnist-ci" and len(reference["values"]) >= 16


def test_ci_values_match_reference(ci_run, reference):
    _, record = ci_run
    problems = regen.compare(regen.values_from_metrics(record["metrics"]), reference)
    assert not problems, "MNIST CI values drifted (regenerate with `python -m benchmarks.mnist.regen` only " \
                         "after a deliberate change):\n" + "\n".join(problems)


@pytest.mark.parametrize("key", ["t1.hidden1_node_io", "t2.hidden2.abs_mean", "t2.hidden1.dead_nodes"])
def test_perturbed_reference_fails(ci_run, reference, key):
    _, record = ci_run
    bad = copy.deepcopy(reference)
    value = bad["values"][key]
    bad["values"][key] = value + 1 if isinstance(value, int) else value + 5 * regen.TOLERANCES["t1"]
    problems = regen.compare(regen.values_from_metrics(record["metrics"]), bad)
    assert len(problems) == 1 and problems[0].startswith(key)
    within = copy.deepcopy(reference)
    if not isinstance(value, int):
        within["values"][key] = value + 0.5 * regen.TOLERANCES["t1"]
        assert not regen.compare(regen.values_from_metrics(record["metrics"]), within)


def test_report_renders_tables_and_fig2(ci_run, tmp_path):
    from reports import render_suite

    results, _ = ci_run
    suite = load_suite("mnist-ci")
    md = render_suite(suite, results, "md", out=tmp_path / "ci.md")
    assert "Table 1. MNIST pairwise correlations" in md and "| Node input/output" in md
    assert "0.930" in md and "113 of 300" in md  # the paper's values beside ours
    assert (tmp_path / "ci_plots" / "fig2_default.png").stat().st_size > 1000
    assert (tmp_path / "ci_plots" / "fig2_default.svg").is_file()
    page = render_suite(suite, results, "html", out=tmp_path / "ci.html")
    assert page.startswith("<!DOCTYPE html>") and "<table" in page and "fig2_default.png" in page
