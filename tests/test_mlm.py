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
    """No head in the checkpoint: fitted once (dense), cached by weights hash, reused unchanged when pruned."""
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = bert_tiny.make_model(tmp_path / "tiny-nohead", mlm_head=False)
    ctx = _ctx(mirror, folder)
    task = TASKS.get("mlm")
    dense = task.run(ctx.model_ref, make_pruner(DENSE, 0), RECIPE, 0, ctx)
    assert dense.notes["mlm_head"] == "fitted"
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
    model, how = mlm.load_mlm_model(ctx.model_ref, _tokenizer(folder), RECIPE, mirror)
    assert how == "fitted"
    assert torch.equal(model.cls.predictions.transform.dense.weight, state["predictions.transform.dense.weight"])


def test_head_fitting_text_is_disjoint_from_eval_text(mirror):
    """The head is fitted on GLUE train sentences, none of which occur in the WikiText evaluation text."""
    sentences = mlm.head_fit_sentences(mirror, 1000)
    text, _ = mlm.load_wikitext(mirror)
    assert sentences and not any(s.strip() in text for s in sentences if len(s.strip()) > 20)


def test_missing_wikitext_is_data_missing(tmp_path):
    with pytest.raises(DataMissing, match="WikiText-2 raw test is not in the data mirror"):
        mlm.load_wikitext(tmp_path)
