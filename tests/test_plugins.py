"""A method added by a real third-party distribution (entry point group ``prunebench.methods``)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import tiny_suite_yaml

from benchmarks.cli import main
from benchmarks.registry import METHODS

PLUGIN_MODULE = '''
"""Per-matrix magnitude pruning: every encoder matrix loses the same fraction of its weights."""
from benchmarks.registry import register_method
from methods import exact_magnitude_masks, prunable_weights


def _groups(weights, sparsity, options):
    return {w.name: ([w.name], sparsity) for w in weights}


@register_method("per-matrix", groups=_groups)
def per_matrix(model, sparsity, generator=None, **options):
    """Magnitude-prune each encoder matrix separately at the same rate."""
    masks = {}
    for w in prunable_weights(model):
        masks.update(exact_magnitude_masks({w.name: w.weight}, sparsity))
    return masks


def _input_norms(model, calibration):
    """Root-mean-square input of every encoder Linear over the calibration tokens (one dense forward)."""
    import torch

    names = {w.name[:-len(".weight")]: w.name for w in prunable_weights(model)}
    sums, handles = {}, []
    for module_name, weight_name in names.items():
        def hook(module, args, key=weight_name):
            x = args[0].reshape(-1, args[0].shape[-1]).double()
            sums[key] = sums.get(key, 0) + x.pow(2).sum(0)
        handles.append(model.get_submodule(module_name).register_forward_pre_hook(hook))
    with torch.no_grad():
        model(input_ids=calibration.input_ids, attention_mask=calibration.attention_mask)
    for handle in handles:
        handle.remove()
    return {k: (v / calibration.input_ids.numel()).sqrt() for k, v in sums.items()}


@register_method("act-norm", groups=_groups, calibration=True)
def act_norm(model, sparsity, generator=None, calibration=None, **options):
    """Per matrix, prune the lowest |W_ij| * rms(x_j) over the calibration tokens."""
    if calibration is None or calibration.input_ids.dim() != 2:
        raise ValueError("act-norm needs calibration data")
    norms = _input_norms(model, calibration)
    masks = {}
    for w in prunable_weights(model):
        scores = (w.weight.detach().abs().double() * norms[w.name].unsqueeze(0)).float()
        masks.update(exact_magnitude_masks({w.name: scores}, sparsity))
    return masks
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "prunebench-per-matrix"
version = "0.0.1"

[project.entry-points."prunebench.methods"]
per-matrix = "pb_per_matrix"
act-norm = "pb_per_matrix"

[tool.setuptools]
py-modules = ["pb_per_matrix"]
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """Build and install the plugin distribution into a private folder put on sys.path (once per module)."""
    tmp_path = tmp_path_factory.mktemp("plugin")
    src, site = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    (src / "pb_per_matrix.py").write_text(PLUGIN_MODULE)
    (src / "pyproject.toml").write_text(PYPROJECT)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"could not build the plugin distribution: {done.stderr[-2000:]}")
    assert list(site.glob("prunebench_per_matrix-0.0.1.dist-info/entry_points.txt"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.syspath_prepend(str(site))
        METHODS.reload_entry_points()
        yield site
    METHODS.unregister("per-matrix")
    METHODS.unregister("act-norm")
    METHODS.reload_entry_points()
    sys.modules.pop("pb_per_matrix", None)


def test_plugin_method_runs_in_a_suite_and_reaches_the_leaderboard(installed_plugin, tmp_path, tiny_bert,
                                                                    tiny_mirror, capsys):
    assert "per-matrix" in METHODS.names()  # loaded lazily from the entry point
    assert METHODS.get("per-matrix").__module__ == "pb_per_matrix"
    suite = tmp_path / "plugin.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="plugin", tasks="[sst2]",
                                     rows="[dense, {method: per-matrix, sparsity: [0.5]}]"))
    code = main(["run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror),
                 "--results", str(tmp_path / "results"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines if "| per-matrix-0.5 " in line)
    cells = dict(zip(header, (c.strip() for c in row.strip("|").split("|"))))
    achieved = next(title for title in header if title.startswith("achieved sparsity"))  # [n]: its footnote
    assert cells[achieved] == "0.5000"
    sst2 = next(title for title in header if title.startswith("SST2"))
    # an SST-2 accuracy with its bootstrap interval (and maybe a mark), not a missing/failed mark
    assert re.fullmatch(r"\**0\.\d{3}\** \[0\.\d+, [01]\.\d+\].*", cells[sst2]), row


def test_plugin_method_is_tested_like_the_builtins(installed_plugin):
    """The generic method checks apply to it through its registration metadata."""
    import torch
    from transformers import BertConfig, BertModel

    from methods import method_example, method_groups, prunable_weights

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32))
    sparsity, options = method_example("per-matrix")
    masks = METHODS.get("per-matrix")(model, sparsity, None, **options)
    for names, rate in method_groups("per-matrix", prunable_weights(model), sparsity, options).values():
        n = sum(masks[p].numel() for p in names)
        assert abs(sum(int((~masks[p]).sum()) for p in names) - rate * n) <= 1


def test_unknown_method_lists_plugin_in_suggestions(installed_plugin):
    from benchmarks.registry import UnknownName

    with pytest.raises(UnknownName, match="per-matrix"):
        METHODS.get("per-matrx")


def test_plugin_method_with_calibration_runs_in_a_suite(installed_plugin, tmp_path, tiny_bert, tiny_mirror, capsys):
    """A plug-in that declares calibration=True gets the suite's calibration set, keyed and recorded."""
    import json

    assert METHODS.get("act-norm").__module__ == "pb_per_matrix"
    assert METHODS.meta("act-norm")["calibration"] is True
    suite = tmp_path / "plugin-calib.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="plugin-calib", tasks="[sst2]",
                                     rows="[dense, {method: act-norm, sparsity: [0.5]}]",
                                     extra="calibration: {source: 'glue-train:sst2', count: 8, seq_len: 24}\n"))
    results = tmp_path / "results"
    code = main(["run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror), "--results", str(results),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("|") and "| act-norm-0.5 " in line)
    assert [c.strip() for c in row.strip("|").split("|")][-1] == "0.5000"
    record = next(r for r in (json.loads(p.read_text()) for p in (results / "records").glob("*.json"))
                  if r["config"]["method"] == "act-norm")
    assert record["status"] == "ok"
    assert record["config"]["calibration"] == {"source": "glue-train:sst2", "count": 8, "seq_len": 24, "seed": 0}
    # an installed plug-in's identity: its distribution and version in the key, its source hash in provenance
    assert record["config"]["method_plugin"] == "prunebench-per-matrix==0.0.1"
    assert record["provenance"]["code"]["method"]["plugin"] == "prunebench-per-matrix==0.0.1"
    assert "glue/SST-2/train.tsv" in record["provenance"]["data"]
    with pytest.raises(ValueError, match="needs calibration"):
        METHODS.get("act-norm")(None, 0.5, None)
