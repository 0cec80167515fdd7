"""A protocol added by a real third-party distribution (entry-point group ``prunebench.protocols``): it is
listed, runs in a suite on the tiny BERT, and its cells carry its name in their keys and records.
Installed like the suite-kind plug-in in tests/test_plugin_kind.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_suite_yaml

from benchmarks.data import load_glue

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_MODULE = '''
"""Majority: predict the fit subset's most common class (its mean score for regression); nothing learned."""
import numpy as np

from benchmarks.masking import measure_sparsity
from benchmarks.protocols.base import ProtocolOutput
from benchmarks.protocols.embed import fresh_copy
from benchmarks.protocols.embedding import pristine_encoder
from benchmarks.registry import register_protocol


@register_protocol("majority", version="2", pooling=False)
def majority(task, train, evals, model_ref, pruner, recipe, seed, ctx):
    """The fit subset's majority class for every example (a floor any protocol must beat)."""
    encoder = fresh_copy(pristine_encoder(model_ref, ctx))
    pruner(encoder)
    sparsity = measure_sparsity(encoder)
    labels = np.asarray(train.labels)
    if task.regression:
        guess = float(labels.mean())
    else:
        values, counts = np.unique(labels, return_counts=True)
        guess = int(values[counts.argmax()])
    predictions = [(np.full(len(ex), guess), None) for _, ex in evals]
    return ProtocolOutput(predictions, sparsity, sparsity, {"fit_examples": len(train)}, notes={"guess": guess})
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "prunebench-majority"
version = "0.0.1"

[project.entry-points."prunebench.protocols"]
majority = "pb_majority"

[tool.setuptools]
py-modules = ["pb_majority"]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """Build and install the plug-in distribution into a private folder (put on PYTHONPATH by the commands)."""
    tmp_path = tmp_path_factory.mktemp("protocol-plugin")
    src, site = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    (src / "pb_majority.py").write_text(PLUGIN_MODULE)
    (src / "pyproject.toml").write_text(PYPROJECT)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"could not build the plug-in distribution: {done.stderr[-2000:]}")
    assert "prunebench.protocols" in next(site.glob("prunebench_majority-*.dist-info/entry_points.txt")).read_text()
    return site


def _benchmarks(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1",
           "PRUNEBENCH_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)


def test_plugin_protocol_is_listed_and_runs_in_a_suite(plugin_site, tmp_path, tiny_bert, tiny_mirror):
    listed = _benchmarks(plugin_site, tmp_path, "list", "protocols")
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["finetune", "majority", "probe", "zeroshot"]
    assert "(a floor any protocol must beat). (version 2)" in listed.stdout
    suite, results = tmp_path / "tiny.yaml", tmp_path / "results"
    suite.write_text(tiny_suite_yaml(tiny_bert, rows="[dense, {method: global, sparsity: [0.5]}]"))
    run = _benchmarks(plugin_site, tmp_path, "run", "--suite-file", str(suite), "--results", str(results),
                      "--data-dir", str(tiny_mirror), "--set", "protocol=majority", "--no-progress", "--no-report")
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert len(records) == 4  # 2 rows x 2 tasks
    for record in records:
        config, task = record["config"], record["config"]["task"]
        assert (config["protocol"], config["protocol_version"], record["notes"]["protocol"]) == ("majority", "2",
                                                                                                   "majority")
        dev = load_glue(task, "dev", tiny_mirror)
        majority = np.bincount(load_glue(task, "train", tiny_mirror).labels).argmax()
        assert record["metrics"]["accuracy"] == pytest.approx(np.mean(dev.labels == majority))
        assert record["notes"]["guess"] == majority and record["metrics"]["collapsed"]
    pruned = next(r for r in records if r["config"]["method"] == "global")
    assert pruned["sparsity"]["global_before"] == pytest.approx(0.5, abs=0.01)


def test_an_unknown_protocol_is_one_line(plugin_site, tmp_path, tiny_bert):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert))
    run = _benchmarks(plugin_site, tmp_path, "run", "--suite-file", str(suite), "--results", str(tmp_path / "r"),
                      "--set", "protocol=majorty", "--no-progress")
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "unknown protocol 'majorty'" in run.stderr and "majority" in run.stderr
