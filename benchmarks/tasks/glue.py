"""GLUE tasks: prune the pre-trained model, fine-tune with the mask held fixed, evaluate on dev."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.data import GLUE, Examples, load_glue
from benchmarks.errors import DataMissing, UserError
from benchmarks.masking import MaskKeeper, measure_sparsity
from benchmarks.models import ModelRef
from benchmarks.registry import register_task
from benchmarks.context import RunContext
from benchmarks.tasks.base import Pruner, TaskResult

# Subset selection uses its own fixed seed so every row and seed of a suite sees the same examples.
SUBSET_SEED = 1234
# QNLI offline: the mirror has dev only; train on one half of dev, evaluate on the other (flagged).
DEV_SPLIT_NOTE = "dev-split: mirror has no train split; fine-tuned on a fixed half of dev (seed 1234), evaluated on the other half"


def classification_metrics(preds: np.ndarray, labels: np.ndarray, f1: bool = False) -> dict:
    """Accuracy (and binary F1 when asked) by GLUE convention."""
    out = {"accuracy": float((preds == labels).mean())}
    if f1:
        out["f1"] = binary_f1(preds, labels)
    return out


def binary_f1(preds: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the positive class (label 1), as sklearn's f1_score; 0.0 when undefined (no positives at all).

    Written out because importing sklearn costs seconds per process; tests check it against sklearn.
    """
    tp = int(np.sum((preds == 1) & (labels == 1)))
    predicted, actual = int(np.sum(preds == 1)), int(np.sum(labels == 1))
    return 0.0 if predicted + actual == 0 else 2 * tp / (predicted + actual)


def regression_metrics(preds: np.ndarray, labels: np.ndarray) -> dict:
    """Pearson and Spearman correlation, as GLUE reports STS-B (nan-safe for constant predictions)."""
    from scipy import stats  # imported here: scipy.stats takes seconds to import

    if np.std(preds) == 0:
        return {"pearson": 0.0, "spearman": 0.0, "constant_predictions": True}
    return {"pearson": float(stats.pearsonr(preds, labels)[0]), "spearman": float(stats.spearmanr(preds, labels)[0])}


@dataclass
class GlueTask:
    """One GLUE task; ``eval_splits`` maps a metric prefix to a split (MNLI has two)."""

    name: str
    headline: str
    num_labels: int
    f1: bool = False
    eval_splits: tuple = (("", "dev"),)
    dev_fallback: bool = False  # may train on half of dev when the mirror lacks train
    version: str = "1"
    higher_is_better: bool = True

    @property
    def regression(self) -> bool:
        return GLUE[self.name].regression

    def metrics(self, preds: np.ndarray, labels: np.ndarray) -> dict:
        if self.regression:
            return regression_metrics(preds, labels)
        return classification_metrics(preds, labels, self.f1)

    # -- data -----------------------------------------------------------------------------------
    def splits(self, ctx: RunContext, recipe: dict) -> tuple[Examples, list[tuple[str, Examples]], dict]:
        """Train examples, [(metric prefix, eval examples)], notes; subsets per the recipe's limits.

        Cached in ``ctx.cache`` per (task, data folder, limits): every cell of a run shares one read.
        """
        key = ("glue-splits", self.name, str(ctx.data_dir), recipe.get("train_limit"), recipe.get("eval_limit"))
        return _cached(ctx, key, lambda: self._load_splits(ctx, recipe))

    def _load_splits(self, ctx: RunContext, recipe: dict) -> tuple[Examples, list[tuple[str, Examples]], dict]:
        notes: dict = {}
        try:
            train = load_glue(self.name, "train", ctx.data_dir)
            evals = [(prefix, load_glue(self.name, split, ctx.data_dir)) for prefix, split in self.eval_splits]
        except DataMissing:
            if not self.dev_fallback:
                raise
            dev = load_glue(self.name, "dev", ctx.data_dir)
            order = np.random.default_rng(SUBSET_SEED).permutation(len(dev))
            half = len(dev) // 2
            train, evals = dev.subset(order[:half]), [("", dev.subset(np.sort(order[half:])))]
            notes["data_split"] = DEV_SPLIT_NOTE
        train = _limit(train, recipe.get("train_limit"))
        evals = [(prefix, _limit(ex, recipe.get("eval_limit"))) for prefix, ex in evals]
        return train, evals, notes

    def check_data(self, data_dir) -> None:
        """Read this task's mirror files now so a malformed one is a UserError before any cell runs."""
        if data_dir is None:
            return
        for split in ("train", *(s for _, s in self.eval_splits)):
            try:
                load_glue(self.name, split, data_dir)
            except DataMissing:
                pass  # recorded per cell as skipped (or handled by the dev fallback)

    # -- the cell ---------------------------------------------------------------------------------
    def run(self, model_ref: ModelRef, pruner: Pruner, recipe: dict, seed: int, ctx: RunContext) -> TaskResult:
        """Prune with ``pruner``, fine-tune with the mask held fixed on train, evaluate on dev."""
        from accelerate.utils import set_seed
        from transformers import AutoModelForSequenceClassification

        train, evals, notes = self.splits(ctx, recipe)
        tokenizer = load_tokenizer(model_ref.location, ctx)
        max_length = int(recipe.get("max_length", 128))
        set_seed(seed)  # the classifier head's initialisation and dropout depend on the seed
        model = AutoModelForSequenceClassification.from_pretrained(
            model_ref.location, num_labels=self.num_labels, revision=model_ref.identity.get("revision"))
        masks = pruner(model)
        before = measure_sparsity(model)
        encode_key = (self.name, model_ref.location, max_length, str(ctx.data_dir),
                      recipe.get("train_limit"), recipe.get("eval_limit"))
        train_enc = _cached(ctx, ("glue-encoded", "train", *encode_key), lambda: _encode(tokenizer, train, max_length))
        finetune(model, tokenizer, train, recipe, seed, masks, ctx.accelerator, self.regression, encoded=train_enc)
        metrics: dict = {}
        for prefix, examples in evals:
            enc = _cached(ctx, ("glue-encoded", "eval" + prefix, *encode_key),
                          lambda: _encode(tokenizer, examples, max_length))
            preds = predict(model, tokenizer, examples, recipe, ctx.accelerator, self.regression, encoded=enc)
            metrics.update({f"{prefix}{k}": v for k, v in self.metrics(preds, examples.labels).items()})
        metrics["train_examples"] = len(train)
        metrics["eval_examples"] = sum(len(ex) for _, ex in evals)
        data = {**train.source, **{k: v for _, ex in evals for k, v in ex.source.items()}}
        return TaskResult(metrics, before, measure_sparsity(model), data, notes)


def _cached(ctx: RunContext, key: tuple, build):
    """``ctx.cache[key]``, built once per run (the cache lives as long as the RunContext)."""
    if ctx is None or getattr(ctx, "cache", None) is None:
        return build()
    if key not in ctx.cache:
        ctx.cache[key] = build()
    return ctx.cache[key]


def load_tokenizer(location: str, ctx: RunContext | None = None):
    """The model's tokenizer, loaded once per run."""
    from transformers import AutoTokenizer

    return _cached(ctx, ("tokenizer", location), lambda: AutoTokenizer.from_pretrained(location))


def _limit(examples: Examples, limit: int | None) -> Examples:
    """A fixed random subset of ``limit`` rows (the same for every cell), or all rows."""
    if not limit or limit >= len(examples):
        return examples
    order = np.random.default_rng(SUBSET_SEED).permutation(len(examples))[:limit]
    return examples.subset(np.sort(order))


class _Encoded(torch.utils.data.Dataset):
    def __init__(self, encodings: dict, labels: np.ndarray) -> None:
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item

    def lengths(self) -> list[int]:
        """Token count of each example (for length-sorted batches)."""
        return [len(ids) for ids in self.encodings["input_ids"]]


def _encode(tokenizer, examples: Examples, max_length: int) -> _Encoded:
    enc = tokenizer(examples.text_a, examples.text_b, truncation=True, max_length=max_length)
    return _Encoded(dict(enc), examples.labels)


def _collator(tokenizer, regression: bool):
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)

    def collate(items: list[dict]) -> dict:
        labels = [item.pop("labels") for item in items]
        batch = pad(items)
        batch["labels"] = torch.tensor(np.asarray(labels), dtype=torch.float32 if regression else torch.long)
        return batch

    return collate


def _adamw(groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """AdamW, fused where this torch supports it (about 5x faster per step on CPU, same update rule)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def _train_loader(dataset: _Encoded, tokenizer, recipe: dict, seed: int, regression: bool) -> DataLoader:
    """Shuffled batches; with ``group_by_length`` batches hold examples of similar length (less padding)."""
    batch_size = int(recipe.get("batch_size", 32))
    generator = torch.Generator().manual_seed(seed)
    collate = _collator(tokenizer, regression)
    if recipe.get("group_by_length"):
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(batch_size, lengths=dataset.lengths(), generator=generator)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator)


def finetune(model, tokenizer, train: Examples, recipe: dict, seed: int, masks, accelerator, regression: bool,
             encoded: _Encoded | None = None) -> None:
    """AdamW + linear warm-up/decay, masks re-applied after every step; runs through ``accelerator``."""
    from transformers import get_linear_schedule_with_warmup

    epochs = float(recipe.get("epochs", 3))
    if epochs <= 0:
        return
    processes = accelerator.num_processes
    # Each process takes its share of the recipe's global batch (see _per_process_batch).
    per_process = {**recipe, "batch_size": _per_process_batch(int(recipe.get("batch_size", 32)), processes)}
    dataset = encoded if encoded is not None else _encode(tokenizer, train, int(recipe.get("max_length", 128)))
    loader = _train_loader(dataset, tokenizer, per_process, seed, regression)
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         "weight_decay": float(recipe.get("weight_decay", 0.01))},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = _adamw(groups, float(recipe.get("lr", 2e-5)))
    keeper = MaskKeeper(model, masks).attach(optimizer) if masks else None
    # Optimizer steps as on one process; accelerate steps a prepared scheduler once per process per
    # optimizer step, so the schedule is laid out N times longer and lands on the one-process values.
    steps = max(1, math.ceil(len(loader) * epochs / processes))
    warmup = int(float(recipe.get("warmup_ratio", 0.1)) * steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup * processes, steps * processes)
    pmodel, poptim, ploader, psched = accelerator.prepare(model, optimizer, loader, scheduler)
    pmodel.train()
    done = 0
    while done < steps:
        for batch in ploader:
            loss = pmodel(**batch).loss
            accelerator.backward(loss)
            poptim.step()
            psched.step()
            poptim.zero_grad()
            done += 1
            if done >= steps:
                break
    pmodel.eval()
    if keeper:
        keeper.detach()
        keeper.reapply()
    accelerator.free_memory()


def _per_process_batch(batch_size: int, processes: int) -> int:
    """The recipe's batch size is the global batch: each of N processes takes 1/N of it per step,
    so a cell's numbers do not depend on how many processes ran it."""
    if batch_size % processes:
        raise UserError(f"recipe batch_size {batch_size} does not split evenly over {processes} processes; "
                        f"launch a divisor of {batch_size} processes")
    return batch_size // processes


@torch.no_grad()
def predict(model, tokenizer, examples: Examples, recipe: dict, accelerator, regression: bool,
            encoded: _Encoded | None = None) -> np.ndarray:
    """Predictions on ``examples`` in their original order.

    Examples are batched in order of length (far less padding), then put back in input order.
    """
    dataset = encoded if encoded is not None else _encode(tokenizer, examples, int(recipe.get("max_length", 128)))
    order = np.argsort(dataset.lengths(), kind="stable")
    loader = DataLoader(torch.utils.data.Subset(dataset, order.tolist()),
                        batch_size=int(recipe.get("eval_batch_size", 64)), shuffle=False,
                        collate_fn=_collator(tokenizer, regression))
    model.to(accelerator.device).eval()
    outputs = []
    for batch in accelerator.prepare_data_loader(loader):
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        outputs.append(accelerator.gather_for_metrics(logits).float().cpu())
    logits = torch.cat(outputs)
    preds = (logits.squeeze(-1) if regression else logits.argmax(-1)).numpy()
    out = np.empty_like(preds)
    out[order] = preds  # undo the length sort
    return out


register_task("mrpc")(GlueTask("mrpc", headline="accuracy", num_labels=2, f1=True))
register_task("stsb")(GlueTask("stsb", headline="pearson", num_labels=1))
register_task("sst2")(GlueTask("sst2", headline="accuracy", num_labels=2))
register_task("qnli")(GlueTask("qnli", headline="accuracy", num_labels=2, dev_fallback=True))
register_task("mnli")(GlueTask("mnli", headline="accuracy", num_labels=3,
                               eval_splits=(("", "dev_matched"), ("mismatched_", "dev_mismatched"))))
