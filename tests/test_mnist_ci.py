"""The MNIST CI regression in two parts (docs/reproducibility.md):

- analysis, exactly: Tables 1-2, Fig 2 and dead-node values of committed pruned weights at 1e-9
  (tests/reference/mnist_analysis.json; no training, so no CPU dependence);
- training, statistically: the mnist-ci suite's means over 24 models within tolerances measured under
  perturbed numerics (tests/reference/mnist_ci.json records how).

Each part has a perturbation test built on what this machine computes, so it does not depend on the
unperturbed values passing here.
"""

from __future__ import annotations

import copy
import json

import pytest

from benchmarks import store
from benchmarks.config import load_suite
from benchmarks.mnist import regen
from benchmarks.paths import default_data_dir

# ---- analysis on committed weights, exactly -----------------------------------------------------------


@pytest.fixture(scope="module")
def analysis_reference():
    return json.loads(regen.ANALYSIS_REFERENCE.read_text())


@pytest.fixture(scope="module")
def analysis_values():
    return regen.compute_analysis()


def test_committed_weights_are_small_float32_and_pruned(analysis_reference):
    import numpy as np

    assert regen.WEIGHTS.stat().st_size < 1.5e6
    assert regen.file_sha256(regen.WEIGHTS) == analysis_reference["weights_sha256"], \
        f"weights changed; regenerate: {analysis_reference['regenerate_with']}"
    with np.load(regen.WEIGHTS) as data:
        assert len(data.files) == 3 * len(regen.WEIGHT_MODELS)
        for name in data.files:
            w = data[name]
            rate = analysis_reference["weights_provenance"]["prune"][name.split(".")[1]]
            assert w.dtype == np.float32 and int((w == 0).sum()) == round(rate * w.size), name


def test_analysis_values_match_reference_exactly(analysis_values, analysis_reference):
    assert analysis_reference["atol"] == 1e-9 and len(analysis_reference["values"]) > 100
    problems = regen.compare_analysis(analysis_values, analysis_reference)
    assert not problems, "the analysis of the committed weights changed (regenerate with " \
                         f"`{analysis_reference['regenerate_with']}` only after a deliberate change):\n" + \
                         "\n".join(problems[:20])


def test_committed_weights_exercise_dead_nodes(analysis_values):
    dead = [analysis_values[f"dead_nodes.hidden1.model{m}"] for m in range(len(regen.WEIGHT_MODELS))]
    assert dead[:2] == [0, 0] and dead[2] > 20  # the Adam 1e-2 model has dozens of fully pruned hidden-1 nodes


@pytest.mark.parametrize("key,delta", [("t1.hidden1_node_io", 1e-6), ("t2.hidden2.abs_mean", 1e-6),
                                       ("fig2.hidden1.in_abs_mean.sum", 1e-6), ("dead_nodes.hidden1.model2", 1)])
def test_perturbed_analysis_value_fails(analysis_values, key, delta):
    """A reference equal to this machine's values, one moved by ``delta``: exactly that key fails."""
    reference = {"atol": regen.ANALYSIS_ATOL, "values": dict(analysis_values)}
    assert not regen.compare_analysis(analysis_values, reference)
    bad = copy.deepcopy(reference)
    bad["values"][key] += delta
    problems = regen.compare_analysis(analysis_values, bad)
    assert len(problems) == 1 and problems[0].startswith(key)
    if isinstance(delta, float):
        close = copy.deepcopy(reference)
        close["values"][key] += 1e-11
        assert not regen.compare_analysis(analysis_values, close)


# ---- training, statistically --------------------------------------------------------------------------


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


def test_training_reference_documents_its_tolerances(reference):
    derivation = reference["tolerance_derivation"]
    assert reference["regenerate_with"] == derivation["command"] == f"{regen.COMMAND} training"
    assert reference["suite"] == "mnist-ci" and len(reference["values"]) >= 16
    assert set(reference["tolerances"]) == set(reference["values"]) == set(derivation["max_deviation"])
    assert len(derivation["perturbations"]) >= 8 and derivation["safety_factor"] >= 2
    for key, tol in reference["tolerances"].items():  # the rule the reference states, re-applied
        assert tol == max(derivation["safety_factor"] * derivation["max_deviation"][key],
                          regen._floor(key, derivation["models"])), key
    assert all(not k.startswith("t2.") for k in reference["values"])  # no single-model values here


def test_ci_means_match_reference(ci_run, reference):
    _, record = ci_run
    problems = regen.compare(regen.values_from_record(record), reference)
    assert not problems, "MNIST CI means drifted beyond the measured spread (regenerate with " \
                         f"`{reference['regenerate_with']}` only after a deliberate change):\n" + "\n".join(problems)


@pytest.mark.parametrize("key", ["t1.hidden1_node_io", "t2mean.hidden2.abs_mean", "t2mean.hidden1.count",
                                 "t2mean.hidden1.dead_nodes", "accuracy_pruned"])
def test_perturbed_training_value_fails(ci_run, reference, key):
    """A reference equal to this machine's means with the committed tolerances: moving one value by twice
    its tolerance fails that key alone; by half, nothing fails."""
    _, record = ci_run
    values = regen.values_from_record(record)
    mine = {"tolerances": reference["tolerances"], "values": dict(values)}
    tol = reference["tolerances"][key]
    assert tol > 0
    bad = copy.deepcopy(mine)
    bad["values"][key] += 2 * tol
    problems = regen.compare(values, bad)
    assert len(problems) == 1 and problems[0].startswith(key)
    within = copy.deepcopy(mine)
    within["values"][key] += 0.5 * tol
    assert not regen.compare(values, within)


def test_tolerances_still_catch_a_real_change(reference):
    """A different pair convention or pruning rule moves Table 1 / Table 2 by >1e-2: each tolerance is below."""
    for key, tol in reference["tolerances"].items():
        if key.startswith(("t1.", "t2mean.")) and "dead_nodes" not in key and not key.endswith(".nodes"):
            assert tol < 1e-2, (key, tol)


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
