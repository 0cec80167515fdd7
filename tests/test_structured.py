"""Structured methods (heads, neurons, retrain-free, drop-layers), physical shrinking and the cost note.

The done-when checks of issue 23: each method removes exactly what it reports (parameter counts before and
after), a shrunk model's outputs equal the masked dense model's (same heads/neurons zeroed), and the same
seed gives the same structures and weights.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from benchmarks.calibration import random_calibration
from benchmarks.cli import main
from benchmarks.cost import cost_config, measure_cost, model_size
from benchmarks.errors import UserError
from benchmarks.masking import apply_pruning, apply_result, measure_sparsity
from benchmarks.registry import METHODS
from benchmarks.shrink import shrink_model
from methods.retrain_free import rearrange, search
from methods.select import split_result
from methods.structured import Structure, StructuredResult, flop_geometry, structure_masks
from tests.conftest import tiny_suite_yaml

SEQ = 16  # FLOPs targets counted at 16 tokens: the tiny model's heads then hold about half its FLOPs
CASES = [("heads", 0.2, {}), ("heads", 0.45, {}), ("neurons", 0.3, {}), ("retrain-free", 0.4, {}),
         ("retrain-free", 0.6, {"tune": False}), ("drop-layers", 0.5, {"side": "top"}),
         ("drop-layers", 0.25, {"side": "bottom"})]


def tiny(layers: int = 4, hidden: int = 32, heads: int = 4, seed: int = 0) -> BertModel:
    """A random BertModel, dropout off, in eval mode."""
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg).eval()


@pytest.fixture(scope="module")
def model() -> BertModel:
    return tiny()


CALIBRATION = random_calibration(100, count=8, seq_len=12, seed=0)
INPUTS = {"input_ids": torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(1)),
          "attention_mask": torch.tensor([[1] * 12, [1] * 9 + [0] * 3, [1] * 5 + [0] * 7])}


def run(name: str, model, sparsity: float, seed: int = 0, **options) -> StructuredResult:
    if METHODS.meta(name).get("calibration"):
        options = {"calibration": CALIBRATION, "seq_len": SEQ, **options}
    return METHODS.get(name)(model, sparsity, torch.Generator().manual_seed(seed), **options)


def outputs(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**INPUTS).last_hidden_state


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "rate", "options"), CASES)
def test_removes_exactly_what_it_reports(name, rate, options, model):
    """Parameters before - after = the reported structures' weights and biases; masks zero the same weights."""
    result = run(name, model, rate, **options)
    shrunk = copy.deepcopy(model)
    _, info = apply_result(shrunk, result)
    geo, s = flop_geometry(model), result.structure.summary()
    d, h = geo.hidden, geo.head_size
    per_layer = 4 * (d * d + d) + 2 * d * geo.neurons[0] + geo.neurons[0] + d + 2 * 2 * d  # + 2 LayerNorms
    expected = (s["heads_removed"] * 3 * (d * h + h) + s["heads_removed"] * d * h  # Q/K/V rows + biases, O cols
                + s["neurons_removed"] * (d + 1 + d)  # intermediate row + bias, output column
                + len(s["layers_removed"]) * per_layer)
    assert count(model) - count(shrunk) == expected
    assert s["heads_removed"] + s["neurons_removed"] + len(s["layers_removed"]) > 0
    zeros = sum(int((~keep).sum()) for keep in result.masks.values())
    assert info["prunable_removed"] == zeros == info["prunable_before"] - info["prunable_after"]
    assert measure_sparsity(shrunk)["global"] == pytest.approx(zeros / info["prunable_before"])


@pytest.mark.parametrize(("name", "rate", "options"), [c for c in CASES if c[0] != "drop-layers"])
def test_shrunk_model_equals_masked_dense_model(name, rate, options, model):
    """Removing heads/neurons physically gives the outputs of zeroing them in the dense-shaped model."""
    result = run(name, model, rate, **options)
    masked, shrunk = copy.deepcopy(model), copy.deepcopy(model)
    masks, weights = split_result(result)
    apply_pruning(masked, masks, weights)
    apply_result(shrunk, result)
    assert count(shrunk) < count(masked)
    torch.testing.assert_close(outputs(shrunk), outputs(masked), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("side", ["top", "bottom"])
def test_dropped_layers_equal_running_the_kept_layers(side, model):
    """drop-layers: the shrunk model is the embeddings followed by exactly the kept layers, in order."""
    result = run("drop-layers", model, 0.5, side=side)
    kept = [0, 1] if side == "top" else [2, 3]
    assert sorted(set(range(4)) - set(result.structure.layers)) == kept
    shrunk = copy.deepcopy(model)
    apply_result(shrunk, result)
    ids = INPUTS["input_ids"]  # no padding, so the layers need no attention mask
    with torch.no_grad():
        hidden = model.embeddings(input_ids=ids)
        for i in kept:
            hidden = model.encoder.layer[i](hidden)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        torch.testing.assert_close(shrunk(input_ids=ids).last_hidden_state, hidden, rtol=1e-5, atol=1e-5)
    per_layer = measure_sparsity(shrunk)["per_layer"]
    assert all(per_layer[str(i)] == (0.0 if i in kept else 1.0) for i in range(4))


def test_a_layer_without_heads_or_neurons_still_runs_and_matches(model):
    """All heads of layer 1 and all neurons of layer 2 removed: the blocks add only their output biases."""
    structure = Structure(heads={1: (0, 1, 2, 3)}, neurons={2: tuple(range(64))})
    masked, shrunk = copy.deepcopy(model), copy.deepcopy(model)
    apply_pruning(masked, structure_masks(model, structure))
    shrink_model(shrunk, structure)
    torch.testing.assert_close(outputs(shrunk), outputs(masked), rtol=1e-5, atol=1e-5)
    assert model_size(shrunk, SEQ)["flops_per_token"] < model_size(model, SEQ)["flops_per_token"]


@pytest.mark.parametrize(("name", "rate", "options"), CASES)
def test_same_seed_same_structures_and_weights(name, rate, options, model):
    first, second = run(name, model, rate, seed=3, **options), run(name, model, rate, seed=3, **options)
    assert first.structure == second.structure
    assert first.weights.keys() == second.weights.keys()
    assert all(torch.equal(first.weights[k], second.weights[k]) for k in first.weights)


def test_flops_targets_are_met_and_impossible_ones_refused(model):
    geo = flop_geometry(model)
    for name in ("heads", "neurons", "retrain-free"):
        shrunk = copy.deepcopy(model)
        apply_result(shrunk, run(name, model, 0.3))
        removed = 1 - geo.__class__(**{**geo.__dict__, **_shape(shrunk)}).total_flops(SEQ) / geo.total_flops(SEQ)
        unit = max(geo.head_flops(SEQ), geo.neuron_flops()) / geo.total_flops(SEQ)
        low = 0.3 - unit if name == "retrain-free" else 0.3 - unit / 2  # the search may stop one unit short
        assert low <= removed <= 0.3 + unit / 2 + 1e-9
    with pytest.raises(ValueError, match="use a lower sparsity or neurons or retrain-free"):
        run("heads", model, 0.9)
    with pytest.raises(ValueError, match="would drop all 4 layers"):
        run("drop-layers", model, 0.9)
    with pytest.raises(ValueError, match="side must be 'top' or 'bottom'"):
        run("drop-layers", model, 0.5, side="middle")


def _shape(model) -> dict:
    geo = flop_geometry(model)
    return {"heads": geo.heads, "neurons": geo.neurons, "layers": geo.layers}


def test_search_is_the_best_split_under_the_budget():
    """The mask search equals brute force over every (heads, neurons) split of a small budget."""
    heads = [torch.tensor([5.0, 1.0]), torch.tensor([3.0, 0.5])]
    neurons = [torch.tensor([2.0, 0.1, 0.2]), torch.tensor([4.0, 0.3, 0.05])]
    hf, nf, budget = 10, 3, 26
    best, best_score = None, -1.0
    flat_h, flat_n = sorted(torch.cat(heads).tolist(), reverse=True), sorted(torch.cat(neurons).tolist(), reverse=True)
    for h, n in itertools.product(range(5), range(7)):
        if h * hf + n * nf <= budget and sum(flat_h[:h]) + sum(flat_n[:n]) > best_score:
            best, best_score = (h, n), sum(flat_h[:h]) + sum(flat_n[:n])
    assert search(heads, neurons, budget, hf, nf) == best


def test_rearrange_never_worse_than_the_diagonal_choice():
    """The greedy rearrangement's ||sum of pruned gradients||^2 is at most that of the lowest-diagonal choice."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        grads = torch.randn(10, 8, generator=gen, dtype=torch.float64) + torch.randn(1, 8, generator=gen,
                                                                                  dtype=torch.float64)
        pruned = rearrange(grads, kept=5)
        diagonal = sorted(range(8), key=lambda i: float(grads[:, i].pow(2).sum()))[:3]
        assert len(pruned) == 3
        assert grads[:, list(pruned)].sum(1).pow(2).sum() <= grads[:, diagonal].sum(1).pow(2).sum() + 1e-12


def test_mask_tuning_brings_the_output_closer_to_dense(model):
    """retrain-free with least-squares tuning reconstructs the dense output on calibration text better than without."""
    def error(tune: bool) -> float:
        pruned = copy.deepcopy(model)
        apply_result(pruned, run("retrain-free", model, 0.5, tune=tune))
        with torch.no_grad():
            ids, mask = CALIBRATION.input_ids, CALIBRATION.attention_mask
            return float((pruned(input_ids=ids, attention_mask=mask).last_hidden_state
                          - model(input_ids=ids, attention_mask=mask).last_hidden_state).pow(2).mean())

    assert error(tune=True) < error(tune=False)


def test_methods_leave_the_model_unchanged(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, rate, options in CASES:
        run(name, model, rate, **options)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cost_note_sizes_and_timings(model):
    shrunk = copy.deepcopy(model)
    apply_result(shrunk, run("neurons", model, 0.3))
    note = measure_cost(model, shrunk, {"batch_sizes": [1, 2], "seq_len": SEQ, "repeats": 3, "warmup": 1})
    assert note["params"] == count(shrunk) and note["dense_params"] == count(model)
    assert note["flops_per_token"] == flop_geometry(shrunk).total_flops(SEQ)
    assert note["dense_flops_per_token"] == flop_geometry(model).total_flops(SEQ)
    assert [t["batch"] for t in note["timings"]] == [1, 2]
    for timing in note["timings"]:
        assert len(timing["dense_s"]) == len(timing["pruned_s"]) == 3
        assert timing["speedup"] == pytest.approx(timing["dense_median_s"] / timing["pruned_median_s"])
    assert note["threads"] >= 1 and "speedup_theoretical" not in note


def test_nm_rows_get_a_theoretical_speedup(model):
    pruned = copy.deepcopy(model)
    apply_pruning(pruned, *split_result(METHODS.get("layerwise")(model, 0.5, None, pattern="2:4")))
    note = measure_cost(model, pruned, {"batch_sizes": [1], "seq_len": SEQ, "repeats": 1, "warmup": 0}, "2:4")
    assert note["flops_per_token"] == note["dense_flops_per_token"]  # dense-shaped: runs every product
    assert 1.0 < note["speedup_theoretical"] < 2.0  # matrix products halve; attention scores do not


@pytest.mark.parametrize(("spec", "match"), [({"seq_len": 0}, "seq_len must be a positive"),
                                             ({"batch_sizes": []}, "batch_sizes must be a list"),
                                             ({"threads": 2}, "unknown options.cost field")])
def test_bad_cost_config(spec, match):
    with pytest.raises(UserError, match=match):
        cost_config(spec, "suite 'x'")


def test_structured_rows_run_in_a_suite_with_cost(tiny_bert, tiny_mirror, tmp_path, capsys):
    """Zero-shot cells of structured rows: the record says what was removed, the cost note has the ratio."""
    suite = tmp_path / "structured.yaml"
    rows = ("[dense, {method: heads, sparsity: 0.1, seq_len: 16}, {method: drop-layers, sparsity: 0.25}, "
            "{method: global, sparsity: 0.5}]")
    extra = ("protocol: zeroshot\ncalibration: {source: 'glue-train:sst2,mrpc', count: 8, seq_len: 32}\n"
             "options: {cost: {batch_sizes: [1], seq_len: 16, repeats: 2, warmup: 1}}\n")
    suite.write_text(tiny_suite_yaml(tiny_bert, name="structured", tasks="[sst2]", rows=rows, extra=extra))
    results = tmp_path / "results"
    code = main(["run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror), "--results", str(results),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    loaded = (json.loads(p.read_text()) for p in (results / "records").glob("*.json"))
    records = {r["label"].split()[0]: r for r in loaded}
    assert set(records) == {"full-base", "heads-0.1", "drop-top-0.25", "full-0.5"}
    drop, heads, glob = records["drop-top-0.25"], records["heads-0.1"], records["full-0.5"]
    assert drop["notes"]["structure"]["layers_removed"] == [3]
    assert drop["sparsity"]["global_before"] == pytest.approx(0.25)  # removed weights count as pruned
    assert heads["notes"]["structure"]["heads_removed"] >= 1
    assert "structure" not in glob["notes"] and glob["notes"]["cost"]["flops_ratio"] == 1.0
    assert drop["notes"]["cost"]["params"] < drop["notes"]["cost"]["dense_params"]
    assert all(r["config"]["cost"]["seq_len"] == 16 for r in records.values())
    out = tmp_path / "board.md"
    assert main(["report", "--suite-file", str(suite), "--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Cost: parameters, FLOPs and measured CPU speed-up" in text and "drop-top-0.25" in text
    assert list((tmp_path / "board_plots").glob("pareto-*.png")), "one Pareto plot per task column"
    page = tmp_path / "board.html"
    assert main(["report", "--suite-file", str(suite), "--results", str(results), "--format", "html",
                 "--out", str(page)]) == 0
    assert "Cost: parameters, FLOPs and measured CPU speed-up" in page.read_text()
    _csv_has_the_cost_table(suite, results, text, tmp_path)


def _csv_has_the_cost_table(suite: Path, results: Path, markdown: str, tmp_path: Path) -> None:
    """``report --out board.csv`` carries each row's cost as the Markdown cost table prints it: parameters and
    the measured speed-up with its interval."""
    import re

    import pandas as pd

    table = tmp_path / "board.csv"
    assert main(["report", "--suite-file", str(suite), "--results", str(results), "--out", str(table)]) == 0
    rows = pd.read_csv(table).drop_duplicates("row").set_index("row")
    cost_lines = [line for line in markdown.split("## Cost")[1].splitlines() if line.startswith("| ")][1:]
    assert len(cost_lines) == len(rows) == 4
    for line in cost_lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = rows.loc[cells[0]]
        assert cells[2] == f"{row['params'] / 1e6:.2f}" and cells[5] == f"{row['flops_ratio']:.3f}"
        speed = re.match(r"(\d+\.\d+)x \\\[(\d+\.\d+), (\d+\.\d+)\\\]", cells[7])
        assert speed is not None, cells
        assert speed.groups() == tuple(f"{row[k]:.2f}" for k in ("speedup_b1", "speedup_low_b1", "speedup_high_b1"))
