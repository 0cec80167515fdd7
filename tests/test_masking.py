"""Masks stay applied: pruned weights are exactly zero after AdamW with weight decay, sparsity unchanged."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.data import load_glue
from benchmarks.masking import MaskKeeper, apply_masks, measure_sparsity
from benchmarks.protocols import finetune
from benchmarks.registry import METHODS
from benchmarks.tasks import glue


def _adamw_steps(model: torch.nn.Linear, steps: int = 5) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(steps):
        model(torch.randn(8, model.in_features)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()


def test_mask_keeper_holds_zeros_through_adamw():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 16)
    keep = torch.rand(16, 16) > 0.5
    apply_masks(layer, {"weight": keep})
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.5)
    MaskKeeper(layer, {"weight": keep}).attach(opt)
    for _ in range(5):
        layer(torch.randn(8, 16)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    assert bool((layer.weight[~keep] == 0).all())
    assert bool((layer.weight[keep] != 0).all())


@pytest.mark.parametrize("fused", [False, True])
def test_masked_gradients_alone_hold_zeros_through_adamw(fused):
    """The fine-tune loop zeroes masked gradients and makes no pass over the weights after a step: under AdamW
    (fused or not, with weight decay) a zero weight without gradient stays exactly zero."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 16)
    keep = torch.rand(16, 16) > 0.5
    apply_masks(layer, {"weight": keep})
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.5, fused=fused)
    MaskKeeper(layer, {"weight": keep}).attach(opt, reapply_each_step=False)
    for _ in range(20):
        layer(torch.randn(8, 16)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    assert bool((layer.weight[~keep] == 0).all())
    assert bool((layer.weight[keep] != 0).all())


def test_without_keeper_zeros_do_not_survive():
    """The check above can fail: plain AdamW revives pruned weights."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 16)
    keep = torch.rand(16, 16) > 0.5
    apply_masks(layer, {"weight": keep})
    _adamw_steps(layer)
    assert not bool((layer.weight[~keep] == 0).all())


@pytest.mark.parametrize("method", ["global", "random"])
def test_finetune_keeps_sparsity_exact(method, tiny_bert, tiny_mirror_session):
    """Through the real finetune (benchmarks/protocols/finetune.py: AdamW, weight decay, schedule, accelerate):
    zeros stay zeros."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    masks = METHODS.get(method)(model, 0.5, torch.Generator().manual_seed(0))
    apply_masks(model, masks)
    before = measure_sparsity(model)
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters() if n in masks}
    train = load_glue("sst2", "train", tiny_mirror_session)
    recipe = {"lr": 1e-2, "batch_size": 8, "epochs": 1, "max_length": 32, "weight_decay": 0.1}
    finetune.finetune(model, tokenizer, train, recipe, 0, masks, Accelerator(cpu=True), regression=False)
    after = measure_sparsity(model)
    assert after["zeros"] == before["zeros"]
    assert after["global"] == before["global"]
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        assert bool((params[name][~keep] == 0).all()), name
    changed = sum(int((params[n][masks[n]] != snapshot[n][masks[n]]).sum()) for n in masks)
    assert changed > 0  # training really updated the kept weights


def test_binary_f1_matches_sklearn():
    import numpy as np
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        preds, labels = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        assert glue.binary_f1(preds, labels) == pytest.approx(f1_score(labels, preds))
    zeros = np.zeros(5, dtype=int)
    assert glue.binary_f1(zeros, zeros) == pytest.approx(f1_score(zeros, zeros, zero_division=0.0))
