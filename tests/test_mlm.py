"""The MLM task: correct numbers on a checkpoint with its own head, fixed masks, fitted-head caching."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bert_tiny  # noqa: E402

from benchmarks.context import RunContext  # noqa: E402
from benchmarks.errors import DataMissing  # noqa: E402
from benchmarks.kinds.prune_finetune import make_pruner  # noqa: E402
from benchmarks.models import resolve_model  # noqa: E402
from benchmarks.registry import TASKS  # noqa: E402
from benchmarks.tasks import mlm  # noqa: E402

pytestmark = pytest.mark.skipif(bert_tiny.real_mirror() is None, reason="needs the data mirror ../shared/data")
RECIPE = {"mlm_block_size": 32, "mlm_eval_blocks": 12, "eval_batch_size": 8, "max_length": 32,
          "mlm_head_sentences": 48, "mlm_head_epochs": 1, "mlm_head_lr": 1e-3}
DENSE = {"method": "dense", "sparsity": None, "options": {}}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return bert_tiny.make_mirror(tmp_path_factory.mktemp("mirror"))


def _ctx(data_dir: Path, model_dir: Path) -> RunContext:
    from accelerate import Accelerator

    return RunContext(data_dir, data_dir / "results", Accelerator(cpu=True), resolve_model(str(model_dir)))


def test_pretrained_head_matches_hf_masked_lm_loss(tmp_path, mirror):
    """On a BertForMaskedLM, mlm_ppl is exp(HF's own masked-LM loss) and accuracy its argmax hit rate."""
    from transformers import BertForMaskedLM

    folder = bert_tiny.make_model(tmp_path / "tiny-mlm", mlm_head=True)
    ctx = _ctx(mirror, folder)
    task = TASKS.get("mlm")
    result = task.run(ctx.model_ref, make_pruner(DENSE, 0), RECIPE, 0, ctx)
    assert result.notes["mlm_head"] == "pretrained"
    inputs, labels, _ = task.eval_set(_tokenizer(folder), RECIPE, ctx)
    model = BertForMaskedLM.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(input_ids=inputs, labels=labels)
    masked = labels != -100
    accuracy = (out.logits.argmax(-1)[masked] == labels[masked]).float().mean().item()
    assert result.metrics["mlm_ppl"] == pytest.approx(math.exp(out.loss.item()), rel=1e-4)
    assert result.metrics["mlm_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert result.metrics["masked_tokens"] == int(masked.sum())
    assert result.metrics["eval_blocks"] == RECIPE["mlm_eval_blocks"]


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_eval_masks_identical_across_calls_and_bert_proportions(tmp_path, mirror):
    """Two independent runs see the same blocks and masked positions; ~15% masked, 80/10/10 split."""
    folder = bert_tiny.make_model(tmp_path / "tiny-mlm", mlm_head=True)
    recipe = {**RECIPE, "mlm_eval_blocks": None}
    task = TASKS.get("mlm")
    a_in, a_lab, _ = task.eval_set(_tokenizer(folder), recipe, _ctx(mirror, folder))
    b_in, b_lab, _ = task.eval_set(_tokenizer(folder), recipe, _ctx(mirror, folder))
    assert torch.equal(a_in, b_in) and torch.equal(a_lab, b_lab)
    masked = a_lab != -100
    tok = _tokenizer(folder)
    assert masked.sum() > 300
    assert 0.12 < masked.float().mean().item() < 0.18
    assert not masked[:, 0].any() and not masked[:, -1].any()  # [CLS]/[SEP] never masked
    share_mask = (a_in[masked] == tok.mask_token_id).float().mean().item()
    share_same = (a_in[masked] == a_lab[masked]).float().mean().item()
    assert 0.72 < share_mask < 0.88 and 0.05 < share_same < 0.16


def test_fitted_head_is_cached_and_reused_for_pruned_rows(tmp_path, mirror, monkeypatch):
    """No head in the checkpoint: fitted once per seed (dense), cached, reused unchanged when pruned."""
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = bert_tiny.make_model(tmp_path / "tiny-nohead", mlm_head=False)
    ctx = _ctx(mirror, folder)
    task = TASKS.get("mlm")
    dense = task.run(ctx.model_ref, make_pruner(DENSE, 0), RECIPE, 0, ctx)
    assert dense.notes["mlm_head"] == "fitted"
    fit = dense.notes["mlm_head_fit"]
    assert fit["sentences"] + fit["heldout_sentences"] == min(RECIPE["mlm_head_sentences"], fit["available_sentences"])
    assert fit["available_sentences"] == len(mlm.head_fit_sentences(mirror))
    assert fit["heldout_sentences"] >= 1 and fit["epochs_run"] == 1 and len(fit["heldout_losses"]) >= 2
    assert fit["best_heldout_loss"] == min(fit["heldout_losses"])
    cached = mlm.head_cache_path(ctx.model_ref, RECIPE)
    assert cached.is_file() and cached.parent.parent == tmp_path / "cache"
    state = torch.load(cached, weights_only=True)
    assert "predictions.bias" in state and "predictions.transform.dense.weight" in state

    def refit(*_a, **_k):
        raise AssertionError("the head must be fitted only once per model and recipe")

    monkeypatch.setattr(mlm, "fit_head", refit)
    row = {"method": "global", "sparsity": 0.5, "options": {}}
    pruned = task.run(ctx.model_ref, make_pruner(row, 0), RECIPE, 0, ctx)
    assert pruned.notes["mlm_head"] == "fitted"
    assert pruned.sparsity_before["global"] == pytest.approx(0.5, abs=1e-6)
    assert pruned.sparsity_after["zeros"] == pruned.sparsity_before["zeros"]
    assert pruned.notes["mlm_head_fit"] == fit  # the cached head's log, unchanged
    model, how, _ = mlm.load_mlm_model(ctx.model_ref, _tokenizer(folder), RECIPE, mirror)
    assert how == "fitted"
    assert torch.equal(model.cls.predictions.transform.dense.weight, state["predictions.transform.dense.weight"])
    assert not mlm.head_cache_path(ctx.model_ref, RECIPE, seed=1).is_file()  # another seed, another head


def test_fitted_head_does_not_depend_on_the_process_random_state(tmp_path, mirror, monkeypatch):
    """Fitted from scratch twice (empty caches) after different draws from torch's global generator: the same
    head, and the global generator is left as it was (the head's random start comes from the seed)."""
    folder = bert_tiny.make_model(tmp_path / "tiny-nohead", mlm_head=False)
    ctx = _ctx(mirror, folder)
    heads = []
    for attempt in range(2):
        monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / f"cache{attempt}"))
        torch.manual_seed(100 + attempt)
        before = torch.get_rng_state()
        model, how, _ = mlm.load_mlm_model(ctx.model_ref, _tokenizer(folder), RECIPE, mirror, seed=0)
        assert how == "fitted" and torch.equal(torch.get_rng_state(), before)
        heads.append(model.cls.predictions.transform.dense.weight.detach().clone())
    assert torch.equal(heads[0], heads[1])


def test_fitted_head_varies_with_the_seed_and_lowers_heldout_loss(tmp_path, mirror, monkeypatch):
    """Seed 1 fits its own head (other masks, held-out split and order); the kept state beats the start."""
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = bert_tiny.make_model(tmp_path / "tiny-nohead", mlm_head=False)
    ctx = _ctx(mirror, folder)
    # All of the tiny mirror's 237 sentences: 12 held out (about 35 masked positions), enough for the held-out
    # loss to tell a fitted head from its start (2 held-out sentences, 7 positions, did not for seed 1).
    recipe = {**RECIPE, "mlm_head_epochs": 3, "mlm_head_lr": 1e-2, "mlm_head_sentences": 400}
    heads = [mlm.load_mlm_model(ctx.model_ref, _tokenizer(folder), recipe, mirror, seed=seed) for seed in (0, 1)]
    weights = [m.cls.predictions.transform.dense.weight for m, _, _ in heads]
    assert not torch.equal(weights[0], weights[1])
    for _, _, log in heads:
        assert log["best_heldout_loss"] < log["heldout_losses"][0]
    again = mlm.load_mlm_model(ctx.model_ref, _tokenizer(folder), recipe, mirror, seed=1)[0]
    assert torch.equal(again.cls.predictions.transform.dense.weight, weights[1])  # read back from the cache


def test_baselines_per_masked_position(tmp_path, mirror, monkeypatch):
    """Most-frequent-token and add-one unigram baselines: counted on the fitting text, one value per masked
    position in block order, summarised in the notes; the same for every row and seed."""
    from collections import Counter

    import numpy as np

    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = bert_tiny.make_model(tmp_path / "tiny-mlm", mlm_head=True)
    ctx = _ctx(mirror, folder)
    task = TASKS.get("mlm")
    result = task.run(ctx.model_ref, make_pruner(DENSE, 0), RECIPE, 0, ctx)
    tok = _tokenizer(folder)
    counts = Counter(i for row in tok(mlm.head_fit_sentences(mirror), add_special_tokens=False, truncation=True,
                                      max_length=RECIPE["max_length"])["input_ids"] for i in row)
    top = counts.most_common(1)[0][0]
    total = sum(counts.values()) + len(tok) - len(set(tok.all_special_ids))
    _, labels, _ = task.eval_set(tok, RECIPE, ctx)
    targets = labels[labels != -100].numpy()
    arrays = result.arrays
    np.testing.assert_array_equal(arrays["baseline_mft_correct"], targets == top)
    expected = np.log([(counts[t] + 1) / total for t in targets])
    np.testing.assert_allclose(arrays["baseline_unigram_logp"], expected, rtol=1e-5)
    assert len(targets) == int(arrays["mlm_tokens"].sum()) == result.metrics["masked_tokens"]
    summary = result.notes["mlm_baselines"]
    assert summary["most_frequent_token"] == tok.convert_ids_to_tokens(top)
    assert summary["mft_accuracy"] == pytest.approx(np.mean(targets == top))
    assert summary["unigram_ppl"] == pytest.approx(np.exp(-expected.mean()), rel=1e-5)
    other = task.run(ctx.model_ref, make_pruner({"method": "random", "sparsity": 0.5, "options": {}}, 1), RECIPE, 1,
                     ctx)
    for name in ("baseline_mft_correct", "baseline_unigram_logp"):
        np.testing.assert_array_equal(other.arrays[name], arrays[name])


def test_head_fitting_text_is_disjoint_from_eval_text(mirror):
    """The head is fitted on GLUE text no task evaluates, none of which occurs in the WikiText evaluation text."""
    from types import SimpleNamespace

    from benchmarks.data import load_glue
    from benchmarks.recipes import GlueRecipe
    from benchmarks.tasks.glue import fit_pool

    sentences = mlm.head_fit_sentences(mirror)
    assert set(load_glue("sst2", "train", mirror).text_a) <= set(sentences)
    qnli = fit_pool("qnli", mirror)  # the mirror has no QNLI train: the fit half of dev, not the evaluated half
    assert set(qnli.text_a) <= set(sentences)
    evaluated = TASKS.get("qnli").splits(SimpleNamespace(data_dir=mirror, cache=None), GlueRecipe())[1][0][1]
    assert len(evaluated) and not set(zip(evaluated.text_a, evaluated.text_b)) & set(zip(qnli.text_a, qnli.text_b))
    text, _ = mlm.load_wikitext(mirror)
    assert sentences and not any(s.strip() in text for s in sentences if len(s.strip()) > 20)


def test_missing_wikitext_is_data_missing(tmp_path):
    with pytest.raises(DataMissing, match="WikiText-2 raw test is not in the data mirror"):
        mlm.load_wikitext(tmp_path)
