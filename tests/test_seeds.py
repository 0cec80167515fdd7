"""Seeds on the zero-shot/probe protocols: the fit subset follows the cell seed (seed 0 keeps the published one),
the evaluation units do not, and rows whose masks ignore the seed reuse seed 0's embeddings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import bert_tiny  # noqa: E402

from benchmarks import predictions, store  # noqa: E402
from benchmarks.config import apply_overrides, load_suite  # noqa: E402
from benchmarks.data import load_glue  # noqa: E402
from benchmarks.runner import run_suite  # noqa: E402

pytestmark = pytest.mark.skipif(bert_tiny.real_mirror() is None, reason="needs the data mirror ../shared/data")
REPO = Path(__file__).resolve().parent.parent
ROWS = "rows=[dense, {method: global, sparsity: [0.5]}, {method: random, sparsity: [0.5]}]"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return bert_tiny.make_mirror(root / "mirror"), bert_tiny.make_model(root / "tiny", mlm_head=False)


def _suite(model: Path, seeds: str, rows: str = ROWS, tasks: str = "[sst2, qnli]"):
    return apply_overrides(load_suite("bert-lowsparsity"),
                           [f"model={model}", "scale=smoke", "protocol=zeroshot", f"tasks={tasks}", rows,
                            f"seeds={seeds}", "scales.smoke.fit_limit=24"])


def _records(results: Path) -> dict:
    records = store.load_records(results).records.values()
    return {(r["config"]["label"], r["config"]["task"], r["config"]["seed"]): r for r in records}


def test_fit_subset_follows_the_seed_and_seed_zero_keeps_the_fixed_one(world):
    """Seed 0 draws the subset every published record was fitted on (SUBSET_SEED); seed 1 another one."""
    from benchmarks.data import SUBSET_SEED
    from benchmarks.protocols.base import fit_subset

    pool = load_glue("sst2", "train", world[0])
    fixed = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(pool))[:24])
    assert fit_subset(pool, 24, 0).text_a == pool.subset(fixed).text_a
    assert fit_subset(pool, 24, 1).text_a != fit_subset(pool, 24, 0).text_a
    assert fit_subset(pool, 24, 1).text_a == fit_subset(pool, 24, 1).text_a  # deterministic
    assert fit_subset(pool, None, 3).text_a == pool.text_a  # no limit: the whole pool for every seed


def test_seeds_share_evaluation_units_but_not_the_fit(world, tmp_path, monkeypatch):
    """Across seeds the evaluated examples and labels are identical; the fitted centroids (scores) differ."""
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    results = tmp_path / "results"
    summary = run_suite(_suite(world[1], "[0, 1]"), results, world[0], progress=False)
    assert not summary.failed and summary.ok == 12
    recs = _records(results)
    for label in ("full-base", "full-0.5", "random-0.5"):
        for task in ("sst2", "qnli"):
            a = predictions.load(results, recs[label, task, 0])
            b = predictions.load(results, recs[label, task, 1])
            np.testing.assert_array_equal(a["label"], b["label"])
            assert recs[label, task, 0]["metrics"]["eval_examples"] == recs[label, task, 1]["metrics"]["eval_examples"]
        dense_0 = predictions.load(results, recs["full-base", "sst2", 0])["score"]
        dense_1 = predictions.load(results, recs["full-base", "sst2", 1])["score"]
        assert not np.array_equal(dense_0, dense_1)  # another fit subset, other centroids


def test_rows_whose_masks_ignore_the_seed_reuse_seed_zero_embeddings(world, tmp_path, monkeypatch):
    """Seed 1 of dense and global embeds only its new fit subset; the random row (new mask) embeds both."""
    import benchmarks.protocols.embedding as embedding

    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert run_suite(_suite(world[1], "[0]", tasks="[sst2]"), tmp_path / "r0", world[0], progress=False).ok == 3
    computed = []
    real = embedding.embed
    monkeypatch.setattr(embedding, "embed", lambda *a, **k: computed.append(1) or real(*a, **k))
    assert run_suite(_suite(world[1], "[1]", tasks="[sst2]"), tmp_path / "r1", world[0], progress=False).ok == 3
    # dense: fit; global: fit; random: fit + dev. Without the weights-keyed cache it would be 6.
    assert len(computed) == 4


# About 6x the largest move of a score between the two CPUs measured (1.6e-7); a real change (another pooling,
# another centroid) moves scores by far more than 1e-3.
SCORE_ATOL = 1e-6


def score_tolerances(score: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """How far accuracy and ROC-AUC may move when every score moves by at most ``SCORE_ATOL`` (pred is score > 0).

    A class can flip only where |score| <= SCORE_ATOL; a positive/negative pair can swap order only where the two
    scores lie within 2 * SCORE_ATOL. Each flip moves accuracy by 1/n and each swap moves AUC by 1/(P*N)."""
    near_boundary = int((np.abs(score) <= SCORE_ATOL).sum())
    positive, negative = score[label == 1], score[label == 0]
    near_pairs = int((np.abs(positive[:, None] - negative[None, :]) <= 2 * SCORE_ATOL).sum())
    float_slack = 1e-12  # the metric's own summation order
    return {"accuracy": near_boundary / len(score) + float_slack,
            "roc_auc": near_pairs / (len(positive) * len(negative)) + float_slack,
            "near_boundary": near_boundary}


def test_score_tolerances_count_flips_and_swaps():
    """One score on the boundary and one close pair give one flip and one swap; far-apart scores give none."""
    label = np.array([1, 0, 1, 0])
    tol = score_tolerances(np.array([0.5, -0.5, 2e-7, 0.5 + 1e-6], dtype=np.float64), label)
    assert tol["near_boundary"] == 1 and tol["accuracy"] == pytest.approx(0.25)
    assert tol["roc_auc"] == pytest.approx(1 / 4)  # the pair (0.5, 0.5 + 1e-6); 2e-7 vs -0.5 is far
    far = score_tolerances(np.array([1.0, -1.0, 2.0, -2.0]), label)
    assert far["accuracy"] < 1e-9 and far["roc_auc"] < 1e-9


@pytest.mark.slow
def test_seed_zero_reproduces_a_published_record_exactly(tmp_path, monkeypatch):
    """The dense SST-2 zero-shot cell on MiniLM-L6, rerun now, gives the committed record's numbers.

    Scores to ``SCORE_ATOL``: the record was written on an AMD EPYC (AVX2 kernels) and on an Intel Xeon with AVX-512
    the scores move by at most 1.6e-7 (measured 2026-12-05), so a bitwise comparison tests the CPU, not the code.
    Classes and metrics to the tolerance those score moves imply on the published scores (``score_tolerances``):
    classes exactly wherever a score is further than SCORE_ATOL from the boundary (all 872 here), ROC-AUC to the
    share of positive/negative pairs within 2 * SCORE_ATOL (2 of 190,032 pairs). Bit-for-bit reruns on one machine
    are tested by the determinism tests."""
    folder = REPO / "published" / "minilm-l6-bert-lowsparsity-zeroshot"
    published = [r for r in store.load_records(folder).records.values()
                 if r["config"]["task"] == "sst2" and r["config"]["method"] == "dense" and r["config"]["seed"] == 0]
    assert len(published) == 1
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    suite = apply_overrides(load_suite("bert-lowsparsity"),
                            ["model=minilm-l6", "protocol=zeroshot", "scale=zeroshot", "tasks=[sst2]", "rows=[dense]"])
    results = tmp_path / "results"
    assert run_suite(suite, results, bert_tiny.real_mirror(), progress=False).ok == 1
    (record,) = store.load_records(results).records.values()
    assert record["key"] == published[0]["key"]
    mine, theirs = predictions.load(results, record), predictions.load(folder, published[0])
    np.testing.assert_array_equal(mine["label"], theirs["label"])
    np.testing.assert_allclose(mine["score"], theirs["score"], rtol=0, atol=SCORE_ATOL)
    far = np.abs(theirs["score"]) > SCORE_ATOL
    np.testing.assert_array_equal(mine["pred"][far], theirs["pred"][far])
    tolerance = score_tolerances(theirs["score"].astype(np.float64), theirs["label"])
    assert record["metrics"].keys() == published[0]["metrics"].keys()
    for name, value in published[0]["metrics"].items():
        if isinstance(value, float):
            assert record["metrics"][name] == pytest.approx(value, abs=tolerance.get(name, SCORE_ATOL)), name
        else:
            assert record["metrics"][name] == value, name


def test_weights_digest_follows_the_embedding_weights_only(world):
    """The digest changes with any weight the embeddings read, not with the pooler (unused, random when absent)."""
    import torch
    from transformers import AutoModel

    from benchmarks.protocols.embedding import weights_digest

    model = AutoModel.from_pretrained(world[1])
    digest = weights_digest(model)
    with torch.no_grad():
        model.pooler.dense.weight.add_(1.0)
        assert weights_digest(model) == digest
        model.encoder.layer[0].attention.self.query.weight[0, 0] = 0.0
    assert weights_digest(model) != digest
