"""MNIST study: IDX parsing, closed-form Table 1 vs explicit pair tables, pruning, node statistics,
batched training == one-at-a-time training, correlated init, suite validation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from scipy import stats

from benchmarks.config import apply_overrides, load_suite
from benchmarks.errors import UserError
from benchmarks.mnist import statistics
from benchmarks.mnist.data import load_split, parse_idx, scale_images
from benchmarks.mnist.experiments import correlate_init, correlated_scales
from benchmarks.mnist.train import Recipe, init_model, train_models, train_one_reference
from benchmarks.paths import default_data_dir
from benchmarks.registry import KINDS


def _mnist_dir():
    d = default_data_dir()
    if d is None or not (d / "mnist").is_dir():
        pytest.skip("MNIST mirror not found (set PRUNEBENCH_DATA_DIR)")
    return d


def _pruned(rng, shape, rate):
    w = rng.normal(size=shape)
    thresh = np.quantile(np.abs(w), rate)
    w[np.abs(w) <= thresh] = 0.0
    return w


# ---- data -------------------------------------------------------------------------------------

def test_parse_idx_roundtrip_and_bad_magic():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    assert np.array_equal(parse_idx(data), arr)
    assert np.array_equal(parse_idx(gzip.decompress(gzip.compress(data))), arr)
    with pytest.raises(UserError, match="magic"):
        parse_idx(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match="truncated"):
        parse_idx(data[:-1])


def test_mirror_split_shapes_and_scaling():
    split = load_split("test", _mnist_dir())
    assert split.images.shape == (10000, 784) and split.labels.shape == (10000,)
    assert int(split.labels.max()) == 9
    x = scale_images(split.images[:100], "normalize")
    assert abs(float(scale_images(split.images, "normalize").mean())) < 0.05  # near zero mean
    assert float(scale_images(split.images[:100], "unit").max()) <= 1.0
    assert x.dtype == torch.float32
    with pytest.raises(UserError, match="scaling"):
        scale_images(split.images[:2], "zscore")


# ---- Table 1: closed form == explicit pair table ----------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shared_node_corr_matches_explicit_pairs(seed):
    rng = np.random.default_rng(seed)
    w = _pruned(rng, (17, 11), 0.6)
    w[:, 3] = 0.0  # a fully pruned output node contributes no pairs
    w[5, :] = 0.0
    for share in ("output", "input"):
        table = statistics.explicit_shared_pairs(w, share)
        assert np.allclose(table[:, 0].mean(), table[:, 1].mean())  # both orders: same marginals
        ref = stats.pearsonr(table[:, 0], table[:, 1]).statistic
        assert abs(statistics.shared_node_corr(w, share) - ref) < 1e-9
        assert abs(np.corrcoef(table.T)[0, 1] - ref) < 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_node_io_corr_matches_explicit_pairs(seed):
    rng = np.random.default_rng(seed)
    w_in, w_out = _pruned(rng, (13, 9), 0.7), _pruned(rng, (9, 5), 0.5)
    w_in[:, 2] = 0.0  # node 2 has no inputs left: no pairs through it
    table = statistics.explicit_node_pairs(w_in, w_out)
    ref = stats.pearsonr(table[:, 0], table[:, 1]).statistic
    assert abs(statistics.node_io_corr(w_in, w_out) - ref) < 1e-9


def test_table1_rows_and_degenerate_case():
    rng = np.random.default_rng(3)
    ws = [_pruned(rng, s, 0.5) for s in ((20, 12), (12, 6), (6, 3))]
    t1 = statistics.table1(ws)
    assert list(t1) == list(statistics.TABLE1_ROWS)
    assert all(-1 <= v <= 1 for v in t1.values())
    assert np.isnan(statistics.shared_node_corr(np.eye(3), "output"))  # one weight per node: no pairs


# ---- pruning ----------------------------------------------------------------------------------

def test_magnitude_masks_per_model_exact_count_and_ties():
    w = torch.randn(3, 10, 8)
    w[1] = 0.5  # all tied: the stable order keeps the last positions, deterministically
    mask = statistics.magnitude_masks(w, 0.75)
    assert mask.shape == w.shape
    assert mask.reshape(3, -1).sum(1).tolist() == [20, 20, 20]
    for k in (0, 2):
        assert w[k][mask[k]].abs().min() >= w[k][~mask[k]].abs().max()
    assert torch.equal(mask, statistics.magnitude_masks(w, 0.75))
    with pytest.raises(UserError, match="fraction"):
        statistics.check_rates({"fc1": 1.5})
    with pytest.raises(UserError, match="unknown layer"):
        statistics.check_rates({"fc4": 0.5})


# ---- Table 2 ----------------------------------------------------------------------------------

def test_table2_node_properties_hand_example():
    w_in = np.array([[1.0, 0.0, 0.0, -2.0], [2.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 3.0, 1.0]])  # 3 in, 4 nodes
    w_out = np.array([[2.0, -1.0], [0.0, 0.0], [0.0, 4.0], [1.0, 0.0]])  # 4 nodes, 2 out
    p = statistics.node_properties(w_in, w_out)
    assert p["in_count"].tolist() == [3, 0, 1, 2] and p["out_count"].tolist() == [2, 0, 1, 1]
    assert np.allclose(p["in_mean"][[0, 2, 3]], [2 / 3, 3, -0.5]) and np.isnan(p["in_mean"][1])
    assert np.allclose(p["in_abs_mean"][[0, 2, 3]], [4 / 3, 3, 1.5])
    assert np.allclose(p["out_frac_positive"][[0, 2, 3]], [0.5, 1, 1])
    col = statistics.table2_layer(p)
    assert col["dead_nodes"] == 1 and col["nodes"] == 4
    assert abs(col["count"] - np.corrcoef([3, 0, 1, 2], [2, 0, 1, 1])[0, 1]) < 1e-12
    assert abs(col["count_excl_dead"] - np.corrcoef([3, 1, 2], [2, 1, 1])[0, 1]) < 1e-12


# ---- batched training == one at a time --------------------------------------------------------

@pytest.mark.parametrize("optimizer,lr,momentum,activation", [
    ("sgd", 0.1, 0.0, "relu"),  # the fused path: update folded into the weight-gradient product
    ("sgd", 0.1, 0.0, "tanh"),
    ("sgd", 0.01, 0.9, "relu"),  # gradients into buffers, torch.optim steps (lr 0.05 is chaotic here)
    ("adam", 1.2e-3, 0.0, "relu"),
    ("adadelta", 1.0, 0.0, "relu"),
])
def test_batched_training_equals_one_by_one(optimizer, lr, momentum, activation):
    """Stacked models (own init, own data order, hand-written backward pass) == independent autograd training.

    float64 so that the comparison isolates the method from float32 kernel rounding (bmm vs addmm), which
    Adam/Adadelta would amplify; batch 10 on 2,000 images keeps it fast, and 300 steps cross an epoch
    boundary (200 steps per epoch here), so the per-model reshuffle is covered too.
    """
    split = load_split("train", _mnist_dir())
    x = scale_images(split.images[:2000], "normalize").double()
    y = split.labels[:2000]
    recipe = Recipe(optimizer=optimizer, lr=lr, momentum=momentum, activation=activation, batch_size=10, threads=1)
    seeds = [11, 12]
    inits = [[p.double() for p in init_model(s, recipe.init)] for s in seeds]
    batched = train_models(seeds, x, y, recipe, steps=300, init_params=inits)
    for seed, init, got in zip(seeds, inits, batched):
        ref = train_one_reference(seed, x, y, recipe, 300, init)
        moved = max(float((r - i).abs().max()) for r, i in zip(ref, init))
        assert moved > 1e-3  # the models did train
        assert max(float((a - b).abs().max()) for a, b in zip(got, ref)) < 1e-5


def test_models_get_their_own_init_and_order():
    a, b = init_model(0, "torch-default"), init_model(1, "torch-default")
    assert not torch.equal(a[0], b[0])
    assert torch.equal(a[0], init_model(0, "torch-default")[0])
    from benchmarks.mnist.train import data_order

    assert not torch.equal(data_order(0, 100, 0), data_order(1, 100, 0))
    assert not torch.equal(data_order(0, 100, 0), data_order(0, 100, 1))


# ---- correlated init (Table 3) ----------------------------------------------------------------

def test_correlated_init_scales_every_weight_touching_a_node():
    s1, s2 = correlated_scales(5, 2.0)
    assert ((s1 >= 0.5) & (s1 <= 2.0)).all() and (s1 < 1).any() and (s1 > 1).any()
    params = init_model(0, "torch-default")
    new = correlate_init(params, s1, s2)
    assert torch.allclose(new[0], params[0] * s1[None, :])
    assert torch.allclose(new[2], params[2] * s1[:, None] * s2[None, :])
    assert torch.allclose(new[4], params[4] * s2[:, None])
    ones = correlated_scales(5, 1.0)
    assert all(torch.equal(p, q) for p, q in zip(correlate_init(params, *ones), params))


# ---- suites and recipes -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist-correlations", "mnist-recipes", "mnist-init", "mnist-ci"])
def test_builtin_suites_expand(name):
    suite = load_suite(name)
    cells = KINDS.get(suite.kind)().cells(suite)
    assert cells and len({c.key for c in cells}) == len(cells)


def test_bad_recipe_and_options_are_one_line_errors():
    suite = load_suite("mnist-ci")
    kind = KINDS.get(suite.kind)()
    with pytest.raises(UserError, match="optimizer"):
        kind.validate(apply_overrides(suite, ["recipe.optimizer=rmsprop"]))
    with pytest.raises(UserError, match="unknown recipe key"):
        kind.validate(apply_overrides(suite, ["recipe.learning_rate=0.1"]))
    with pytest.raises(UserError, match="unknown option"):
        kind.validate(apply_overrides(suite, ["options.modles=3"]))
    init = load_suite("mnist-init")
    with pytest.raises(UserError, match="factors"):
        KINDS.get("mnist-init")().validate(apply_overrides(init, ["options.factors=[1.1]", "rows=[{label: x}]"]))


def test_shared_order_option_trains_every_model_on_the_first_models_order():
    """data_order=shared: one batch gathered per step, broadcast to every model: all see seed[0]'s order."""
    split = load_split("train", _mnist_dir())
    x = scale_images(split.images[:1000], "unit").double()
    y = split.labels[:1000]
    recipe = Recipe(optimizer="sgd", lr=0.1, batch_size=10, threads=1, data_order="shared")
    seeds = [3, 4]
    inits = [[p.double() for p in init_model(s, recipe.init)] for s in seeds]
    batched = train_models(seeds, x, y, recipe, steps=120, init_params=inits)
    own = Recipe(optimizer="sgd", lr=0.1, batch_size=10, threads=1)
    ref = train_one_reference(seeds[0], x, y, own, 120, inits[1])  # model 2's init, model 1's order
    assert max(float((a - b).abs().max()) for a, b in zip(batched[1], ref)) < 1e-5


def test_init_suite_reports_means_and_p_values_for_every_variant(tmp_path):
    """mnist-init, reduced (3 models, f in {1, 1.5}, 20 steps): every variant gets a mean per f and a
    one-sided p-value in the rendered Table 3, with the paired test for controlled variants."""
    from benchmarks import store
    from benchmarks.mnist import regen
    from benchmarks.runner import run_suite
    from reports import render_suite

    data_dir = _mnist_dir()
    suite = apply_overrides(load_suite("mnist-init"), ["options.models=3", "options.factors=[1.0, 1.5]",
                                                       "recipe.epochs=0.02", "recipe.chunk=6"])
    summary = run_suite(suite, tmp_path, data_dir, progress=False, accelerator=regen._NoAccelerator())
    assert summary.ok == summary.total == 6, summary
    records = list(store.load_records(tmp_path).records.values())
    for rec in records:
        rows = {row["f"]: row for row in rec["artifacts"]["rows"]}
        assert set(rows) == {1.0, 1.5} and 0.0 < rows[1.5]["p_value"] <= 1.0
        expected = "ttest_rel" if rec["config"]["controlled"] else "ttest_ind"
        assert expected in rows[1.5]["test"]
        assert len(rec["artifacts"]["accuracy"]) == 2 and len(rec["artifacts"]["accuracy"][0]) == 3
    md = render_suite(suite, tmp_path, "md")
    for rec in records:
        assert f"{rec['config']['label']}: mean acc" in md
    assert "uncontrolled: a fresh training subset" in md and "controlled: the same subset" in md
    line = next(row for row in md.splitlines() if row.startswith("| 1.5"))
    assert line.count("|") == 1 + 3 * 3 + 1  # f, then mean, p and paper for each of the three variants


# ---- run settings: chunk and threads change speed, not numbers, so they are not in the cell key ----------

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_run_settings_are_not_in_the_cell_key_but_reach_the_cell():
    """--set recipe.chunk / recipe.threads leave every key as it was; the cell still trains with them."""
    from benchmarks.kinds.mnist import _cell_recipe

    suite = load_suite("mnist-ci")
    kind = KINDS.get(suite.kind)()
    base = kind.cells(suite)
    other = kind.cells(apply_overrides(suite, ["recipe.chunk=5", "recipe.threads=2"]))
    assert [c.key for c in other] == [c.key for c in base]
    assert not {"chunk", "threads"} & set(other[0].config["recipe"])
    recipe = _cell_recipe(other[0])
    assert (recipe.chunk, recipe.threads) == (5, 2) and recipe.epochs == 2.0
    changed = kind.cells(apply_overrides(suite, ["recipe.lr=0.05"]))  # a setting that changes numbers does
    assert changed[0].key != base[0].key


def _committed_mnist_results() -> list:
    """Committed results folders holding MNIST records."""
    return sorted({p.parent.parent for root in ("published", "docs/examples", "tests")
                   for p in (REPO / root).glob("**/records/*.json") if '"kind": "mnist-' in p.read_text()})


@pytest.mark.parametrize("folder", _committed_mnist_results(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_committed_mnist_record_is_still_found_as_done(folder):
    """Re-expanding the suite each committed MNIST record came from finds it done: nothing to run again."""
    from benchmarks.runner import count_done, expand

    records = [__import__("json").loads(p.read_text()) for p in sorted((folder / "records").glob("*.json"))]
    assert records and all(r["config"]["kind"].startswith("mnist-") and r["status"] == "ok" for r in records)
    groups: dict = {}
    for r in records:
        groups.setdefault((r["suite"], r["config"]["scale"]), []).append(r)
    for (suite_name, scale), group in groups.items():
        cells = [c for c in expand(apply_overrides(load_suite(suite_name), [f"scale={scale}"]))
                 if c.key in {r["key"] for r in group}]
        assert len(cells) == len(group), f"{len(group) - len(cells)} committed records no longer match a cell"
        assert count_done(cells, folder) == len(group)


def test_migration_rekeys_old_mnist_records_and_leaves_bert_records_alone(tmp_path):
    """A record keyed the old way (chunk and threads in its recipe) is re-keyed to its cell's key, with the
    settings in notes.run_settings; a second run changes nothing; prune-finetune records are untouched."""
    import json
    import shutil

    from benchmarks import migrate, paths, store
    from benchmarks.config import canonical_json, config_key
    from benchmarks.runner import count_done, expand

    new = json.loads(next((REPO / "published/mnist-cpu/correlations/records").glob("*.json")).read_text())
    old = json.loads(json.dumps(new))
    old["config"]["recipe"].update(chunk=25, threads=1)
    del old["notes"]["run_settings"]
    old.update(key=config_key(old["config"]), config_canonical=canonical_json(old["config"]))
    results = tmp_path / "mnist"
    store.write_record(results, old)
    assert migrate.rekey_run_settings(results) == (1, [])
    assert [p.name for p in paths.records_dir(results).iterdir()] == [f"{new['key']}.json"]
    assert store.read_record(paths.record_path(results, new["key"])) == new
    cells = [c for c in expand(load_suite("mnist-correlations")) if c.key == new["key"]]
    assert count_done(cells, results) == 1
    assert migrate.rekey_run_settings(results) == (0, [])

    bert = tmp_path / "bert"
    shutil.copytree(REPO / "tests/golden/records/minilm-smoke", bert)
    before = {p.name: p.read_bytes() for p in paths.records_dir(bert).iterdir()}
    assert migrate.rekey_run_settings(bert) == (0, [])
    assert {p.name: p.read_bytes() for p in paths.records_dir(bert).iterdir()} == before
