"""Protocols (finetune / zeroshot / probe), drift to dense, per-example arrays, offline MNLI, committed keys.

Numbers on the tiny random BERT are recomputed here directly (one sentence at a time through
transformers, then numpy / scikit-learn), so each protocol is checked against an independent
computation on fixed weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bert_tiny  # noqa: E402

from benchmarks import predictions, store  # noqa: E402
from benchmarks.config import apply_overrides, load_suite  # noqa: E402
from benchmarks.data import load_glue  # noqa: E402
from benchmarks.errors import DataMissing, UserError  # noqa: E402
from benchmarks.protocols import embed as E  # noqa: E402
from benchmarks.runner import count_done, expand, run_suite  # noqa: E402

pytestmark = pytest.mark.skipif(bert_tiny.real_mirror() is None, reason="needs the data mirror ../shared/data")
REPO = Path(__file__).resolve().parent.parent
MNLI_FILES = ("glue/MNLI-subset/dev_matched_1k.tsv", "glue/MNLI-subset/dev_mismatched_1k.tsv")
ROWS = "rows=[dense, {method: global, sparsity: [0.5]}]"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny mirror (with 40-row MNLI samples) and a tiny BERT with an MLM head."""
    root = tmp_path_factory.mktemp("protocols")
    mirror = bert_tiny.make_mirror(root / "mirror")
    for rel in MNLI_FILES:
        with open(bert_tiny.real_mirror() / rel, "rb") as fh:
            (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
            (mirror / rel).write_bytes(b"".join(line for _, line in zip(range(40), fh)))
    model = bert_tiny.make_model(root / "tiny", mlm_head=True)
    return mirror, model


def _run(world, tmp_path, monkeypatch, protocol: str, tasks: str, extra=()) -> tuple[Path, dict]:
    mirror, model = world
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    suite = apply_overrides(load_suite("bert-lowsparsity"),
                            [f"model={model}", "scale=smoke", f"protocol={protocol}", f"tasks={tasks}", ROWS,
                             "scales.smoke.fit_limit=24", *extra])
    results = tmp_path / "results"
    summary = run_suite(suite, results, mirror, progress=False)
    assert not summary.failed, summary.failed
    records = store.load_records(results).records
    return results, {(r["config"]["label"], r["config"]["task"]): r for r in records.values()}


def _direct_embeddings(model_dir: Path, texts: list[str], max_length: int = 32) -> np.ndarray:
    """Mean-pooled last hidden states, one text at a time (no padding), straight from transformers."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(model(**enc)[0][0].mean(0).numpy())
    return np.asarray(out, np.float64)


def _fit_and_eval(mirror: Path, task: str, fit_limit: int):
    """The fixed fit subset and the dev split, as the task draws them."""
    from benchmarks.tasks.glue import SUBSET_SEED

    train = load_glue(task, "train", mirror)
    order = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(train))[:fit_limit])
    return train.subset(order), load_glue(task, "dev", mirror)


def _arrays(results: Path, record: dict) -> dict:
    arrays = predictions.load(results, record)
    assert arrays is not None, record.get("predictions")
    return arrays


def test_zeroshot_matches_a_direct_computation(world, tmp_path, monkeypatch):
    """SST-2 centroids, the MRPC threshold and STS-B cosine equal numpy on unbatched embeddings."""
    from scipy import stats

    mirror, model = world
    results, recs = _run(world, tmp_path, monkeypatch, "zeroshot", "[sst2, mrpc, stsb]")
    # SST-2: nearest class centroid by cosine.
    fit, dev = _fit_and_eval(mirror, "sst2", 24)
    cents = E.centroids(_direct_embeddings(model, fit.text_a), fit.labels, 2)
    sims = E.normalize(_direct_embeddings(model, dev.text_a)) @ cents.T
    got = _arrays(results, recs["full-base", "sst2"])
    np.testing.assert_allclose(got["score"], sims[:, 1] - sims[:, 0], atol=1e-5)
    clear = np.abs(sims[:, 1] - sims[:, 0]) > 1e-4  # batching moves floats by ~1e-7; near-ties may flip
    assert clear.sum() >= len(clear) // 2
    np.testing.assert_array_equal(got["pred"][clear], sims.argmax(1)[clear])
    np.testing.assert_array_equal(got["label"], dev.labels)
    assert recs["full-base", "sst2"]["metrics"]["accuracy"] == pytest.approx(np.mean(got["pred"] == dev.labels))
    # MRPC: one threshold on the pair cosine, chosen on the fit subset; ROC AUC from the cosine.
    fit, dev = _fit_and_eval(mirror, "mrpc", 24)
    fit_cos = E.row_cosine(_direct_embeddings(model, fit.text_a), _direct_embeddings(model, fit.text_b))
    cos = E.row_cosine(_direct_embeddings(model, dev.text_a), _direct_embeddings(model, dev.text_b))
    accs = {t: np.mean((fit_cos >= t) == (fit.labels == 1)) for t in np.concatenate([fit_cos - 1e-9, [2.0]])}
    best = max(accs.values())
    got = _arrays(results, recs["full-base", "mrpc"])
    np.testing.assert_allclose(got["score"], cos, atol=1e-5)
    from sklearn.metrics import roc_auc_score

    metrics = recs["full-base", "mrpc"]["metrics"]
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(dev.labels, got["score"]), abs=1e-12)
    threshold = E.best_threshold(fit_cos, fit.labels)
    assert np.mean((fit_cos >= threshold) == (fit.labels == 1)) == pytest.approx(best)
    # STS-B: cosine against the gold score.
    fit, dev = _fit_and_eval(mirror, "stsb", 24)
    cos = E.row_cosine(_direct_embeddings(model, dev.text_a), _direct_embeddings(model, dev.text_b))
    got = _arrays(results, recs["full-base", "stsb"])
    np.testing.assert_allclose(got["pred"], cos, atol=1e-5)
    pearson = stats.pearsonr(cos, dev.labels)[0]
    assert recs["full-base", "stsb"]["metrics"]["pearson"] == pytest.approx(pearson, abs=1e-4)
    assert recs["full-base", "stsb"]["metrics"]["fit_examples"] == 0


def test_probe_matches_scikit_learn(world, tmp_path, monkeypatch):
    """The probe is StandardScaler + LogisticRegression on [u, v, |u-v|, u*v] (pairs) or u, fitted on the fit subset."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mirror, model = world
    results, recs = _run(world, tmp_path, monkeypatch, "probe", "[mrpc]")
    fit, dev = _fit_and_eval(mirror, "mrpc", 24)
    u, v = _direct_embeddings(model, fit.text_a), _direct_embeddings(model, fit.text_b)
    x = np.concatenate([u, v, np.abs(u - v), u * v], 1)
    du, dv = _direct_embeddings(model, dev.text_a), _direct_embeddings(model, dev.text_b)
    xd = np.concatenate([du, dv, np.abs(du - dv), du * dv], 1)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=0)).fit(x, fit.labels)
    got = _arrays(results, recs["full-base", "mrpc"])
    np.testing.assert_allclose(got["score"], clf.decision_function(xd), atol=1e-3)
    clear = np.abs(clf.decision_function(xd)) > 1e-2
    assert clear.sum() >= len(clear) // 2
    np.testing.assert_array_equal(got["pred"][clear], clf.predict(xd)[clear])
    assert recs["full-base", "mrpc"]["notes"]["protocol"] == "probe"


def test_drift_is_one_for_dense_and_below_one_when_pruned(world, tmp_path, monkeypatch):
    results, recs = _run(world, tmp_path, monkeypatch, "zeroshot", "[sst2, mlm]")
    for task in ("sst2", "mlm"):
        dense, pruned = recs["full-base", task], recs["full-0.5", task]
        assert dense["metrics"]["drift_cosine"] == pytest.approx(1.0, abs=1e-6)
        assert dense["metrics"]["drift_cka"] == pytest.approx(1.0, abs=1e-6)
        assert pruned["metrics"]["drift_cosine"] < 1.0 - 1e-6
        drift = _arrays(results, pruned)["drift"]
        assert drift.dtype == np.float32
        assert pruned["metrics"]["drift_cosine"] == pytest.approx(float(drift.astype(np.float64).mean()), abs=1e-6)
    # Drift against an independent dense computation: cos(pruned, dense) per sentence.
    mirror, model = world
    dev = load_glue("sst2", "dev", mirror)
    from transformers import AutoModel

    from benchmarks.kinds.prune_finetune import make_pruner

    pruned_model = AutoModel.from_pretrained(model).eval()
    make_pruner(recs["full-0.5", "sst2"]["config"], 0)(pruned_model)
    tok = bert_tiny._tokenizer()
    with torch.no_grad():
        pruned = np.asarray([pruned_model(**tok(t, truncation=True, max_length=32, return_tensors="pt"))[0][0]
                             .mean(0).numpy() for t in dev.text_a], np.float64)
    expected = E.row_cosine(pruned, _direct_embeddings(model, dev.text_a))
    np.testing.assert_allclose(_arrays(results, recs["full-0.5", "sst2"])["drift"], expected, atol=1e-5)


def test_records_carry_what_reports_need(world, tmp_path, monkeypatch):
    """Every cell names its arrays (written before the record), protocol, headline, chance and collapse flag."""
    mirror, _ = world
    results, recs = _run(world, tmp_path, monkeypatch, "zeroshot", "[mrpc, qnli, mnli, mlm]")
    for (label, task), record in recs.items():
        assert record["status"] == "ok", (label, task, record["error"])
        notes, metrics = record["notes"], record["metrics"]
        assert record["config"]["protocol"] == notes["protocol"] == "zeroshot"
        assert record["config"]["pooling"] == notes["pooling"] == "mean"
        assert notes["headline"] in metrics and isinstance(notes["higher_is_better"], bool)
        assert (results / "records" / record["predictions"]).is_file()
        assert "_arrays" not in record
        arrays = _arrays(results, record)
        assert set(arrays) <= {p + n for p in ("", "mismatched_") for n in predictions.ARRAY_NAMES}
        if task == "mlm":
            assert len(arrays["mlm_tokens"]) == metrics["eval_blocks"] == len(arrays["drift"])
            assert int(arrays["mlm_tokens"].sum()) == metrics["masked_tokens"]
            continue
        prefixes = ("", "mismatched_") if task == "mnli" else ("",)
        assert sum(len(arrays[p + "pred"]) for p in prefixes) == metrics["eval_examples"]
        for p in prefixes:
            assert len(arrays[p + "label"]) == len(arrays[p + "pred"]) == len(arrays[p + "drift"])
            assert metrics[p + "collapsed"] == predictions.collapsed(arrays[p + "pred"], regression=False)
            values, counts = np.unique(arrays[p + "label"], return_counts=True)
            assert notes["chance"][p + "accuracy"] == pytest.approx(counts.max() / counts.sum())
    assert "1k sample of MNLI dev" in recs["full-base", "mnli"]["notes"]["data_split"]
    # MNLI: nearest centroid of [|u-v|, u*v], fitted on fixed halves of both samples, each other half evaluated.
    from benchmarks.data import Examples
    from benchmarks.tasks.glue import SUBSET_SEED

    halves = []
    for split in ("dev_matched", "dev_mismatched"):
        dev = load_glue("mnli", split, mirror)
        order = np.random.default_rng(SUBSET_SEED).permutation(len(dev))
        halves.append((dev.subset(order[:len(dev) // 2]), dev.subset(np.sort(order[len(dev) // 2:]))))
    fit = Examples.concat([h[0] for h in halves])
    fit = fit.subset(np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(fit))[:24]))
    emb = lambda texts: _direct_embeddings(world[1], texts)  # noqa: E731
    cents = E.centroids(E.pair_features(emb(fit.text_a), emb(fit.text_b)), fit.labels, 3)
    arrays = _arrays(results, recs["full-base", "mnli"])
    for prefix, (_, evaluated) in zip(("", "mismatched_"), halves):
        sims = E.normalize(E.pair_features(emb(evaluated.text_a), emb(evaluated.text_b))) @ cents.T
        top2 = np.sort(sims, 1)
        clear = top2[:, -1] - top2[:, -2] > 1e-4
        assert clear.sum() >= len(clear) // 2  # the comparison covers most examples
        np.testing.assert_array_equal(arrays[prefix + "label"], evaluated.labels)
        np.testing.assert_array_equal(arrays[prefix + "pred"][clear], sims.argmax(1)[clear])
    assert "dev-split" in recs["full-base", "qnli"]["notes"]["data_split"]


def test_finetune_records_keep_their_keys_and_gain_arrays(world, tmp_path, monkeypatch):
    """Fine-tuned cells have no protocol in their config (old keys hold) but name it and carry arrays."""
    results, recs = _run(world, tmp_path, monkeypatch, "finetune", "[mrpc]",
                         extra=["scales.smoke.train_limit=16", "scales.smoke.eval_limit=16",
                                "scales.smoke.drift_limit=8"])
    record = recs["full-0.5", "mrpc"]
    assert "protocol" not in record["config"] and record["notes"]["protocol"] == "finetune"
    arrays = _arrays(results, record)
    assert {"pred", "label", "score", "drift"} <= set(arrays) and len(arrays["pred"]) == 16
    assert np.all(arrays["drift"] < 1.0) and np.all(_arrays(results, recs["full-base", "mrpc"])["drift"] > 1 - 1e-6)
    assert record["metrics"]["drift_examples"] == len(arrays["drift"]) == 8  # a fixed sample of the 16
    assert record["metrics"]["accuracy"] == pytest.approx(np.mean(arrays["pred"] == arrays["label"]))


@pytest.mark.parametrize("with_pooler", [True, False])
def test_copied_classifier_equals_a_fresh_from_pretrained(tmp_path, with_pooler):
    """Loading once and copying per cell gives the weights and RNG state from_pretrained gives (a checkpoint
    without a pooler takes the from_pretrained path, equal by construction)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoModelForSequenceClassification

    from benchmarks.context import RunContext
    from benchmarks.models import resolve_model
    from benchmarks.protocols.finetune import classifier

    model = bert_tiny.make_model(tmp_path / "tiny", mlm_head=not with_pooler)
    ctx = RunContext(None, tmp_path, Accelerator(cpu=True), resolve_model(str(model)))
    classifier(ctx.model_ref, 2, ctx, 1)  # fills the cache with a model drawn from another seed
    for seed in (5, 6):
        set_seed(seed)
        fresh = AutoModelForSequenceClassification.from_pretrained(model, num_labels=2)
        after_fresh = torch.get_rng_state()
        set_seed(seed)
        copied = classifier(ctx.model_ref, 2, ctx, seed)
        assert torch.equal(torch.get_rng_state(), after_fresh)
        assert not copied.training
        for (name, a), b in zip(fresh.state_dict().items(), copied.state_dict().values()):
            assert torch.equal(a, b), name


def test_protocol_keys_and_bad_values():
    base = apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", "scale=cpu"])
    zero = apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", "scale=zeroshot", "protocol=zeroshot"])
    assert all("protocol" not in c.config for c in expand(base))
    assert {c.config["protocol"] for c in expand(zero)} == {"zeroshot"}
    assert not {c.key for c in expand(base)} & {c.key for c in expand(zero)}
    cls = apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", "scale=zeroshot", "protocol=zeroshot",
                                                           "pooling=cls"])
    assert not {c.key for c in expand(cls)} & {c.key for c in expand(zero)}
    for overrides, message in ((["protocol=fewshot"], "unknown protocol"), (["pooling=max"], "unknown pooling"),
                               (["pooling=cls"], "pooling applies"), (["scale=zeroshot"], "sized for protocol")):
        with pytest.raises(UserError, match=message):
            expand(apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", *overrides]))
    with pytest.raises(UserError, match="apply to prune-finetune suites"):
        apply_overrides(load_suite("mnist-ci"), ["protocol=zeroshot"])


def test_mnli_offline_reads_the_1k_dev_samples():
    mirror = bert_tiny.real_mirror()
    matched = load_glue("mnli", "dev_matched", mirror)
    mismatched = load_glue("mnli", "dev_mismatched", mirror)
    assert len(matched) == len(mismatched) == 1000
    assert np.bincount(matched.labels).tolist() == [373, 311, 316]  # the mirror README's counts
    assert matched.text_a[0].startswith("In Temple Bar , the bookshop")
    assert list(matched.source) == ["glue/MNLI-subset/dev_matched_1k.tsv"]
    with pytest.raises(DataMissing):
        load_glue("mnli", "train", mirror)


def test_mnli_subset_malformed_label_is_bad_input(tmp_path):
    bad = tmp_path / "glue" / "MNLI-subset" / "dev_matched_1k.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("maybe\ta premise\ta hypothesis\n")
    with pytest.raises(UserError, match="malformed MNLI sample"):
        load_glue("mnli", "dev_matched", tmp_path)


# (task, version) of committed records a newer task version replaced; reports leave them out until rerun.
# MLM 1: the fitted head of 2,000 sentences without a held-out stop or baselines (benchmarks/tasks/mlm.py).
SUPERSEDED = {("mlm", "1")}


def _committed_results() -> list[Path]:
    """Committed results folders holding prune-finetune records."""
    return sorted({p.parent.parent for root in ("published", "docs/examples")
                   for p in (REPO / root).glob("**/records/*.json") if '"prune-finetune"' in p.read_text()})


@pytest.mark.parametrize("folder", _committed_results(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_committed_record_is_still_found_as_done(folder):
    """Re-expanding the suite each committed prune-finetune record came from (with the seeds the folder holds)
    finds it done (same key); records of a superseded task version (SUPERSEDED) are kept but never match."""
    from benchmarks.registry import TASKS

    records = [json.loads(p.read_text()) for p in sorted((folder / "records").glob("*.json"))]
    ours = [r for r in records if r["config"].get("kind") == "prune-finetune" and r["status"] == "ok"]
    assert ours
    old = [r for r in ours if r["config"]["task_version"] != TASKS.get(r["config"]["task"]).version]
    assert {(r["config"]["task"], r["config"]["task_version"]) for r in old} <= SUPERSEDED
    ours = [r for r in ours if r not in old]
    seeds = sorted({r["config"]["seed"] for r in ours})
    groups: dict = {}
    for r in ours:
        cfg = r["config"]
        overrides = (f"model={cfg['model']['model']}", f"scale={cfg['scale']}",
                     f"protocol={cfg.get('protocol', 'finetune')}", f"pooling={cfg.get('pooling', 'mean')}",
                     f"seeds={seeds}")
        groups.setdefault((r["suite"], overrides), []).append(r)
    for (suite_name, overrides), group in groups.items():
        suite = apply_overrides(load_suite(suite_name), list(overrides))
        cells = [c for c in expand(suite) if c.key in {r["key"] for r in group}]
        assert len(cells) == len(group), f"{len(group) - len(cells)} committed records no longer match a cell"
        assert count_done(cells, folder) == len(group)


def test_probe_reuses_the_zeroshot_embeddings(world, tmp_path, monkeypatch):
    """A probe run after a zero-shot run of the same rows reads every embedding from the cache."""
    import benchmarks.protocols.embedding as embedding

    _run(world, tmp_path / "zero", monkeypatch, "zeroshot", "[mrpc]")
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "zero" / "cache"))
    computed = []
    real = embedding.embed
    monkeypatch.setattr(embedding, "embed", lambda *a, **k: computed.append(1) or real(*a, **k))
    suite = apply_overrides(load_suite("bert-lowsparsity"),
                            [f"model={world[1]}", "scale=smoke", "protocol=probe", "tasks=[mrpc]", ROWS,
                             "scales.smoke.fit_limit=24"])
    assert run_suite(suite, tmp_path / "probe", world[0], progress=False).ok == 2
    assert computed == []


def test_embedding_helpers_on_small_inputs():
    """Centroids, thresholds, CKA and AUC on hand-checkable inputs."""
    from sklearn.metrics import roc_auc_score

    x = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    y = np.array([0, 0, 1, 1])
    pred, _ = E.nearest_centroid(x, E.centroids(x, y, 2))
    assert pred.tolist() == [0, 0, 1, 1]
    assert E.best_threshold(np.array([0.1, 0.2, 0.8, 0.9]), y) == pytest.approx(0.5)
    assert E.linear_cka(x, 3 * x) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    s, labels = rng.normal(size=50).round(1), rng.integers(0, 2, 50)  # rounding makes ties
    assert E.roc_auc(s, labels) == pytest.approx(roc_auc_score(labels, s))
