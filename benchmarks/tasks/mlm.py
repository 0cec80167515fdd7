"""Masked-LM task: the pruned pre-trained model (no fine-tuning) on WikiText-2 raw test.

Text is tokenized, concatenated and cut into fixed-length blocks; 15% of the tokens are masked
(80% [MASK], 10% random token, 10% unchanged) from a fixed seed, so every configuration sees the
same masked positions. Metrics: masked-token accuracy and perplexity = exp(mean cross-entropy over
masked tokens). A checkpoint without an MLM head (MiniLM-L6) gets a head fitted once on the dense
model with the encoder frozen, on GLUE train sentences (disjoint from the evaluation text), cached
under ``paths.cache_dir()`` keyed by the weights' hash and the fitting recipe, and reused unchanged
for every pruned variant; records then carry ``notes.mlm_head = "fitted"``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from benchmarks import paths
from benchmarks.context import RunContext
from benchmarks.errors import DataMissing
from benchmarks.masking import measure_sparsity
from benchmarks.models import ModelRef
from benchmarks.predictions import DRIFT, MLM_CORRECT, MLM_NLL, MLM_TOKENS
from benchmarks.protocols.embed import drift
from benchmarks.provenance import sha256_file
from benchmarks.recipes import MlmRecipe
from benchmarks.registry import register_task
from benchmarks.tasks.base import Pruner, TaskResult

WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-raw-v1")
# Fixed seeds, independent of the cell's seed: every row sees the same blocks and masked positions.
EVAL_MASK_SEED = 2024
HEAD_MASK_SEED = 7
MASK_RATE, MASK_TOKEN_SHARE, RANDOM_TOKEN_SHARE = 0.15, 0.8, 0.1
# Text for fitting a missing head: GLUE train sentences, never the WikiText evaluation text.
HEAD_FIT_SOURCES = (("sst2", "text_a"), ("mrpc", "text_a"), ("mrpc", "text_b"), ("stsb", "text_a"), ("stsb", "text_b"))
FITTED_NOTE = ("fitted: the checkpoint has no MLM head; a head was fitted once on the dense model with the "
               "encoder frozen on GLUE train sentences and reused unchanged for every row")


# -- data ---------------------------------------------------------------------------------------
def load_wikitext(data_dir: Path | None, split: str = "test") -> tuple[str, dict]:
    """WikiText-2 raw ``split`` as one string, from the mirror or the hub; DataMissing when unavailable."""
    if data_dir is not None:
        path = Path(data_dir) / paths.WIKITEXT_FILE.format(split=split)
        if not path.is_file():
            raise DataMissing(f"WikiText-2 raw {split} is not in the data mirror ({path.name} missing)")
        return path.read_text(encoding="utf-8"), {paths.WIKITEXT_FILE.format(split=split): sha256_file(path)}
    try:
        import datasets

        ds = datasets.load_dataset(paths.hub_location(WIKITEXT_HUB[0]), WIKITEXT_HUB[1], split=split)
    except Exception as exc:  # network or hub errors: the cell is skipped with the reason
        raise DataMissing(f"WikiText-2 raw {split} could not be loaded from the hub ({exc.__class__.__name__}); "
                          f"pass --data-dir with a local mirror") from None
    return "".join(ds["text"]), {f"hub:{'/'.join(WIKITEXT_HUB)}/{split}": str(ds._fingerprint)}


def make_blocks(tokenizer, text: str, block_size: int, limit: int | None) -> torch.Tensor:
    """Token ids grouped into [CLS] ... [SEP] blocks of ``block_size``; a fixed subset of ``limit`` blocks."""
    lines = [line for line in text.splitlines() if line.strip()]
    # Lines longer than the model maximum are fine here: they are cut into blocks below.
    ids = [i for chunk in tokenizer(lines, add_special_tokens=False, verbose=False)["input_ids"] for i in chunk]
    body = block_size - 2
    n = len(ids) // body
    blocks = torch.tensor(ids[: n * body]).reshape(n, body)
    if limit and limit < n:
        pick = np.sort(np.random.default_rng(EVAL_MASK_SEED).permutation(n)[:limit])
        blocks = blocks[torch.from_numpy(pick)]
    cls = torch.full((len(blocks), 1), tokenizer.cls_token_id)
    sep = torch.full((len(blocks), 1), tokenizer.sep_token_id)
    return torch.cat([cls, blocks, sep], dim=1)


def mask_tokens(input_ids: torch.Tensor, tokenizer, seed: int, special: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking from a fixed seed: (masked inputs, labels with -100 at unmasked positions)."""
    gen = torch.Generator().manual_seed(seed)
    if special is None:
        special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids))
    chosen = (torch.rand(input_ids.shape, generator=gen) < MASK_RATE) & ~special
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=gen)
    random_ids = torch.randint(len(tokenizer), input_ids.shape, generator=gen)
    inputs = input_ids.clone()
    inputs[chosen & (roll < MASK_TOKEN_SHARE)] = tokenizer.mask_token_id
    swap = chosen & (roll >= MASK_TOKEN_SHARE) & (roll < MASK_TOKEN_SHARE + RANDOM_TOKEN_SHARE)
    inputs[swap] = random_ids[swap]
    return inputs, labels


# -- head ---------------------------------------------------------------------------------------
def _head_modules(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(encoder that returns hidden states, head mapping hidden states to vocabulary logits)."""
    head = getattr(model, "cls", None)  # BertForMaskedLM
    if head is None:
        raise ValueError(f"{type(model).__name__} has no 'cls' MLM head; the MLM task supports BERT-style models")
    return model.base_model, head


def _trainable_head_params(head: nn.Module, model: nn.Module) -> dict[str, nn.Parameter]:
    """Head parameters that are not shared with the encoder (the decoder is tied to the word embeddings)."""
    shared = {id(p) for p in model.base_model.parameters()}
    return {n: p for n, p in head.named_parameters() if id(p) not in shared}


def head_cache_path(model_ref: ModelRef, recipe: MlmRecipe) -> Path:
    """Where the fitted head for this model and head-fitting recipe is cached."""
    recipe = MlmRecipe.coerce(recipe)
    fit = {k: getattr(recipe, k) for k in ("mlm_head_sentences", "mlm_head_epochs", "mlm_head_lr", "max_length")}
    ident = json.dumps({"model": model_ref.identity, "fit": fit, "seed": HEAD_MASK_SEED, "v": 1}, sort_keys=True)
    return paths.cache_dir() / "mlm_heads" / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.pt"


def head_fit_sentences(data_dir: Path | None, limit: int) -> list[str]:
    """A fixed sample of GLUE train sentences (SST-2, MRPC, STS-B), disjoint from WikiText."""
    from benchmarks.data import load_glue

    sentences: list[str] = []
    for task, column in HEAD_FIT_SOURCES:
        try:
            sentences += [s for s in getattr(load_glue(task, "train", data_dir), column) if s and s.strip()]
        except DataMissing:
            continue
    if not sentences:
        raise DataMissing("no GLUE train sentences (SST-2/MRPC/STS-B) to fit the missing MLM head on")
    sentences = sorted(set(sentences))  # deterministic regardless of file order
    pick = np.random.default_rng(HEAD_MASK_SEED).permutation(len(sentences))[:limit]
    return [sentences[i] for i in np.sort(pick)]


def fit_head(model: nn.Module, tokenizer, sentences: list[str], recipe: MlmRecipe) -> dict[str, torch.Tensor]:
    """Fit the head's own parameters on masked ``sentences`` with the encoder frozen; return their state."""
    encoder, head = _head_modules(model)
    model.eval()
    enc = tokenizer(sentences, truncation=True, max_length=recipe.max_length)
    feats, targets = [], []
    with torch.no_grad():  # the encoder is frozen: its hidden states at masked positions are computed once
        for start in range(0, len(sentences), 64):
            batch = tokenizer.pad({"input_ids": enc["input_ids"][start:start + 64]}, return_tensors="pt")
            special_ids = torch.tensor(tokenizer.all_special_ids)
            special = (batch["attention_mask"] == 0) | torch.isin(batch["input_ids"], special_ids)
            inputs, labels = mask_tokens(batch["input_ids"], tokenizer, HEAD_MASK_SEED + start, special)
            hidden = encoder(input_ids=inputs, attention_mask=batch["attention_mask"])[0]
            keep = labels != -100
            feats.append(hidden[keep])
            targets.append(labels[keep])
    feats, targets = torch.cat(feats), torch.cat(targets)
    params = _trainable_head_params(head, model)
    optimizer = torch.optim.AdamW(params.values(), lr=recipe.mlm_head_lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(HEAD_MASK_SEED)
    head.train()
    for _ in range(recipe.mlm_head_epochs):
        for idx in torch.randperm(len(feats), generator=gen).split(256):
            loss = nn.functional.cross_entropy(head(feats[idx]), targets[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    head.eval()
    return {n: p.detach().clone() for n, p in params.items()}


def load_mlm_model(model_ref: ModelRef, tokenizer, recipe: MlmRecipe, data_dir: Path | None,
                   accelerator=None) -> tuple[nn.Module, str]:
    """A fresh masked-LM model and how its head came about: 'pretrained' or 'fitted' (cached, dense model)."""
    from transformers import AutoModelForMaskedLM

    model, info = AutoModelForMaskedLM.from_pretrained(
        model_ref.location, revision=model_ref.identity.get("revision"), output_loading_info=True)
    model.eval()
    if not any(k.startswith("cls.") for k in info.get("missing_keys", [])):
        return model, "pretrained"
    # The main process fits (or reads) the head first; the others then read its cached copy.
    first = accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()
    with first:
        state = _cached_head(model, tokenizer, model_ref, recipe, data_dir)
    _, head = _head_modules(model)
    with torch.no_grad():
        for name, param in _trainable_head_params(head, model).items():
            param.copy_(state[name])
    return model, "fitted"


def _cached_head(model: nn.Module, tokenizer, model_ref: ModelRef, recipe: MlmRecipe, data_dir: Path | None) -> dict:
    """The cached fitted head's state, fitting it on the (still dense) ``model`` when absent."""
    path = head_cache_path(model_ref, recipe)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    sentences = head_fit_sentences(data_dir, recipe.mlm_head_sentences)
    state = fit_head(model, tokenizer, sentences, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{id(state)}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a concurrent run never reads half a head
    return state


# -- evaluation ---------------------------------------------------------------------------------
@torch.no_grad()
def mlm_pass(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, accelerator,
             pooling: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """Per block: (summed NLL, correct, masked tokens) as an [n, 3] tensor, and the block's mean-pooled
    last hidden state [n, hidden] (what drift to dense compares). Logits only at masked positions."""
    from torch.utils.data import DataLoader, TensorDataset

    encoder, head = _head_modules(model)
    model.to(accelerator.device).eval()
    loader = accelerator.prepare_data_loader(DataLoader(TensorDataset(inputs, labels), batch_size=batch_size))
    totals, pooled = [], []
    for x, y in loader:
        hidden = encoder(input_ids=x)[0]
        keep = y != -100
        logits = head(hidden[keep]).float()
        ce = nn.functional.cross_entropy(logits, y[keep], reduction="none")
        correct = (logits.argmax(-1) == y[keep]).float()
        # Per-block sums so gather_for_metrics can drop the duplicates a distributed sampler adds.
        row = keep.nonzero()[:, 0]
        sums = torch.zeros(len(x), 3, device=x.device)
        sums[:, 0].index_add_(0, row, ce)
        sums[:, 1].index_add_(0, row, correct)
        sums[:, 2] = keep.sum(1).float()
        totals.append(accelerator.gather_for_metrics(sums).cpu())
        vector = hidden[:, 0] if pooling == "cls" else hidden.mean(1)  # blocks have no padding
        pooled.append(accelerator.gather_for_metrics(vector.float()).cpu())
    return torch.cat(totals), torch.cat(pooled)


def mlm_metrics(sums: torch.Tensor) -> dict:
    """Masked-token accuracy, perplexity and mean loss from per-block (NLL, correct, tokens) sums."""
    ce_sum, n_correct, n_masked = sums.double().sum(0).tolist()
    mean_ce = ce_sum / n_masked
    return {"mlm_accuracy": n_correct / n_masked, "mlm_ppl": math.exp(mean_ce), "mlm_loss": mean_ce,
            "masked_tokens": int(n_masked), "eval_blocks": len(sums)}


def evaluate_mlm(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, accelerator) -> dict:
    """Masked-token accuracy and perplexity; logits only at masked positions (the vocabulary is large)."""
    return mlm_metrics(mlm_pass(model, inputs, labels, batch_size, accelerator)[0])


@dataclass
class MlmTask:
    """Masked-token accuracy and perplexity of the pruned pre-trained model on WikiText-2 raw test."""

    name: str = "mlm"
    version: str = "1"
    headline: str = "mlm_accuracy"
    higher_is_better: bool = True
    # One task, two leaderboard columns: title -> (metric, higher is better) pairs (``dict(columns)``).
    columns: tuple = (("MLM Accuracy", ("mlm_accuracy", True)), ("MLM ppl.", ("mlm_ppl", False)))
    protocols: tuple = ("finetune", "zeroshot", "probe")  # nothing trains in any of them
    # Protocols this task measures exactly as another one does (nothing is fitted on masked-LM predictions):
    # a suite of such tasks only is refused under them; in a mixed suite the column is kept (docs/harness.md).
    same_as: ClassVar[dict] = {"probe": "zeroshot"}
    recipe_type: ClassVar[type] = MlmRecipe  # the recipe family this task reads (benchmarks/recipes.py)

    def eval_set(self, tokenizer, recipe: MlmRecipe, ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Masked evaluation blocks (identical for every cell of a run and across runs) and data provenance."""
        recipe = MlmRecipe.coerce(recipe)
        text, source = load_wikitext(ctx.data_dir, "test")
        key = ("mlm-eval", tuple(source.items()), tokenizer.name_or_path, recipe.mlm_block_size,
               recipe.mlm_eval_blocks)
        if key not in ctx.cache:
            blocks = make_blocks(tokenizer, text, recipe.mlm_block_size, recipe.mlm_eval_blocks)
            ctx.cache[key] = (*mask_tokens(blocks, tokenizer, EVAL_MASK_SEED), source)
        return ctx.cache[key]

    def run(self, model_ref: ModelRef, pruner: Pruner, recipe: MlmRecipe, seed: int, ctx: RunContext) -> TaskResult:
        """Load (and if needed fit the head of) the masked-LM model, prune it, evaluate; nothing trains.

        The same for every protocol: the model's own head (or the fitted one) is already training-free.
        """
        from transformers import AutoTokenizer

        recipe = MlmRecipe.coerce(recipe)
        tokenizer = _cached_value(ctx, ("tokenizer", model_ref.location),
                                  lambda: AutoTokenizer.from_pretrained(model_ref.location))
        inputs, labels, source = self.eval_set(tokenizer, recipe, ctx)
        batch = recipe.eval_batch_size
        # The (head-fitted) model loads once per run; each cell prunes its own copy.
        key = ("pristine-mlm", model_ref.location, head_cache_path(model_ref, recipe).name)
        cached, head = _cached_value(ctx, key, lambda: load_mlm_model(model_ref, tokenizer, recipe, ctx.data_dir,
                                                                       ctx.accelerator))
        pooling = recipe.pooling
        dense_key = ("dense-mlm", key, tuple(source.items()), tuple(inputs.shape), recipe.mlm_eval_blocks,
                     pooling)
        dense_pooled = _cached_value(ctx, dense_key,
                                     lambda: mlm_pass(cached, inputs, labels, batch, ctx.accelerator, pooling)[1])
        model = copy.deepcopy(cached)
        pruner(model)
        before = measure_sparsity(model)
        sums, pooled = mlm_pass(model, inputs, labels, batch, ctx.accelerator, pooling)
        metrics = mlm_metrics(sums)
        cos, cka = drift([pooled.numpy()], [dense_pooled.numpy()])
        metrics.update({"drift_cosine": float(cos.mean()), "drift_cka": cka, "collapsed": False})
        arrays = {MLM_NLL: sums[:, 0].numpy().astype(np.float32), MLM_CORRECT: sums[:, 1].numpy().astype(np.int16),
                  MLM_TOKENS: sums[:, 2].numpy().astype(np.int16), DRIFT: cos.astype(np.float32)}
        notes = {"mlm_head": head, "protocol": recipe.protocol, "headline": self.headline,
                 "higher_is_better": self.higher_is_better, "chance": {"mlm_accuracy": 1.0 / len(tokenizer)}}
        if notes["protocol"] != "finetune":
            notes["pooling"] = pooling
        if head == "fitted":
            notes["mlm_head_detail"] = FITTED_NOTE
        return TaskResult(metrics, before, measure_sparsity(model), dict(source), notes, arrays)


def _cached_value(ctx: RunContext, key: tuple, build):
    """``ctx.cache[key]``, built once per run (no cache: built every time)."""
    cache = getattr(ctx, "cache", None)
    if cache is None:
        return build()
    if key not in cache:
        cache[key] = build()
    return cache[key]


register_task("mlm")(MlmTask())
