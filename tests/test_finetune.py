"""The fine-tune loop's account (tokens, padding, GFLOP/s, seconds outside the steps), bf16 autocast, and the
paper's recipe at the `full` scale (#22 item 2, #24 item 1). Tiny BERT, tiny mirror: seconds per test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from benchmarks.config import apply_overrides, load_suite
from benchmarks.data import load_glue
from benchmarks.protocols import finetune as F
from benchmarks.recipes import GlueRecipe
from benchmarks.runner import expand

RECIPE = GlueRecipe(lr=1e-3, batch_size=8, epochs=2, max_length=32, group_by_length=True)


def _train(tiny_bert, tiny_mirror_session, recipe: GlueRecipe, seed: int = 0):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    train = load_glue("sst2", "train", tiny_mirror_session)
    account = F.finetune(model, tokenizer, train, recipe, seed, None, Accelerator(cpu=True), regression=False)
    return model, tokenizer, train, account


def test_account_counts_what_the_batches_held(tiny_bert, tiny_mirror_session):
    """Tokens and padded tokens in the account equal the attention masks of the very batches the loader gives."""
    model, tokenizer, train, account = _train(tiny_bert, tiny_mirror_session, RECIPE)
    loader = F._train_loader(F.encode(tokenizer, train, RECIPE.max_length), tokenizer, RECIPE, 0, False)
    masks = [batch["attention_mask"] for _ in range(int(RECIPE.epochs)) for batch in loader]
    real = sum(int(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    assert account["steps"] == len(masks)
    assert (account["tokens"], account["padded_tokens"]) == (real, total - real)
    assert account["padded_share"] == pytest.approx((total - real) / total, abs=1e-4)
    weights = sum(p.numel() for n, p in model.named_parameters()
                  if n.startswith("bert.encoder") and n.endswith("weight") and p.dim() == 2)
    assert account["linear_weights"] == weights
    assert account["gflop"] == pytest.approx(6 * weights * total / 1e9, abs=0.01)
    assert account["gflops_per_s"] > 0 and account["step_seconds"] > 0


def test_length_grouped_batches_pad_less_and_are_seeded(tiny_bert, tiny_mirror_session):
    """Length grouping holds fewer padded tokens than shuffled batches, and the same seed gives the same batches.

    transformers' LengthGroupedSampler sorts megabatches of min(n // (4 x batch), 50) batches: batch 4 on 48 rows
    sorts groups of 12 (at batch 8 the megabatch is one batch and nothing is grouped)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    data = F.encode(tokenizer, load_glue("sst2", "train", tiny_mirror_session), 32)

    def padding(recipe, seed):
        masks = [b["attention_mask"] for b in F._train_loader(data, tokenizer, recipe, seed, False)]
        return sum(m.numel() - int(m.sum()) for m in masks), [m.sum(1).tolist() for m in masks]

    recipe = dataclasses.replace(RECIPE, batch_size=4)
    grouped, order = padding(recipe, 3)
    shuffled, _ = padding(dataclasses.replace(recipe, group_by_length=False), 3)
    assert grouped < shuffled
    assert padding(recipe, 3)[1] == order and padding(recipe, 4)[1] != order


def test_bf16_trains_and_differs_from_fp32_only_slightly(tiny_bert, tiny_mirror_session):
    dev = load_glue("sst2", "dev", tiny_mirror_session)
    logits = {}
    for precision in ("fp32", "bf16"):
        recipe = dataclasses.replace(RECIPE, precision=precision)
        model, tokenizer, _, account = _train(tiny_bert, tiny_mirror_session, recipe)
        assert account["precision"] == precision
        logits[precision] = F.predict_logits(model, tokenizer, dev, recipe, Accelerator(cpu=True), False)
    gap = np.abs(logits["bf16"] - logits["fp32"])
    scale = np.abs(logits["fp32"]).max()
    assert 0 < gap.max() < 0.1 * scale  # bfloat16 rounds (8 bits of mantissa) but trains the same model


def test_precision_joins_the_cell_key_only_when_not_fp32():
    def keys(*overrides):
        suite = apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", "scale=cpu", *overrides])
        return [c.key for c in expand(suite)]

    base = keys()
    assert keys("recipe.precision=fp32") == base
    assert not set(keys("recipe.precision=bf16")) & set(base)


def test_full_scale_resolves_to_the_papers_recipe():
    """Devlin et al.: AdamW, lr 2e-5, batch 32, 3 epochs, max length 128, 10% warm-up, weight decay 0.01; the whole
    train split, float32."""
    for name in ("bert-lowsparsity", "bert-highsparsity"):
        suite = apply_overrides(load_suite(name), ["model=minilm-l6", "scale=full"])
        recipe = GlueRecipe.from_mapping(suite.resolved_recipe(), ignore=set(suite.resolved_recipe())
                                         - set(GlueRecipe.keys()))
        assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.epochs, recipe.max_length,
                recipe.warmup_ratio, recipe.weight_decay) == ("adamw", 2e-5, 32, 3, 128, 0.1, 0.01)
        assert (recipe.train_limit, recipe.precision, recipe.protocol) == (None, "fp32", "finetune")


class _HostReads(torch.Tensor):
    """A tensor that counts how often its value is read on the host (on a GPU, each such read waits for the
    device to finish all the work queued so far)."""

    reads = 0
    READS = (torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__bool__, torch.Tensor.__index__,
             torch.Tensor.item, torch.Tensor.tolist)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in cls.READS:
            cls.reads += 1
        return super().__torch_function__(func, types, args, kwargs or {})


def test_the_step_loop_waits_for_the_device_once_not_per_step(monkeypatch):
    """Between steps the loop neither synchronises the device nor reads a value back (either would leave a GPU
    idle while the host prepares the next step); it does both once, at the end, and still counts every token."""
    waits = []
    monkeypatch.setattr(F, "_synchronize", waits.append)
    _HostReads.reads = 0
    loader = [{"attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]).as_subclass(_HostReads)} for _ in range(3)]
    seen = []
    done, tokens, padded, step_seconds, _ = F._train_steps(loader, 5, "test", torch.device("cpu"), seen.append)
    assert (done, len(seen)) == (5, 5)  # two passes over the three batches, stopped at 5 steps
    assert (tokens, padded) == (15, 15)
    assert len(waits) == 1 and _HostReads.reads == 1
    assert step_seconds >= 0


def test_batches_for_a_gpu_are_pinned_and_copied_without_waiting(tiny_bert, tiny_mirror_session):
    """On CUDA the loader pins its batches and the run's accelerator copies them asynchronously, so the copy of the
    next batch does not wait for the last step's kernels; on a CPU nothing is pinned."""
    from transformers import AutoTokenizer

    from benchmarks.runner import _make_accelerator

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    data = F.encode(tokenizer, load_glue("sst2", "train", tiny_mirror_session), 32)
    pinned = {kind: F._train_loader(data, tokenizer, RECIPE, 0, False, torch.device(kind)).pin_memory
              for kind in ("cpu", "cuda")}
    assert pinned == {"cpu": False, "cuda": True}
    assert _make_accelerator().dataloader_config.non_blocking is True
