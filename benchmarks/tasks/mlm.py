"""Masked-LM task: the pruned pre-trained model (no fine-tuning) on WikiText-2 raw test.

Text is tokenized, concatenated and cut into fixed-length blocks; 15% of the tokens are masked
(80% [MASK], 10% random token, 10% unchanged) from a fixed seed, so every configuration sees the
same masked positions. Metrics: masked-token accuracy and perplexity = exp(mean cross-entropy over
masked tokens). A checkpoint without an MLM head (MiniLM-L6) gets a head fitted on the dense model
with the encoder frozen, on ``mlm_head_sentences`` (null: all) of the offline text that no task
evaluates (GLUE train sentences; QNLI/MNLI: the fit halves of dev), drawn with the cell seed, with 5%
held out to stop when its loss stops falling; one head per model, recipe and cell seed, cached under
``paths.cache_dir()`` and reused unchanged for every pruned row; records then carry
``notes.mlm_head = "fitted"`` and ``notes.mlm_head_fit`` (what was fitted, and how long).

Every record also carries the column's trivial baselines on the same masked positions, fitted on the
same text: the most frequent token, and an add-one unigram model (per-position arrays in the ``.npz``,
summary values in ``notes.mlm_baselines``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import time
from collections import Counter
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
from benchmarks.predictions import (
    BASELINE_MFT_CORRECT,
    BASELINE_UNIGRAM_LOGP,
    DRIFT,
    MLM_CORRECT,
    MLM_NLL,
    MLM_TOKENS,
)
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
# Text for fitting a missing head and the baselines: every GLUE sentence no task evaluates (train splits;
# QNLI/MNLI offline: the fit halves of dev), never the WikiText evaluation text.
HEAD_FIT_TASKS = ("sst2", "mrpc", "stsb", "qnli", "mnli")
HEAD_HELDOUT_SHARE = 0.05  # of the fitting sentences, held out to stop the head's fit
HEAD_BATCH, HEAD_CHECKS_PER_EPOCH = 512, 4
HEAD_RECIPE = 2  # task version 2: held-out stop, one head per seed, QNLI/MNLI fit text added, baselines
FITTED_NOTE = ("fitted: the checkpoint has no MLM head; a head was fitted on the dense model with the encoder "
               "frozen, on mlm_head_sentences (null: all) of the offline GLUE text no task evaluates, drawn with "
               "the seed (5% held out to stop), one per seed, and reused unchanged for every row")


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


def head_cache_path(model_ref: ModelRef, recipe: MlmRecipe, seed: int = 0) -> Path:
    """Where the fitted head for this model, head-fitting recipe and cell seed is cached."""
    recipe = MlmRecipe.coerce(recipe)
    fit = {k: getattr(recipe, k) for k in ("mlm_head_sentences", "mlm_head_epochs", "mlm_head_lr", "max_length")}
    ident = json.dumps({"model": model_ref.identity, "fit": fit, "seed": HEAD_MASK_SEED + seed,
                        "heldout": HEAD_HELDOUT_SHARE, "batch": HEAD_BATCH, "v": HEAD_RECIPE, "init": "seeded"},
                       sort_keys=True)
    return paths.cache_dir() / "mlm_heads" / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.pt"


def head_fit_sentences(data_dir: Path | None) -> list[str]:
    """Every offline GLUE sentence no task evaluates (train splits, or QNLI/MNLI's fit halves of dev), sorted."""
    from benchmarks.tasks.glue import fit_pool

    sentences: set[str] = set()
    for task in HEAD_FIT_TASKS:
        try:
            pool = fit_pool(task, data_dir)
        except DataMissing:
            continue
        sentences.update(s for s in (*pool.text_a, *(pool.text_b or ())) if s and s.strip())
    if not sentences:
        raise DataMissing("no GLUE sentences outside the evaluated splits to fit the missing MLM head on")
    return sorted(sentences)  # deterministic regardless of file order


def split_heldout(sentences: list[str], seed: int, limit: int | None = None) -> tuple[list[str], list[str]]:
    """(fit, held-out) sentences drawn with the cell seed from ``limit`` of them (None: all): HEAD_HELDOUT_SHARE
    held out, at least one."""
    order = np.random.default_rng(HEAD_MASK_SEED + seed).permutation(len(sentences))[:limit]
    held = max(1, int(round(len(order) * HEAD_HELDOUT_SHARE)))
    return [sentences[i] for i in np.sort(order[held:])], [sentences[i] for i in np.sort(order[:held])]


@torch.no_grad()
def masked_features(encoder: nn.Module, tokenizer, sentences: list[str], max_length: int, seed: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's hidden states at BERT-masked positions of ``sentences`` and their target ids.

    Sentences are batched in order of length (less padding); masking is drawn per batch from ``seed``.
    """
    ids = tokenizer(sentences, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    special_ids = torch.tensor(tokenizer.all_special_ids)
    feats, targets = [], []
    for number, start in enumerate(range(0, len(order), 128)):
        batch = tokenizer.pad({"input_ids": [ids[i] for i in order[start:start + 128]]}, return_tensors="pt")
        special = (batch["attention_mask"] == 0) | torch.isin(batch["input_ids"], special_ids)
        inputs, labels = mask_tokens(batch["input_ids"], tokenizer, seed * 1_000_003 + number, special)
        hidden = encoder(input_ids=inputs, attention_mask=batch["attention_mask"])[0]
        keep = labels != -100
        feats.append(hidden[keep])
        targets.append(labels[keep])
    return torch.cat(feats), torch.cat(targets)


def fit_head(model: nn.Module, tokenizer, sentences: list[str], recipe: MlmRecipe, seed: int = 0
             ) -> tuple[dict[str, torch.Tensor], dict]:
    """Fit the head's own parameters on masked ``sentences`` with the encoder frozen, keeping the state with
    the lowest held-out loss (checked HEAD_CHECKS_PER_EPOCH times an epoch; stops after two checks without
    a new best, or after ``mlm_head_epochs``). Returns the state and what happened (sizes, losses, seconds)."""
    recipe = MlmRecipe.coerce(recipe)
    started, cpu_started = time.perf_counter(), time.process_time()
    encoder, head = _head_modules(model)
    model.eval()
    fit_text, held_text = split_heldout(sentences, seed, recipe.mlm_head_sentences)
    feats, targets = masked_features(encoder, tokenizer, fit_text, recipe.max_length, HEAD_MASK_SEED + seed)
    held_feats, held_targets = masked_features(encoder, tokenizer, held_text, recipe.max_length,
                                               HEAD_MASK_SEED + seed + 500_000)
    featurised = time.process_time() - cpu_started
    params = _trainable_head_params(head, model)
    frozen = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in params.values())]
    for p in frozen:  # the tied decoder (word embeddings) stays fixed: no gradient computed for it
        p.requires_grad_(False)
    try:
        state, log = _train_head(head, params, feats, targets, held_feats, held_targets, recipe, seed)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    head.eval()
    cpu = time.process_time() - cpu_started
    log.update({"sentences": len(fit_text), "heldout_sentences": len(held_text), "available_sentences": len(sentences),
                "positions": len(targets), "heldout_positions": len(held_targets),
                "featurise_cpu_seconds": round(featurised, 1), "cpu_seconds": round(cpu, 1),
                "wall_seconds": round(time.perf_counter() - started, 1)})
    return state, log


def _heldout_loss(head: nn.Module, feats: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        total = sum(nn.functional.cross_entropy(head(f), t, reduction="sum").item()
                    for f, t in zip(feats.split(2048), targets.split(2048)))
    return total / len(targets)


def _train_head(head: nn.Module, params: dict, feats, targets, held_feats, held_targets, recipe: MlmRecipe,
                seed: int) -> tuple[dict, dict]:
    """AdamW on the head's own parameters; the state at the best held-out loss."""
    optimizer = torch.optim.AdamW(params.values(), lr=recipe.mlm_head_lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(HEAD_MASK_SEED + seed)
    steps = math.ceil(len(feats) / HEAD_BATCH)
    check_every = max(1, steps // HEAD_CHECKS_PER_EPOCH)
    best = (_heldout_loss(head.eval(), held_feats, held_targets), 0.0)
    best_state = {n: p.detach().clone() for n, p in params.items()}
    losses, stale, done = [round(best[0], 4)], 0, 0
    for epoch in range(recipe.mlm_head_epochs):
        head.train()
        for step, idx in enumerate(torch.randperm(len(feats), generator=gen).split(HEAD_BATCH), 1):
            nn.functional.cross_entropy(head(feats[idx]), targets[idx]).backward()
            optimizer.step()
            optimizer.zero_grad()
            if step % check_every and step != steps:
                continue
            loss = _heldout_loss(head.eval(), held_feats, held_targets)
            head.train()
            losses.append(round(loss, 4))
            if loss < best[0]:
                best, stale = (loss, epoch + step / steps), 0
                best_state = {n: p.detach().clone() for n, p in params.items()}
            else:
                stale += 1
            if stale >= 2:
                break
        done = epoch + 1
        if stale >= 2:
            break
    return best_state, {"heldout_losses": losses, "best_heldout_loss": round(best[0], 4),
                        "best_epoch": round(best[1], 3), "epochs_run": done}


def fit_baselines(tokenizer, sentences: list[str], max_length: int) -> tuple[int, np.ndarray]:
    """(most frequent token id, log-probability of every vocabulary id) on the tokens of ``sentences``:
    add-one smoothing over the vocabulary, special tokens excluded (they are never masked)."""
    ids = tokenizer(sentences, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    counts = Counter(i for row in ids for i in row)
    vocab = np.ones(len(tokenizer))
    for token, n in counts.items():
        vocab[token] += n
    vocab[tokenizer.all_special_ids] = 0.0
    most_frequent = max(counts, key=lambda t: (counts[t], -t))
    with np.errstate(divide="ignore"):  # special tokens: probability 0, never a target
        return most_frequent, np.log(vocab / vocab.sum())


def baseline_arrays(labels: torch.Tensor, most_frequent: int, logp: np.ndarray) -> dict[str, np.ndarray]:
    """Per masked position (block order): whether the most frequent token is right, the unigram log-probability."""
    targets = labels[labels != -100].numpy()
    return {BASELINE_MFT_CORRECT: (targets == most_frequent).astype(np.int8),
            BASELINE_UNIGRAM_LOGP: logp[targets].astype(np.float32)}


def load_mlm_model(model_ref: ModelRef, tokenizer, recipe: MlmRecipe, data_dir: Path | None,
                   accelerator=None, seed: int = 0) -> tuple[nn.Module, str, dict | None]:
    """A fresh masked-LM model, how its head came about ('pretrained' or 'fitted': cached per seed, on the
    dense model) and, for a fitted head, what its fit did (``fit_head``'s log)."""
    from transformers import AutoModelForMaskedLM

    # A checkpoint without an MLM head gets a randomly initialised one from from_pretrained: draw it from the
    # seed (the process's own random state untouched), so a head fitted from scratch anywhere is the same head.
    with torch.random.fork_rng():
        torch.manual_seed(HEAD_MASK_SEED + seed)
        model, info = AutoModelForMaskedLM.from_pretrained(
            model_ref.location, revision=model_ref.identity.get("revision"), output_loading_info=True)
    model.eval()
    if not any(k.startswith("cls.") for k in info.get("missing_keys", [])):
        return model, "pretrained", None
    # The main process fits (or reads) the head first; the others then read its cached copy.
    first = accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()
    with first:
        state, log = _cached_head(model, tokenizer, model_ref, recipe, data_dir, seed)
    _, head = _head_modules(model)
    with torch.no_grad():
        for name, param in _trainable_head_params(head, model).items():
            param.copy_(state[name])
    return model, "fitted", log


def _cached_head(model: nn.Module, tokenizer, model_ref: ModelRef, recipe: MlmRecipe, data_dir: Path | None,
                 seed: int) -> tuple[dict, dict]:
    """The cached fitted head's (state, fit log), fitting it on the (still dense) ``model`` when absent."""
    from benchmarks import store

    path = head_cache_path(model_ref, recipe, seed)
    log_path = path.with_suffix(".json")
    if path.is_file() and log_path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True), json.loads(log_path.read_text())
    state, log = fit_head(model, tokenizer, head_fit_sentences(data_dir), recipe, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{id(state)}.tmp")
    torch.save(state, tmp)
    store.write_bytes_atomic(log_path, json.dumps(log, sort_keys=True).encode())
    tmp.replace(path)  # atomic, and last: a concurrent run never reads half a head or a head without its log
    return state, log


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
    version: str = "2"  # 2: the fitted head's recipe (HEAD_RECIPE) and the baselines; 1 fitted on 2,000 sentences
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
        # The (head-fitted) model loads once per run and seed; each cell prunes its own copy.
        key = ("pristine-mlm", model_ref.location, head_cache_path(model_ref, recipe, seed).name)
        cached, head, fit_log = _cached_value(ctx, key, lambda: load_mlm_model(
            model_ref, tokenizer, recipe, ctx.data_dir, ctx.accelerator, seed))
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
        most_frequent, logp = _cached_value(ctx, ("mlm-baselines", tokenizer.name_or_path, str(ctx.data_dir),
                                                  recipe.max_length),
                                            lambda: fit_baselines(tokenizer, head_fit_sentences(ctx.data_dir),
                                                                  recipe.max_length))
        arrays.update(baseline_arrays(labels, most_frequent, logp))
        notes = {"mlm_head": head, "protocol": recipe.protocol, "headline": self.headline,
                 "higher_is_better": self.higher_is_better, "chance": {"mlm_accuracy": 1.0 / len(tokenizer)},
                 "mlm_baselines": baseline_summary(arrays, tokenizer.convert_ids_to_tokens(most_frequent))}
        if notes["protocol"] != "finetune":
            notes["pooling"] = pooling
        if head == "fitted":
            notes["mlm_head_detail"] = FITTED_NOTE
            notes["mlm_head_fit"] = fit_log
        return TaskResult(metrics, before, measure_sparsity(model), dict(source), notes, arrays)


def baseline_summary(arrays: dict, most_frequent: str) -> dict:
    """The baselines' accuracy and perplexity on the evaluated positions (what the per-position arrays give)."""
    return {"most_frequent_token": most_frequent,
            "mft_accuracy": float(arrays[BASELINE_MFT_CORRECT].mean()),
            "unigram_accuracy": float(arrays[BASELINE_MFT_CORRECT].mean()),  # a unigram model predicts the MFT
            "unigram_ppl": float(np.exp(-arrays[BASELINE_UNIGRAM_LOGP].astype(np.float64).mean())),
            "fitted_on": "the MLM head's fitting text (all offline GLUE text no task evaluates), add-one smoothing"}


def _cached_value(ctx: RunContext, key: tuple, build):
    """``ctx.cache[key]``, built once per run (no cache: built every time)."""
    cache = getattr(ctx, "cache", None)
    if cache is None:
        return build()
    if key not in cache:
        cache[key] = build()
    return cache[key]


register_task("mlm")(MlmTask())
