"""GLUE tasks: prune the pre-trained model, fine-tune with the mask held fixed, evaluate on dev."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks import predictions, progress
from benchmarks.context import RunContext
from benchmarks.data import GLUE, Examples, is_mnli_subset, load_glue
from benchmarks.errors import DataMissing, UserError
from benchmarks.masking import MaskKeeper, measure_sparsity
from benchmarks.models import ModelRef
from benchmarks.predictions import DRIFT, LABEL, PRED, SCORE
from benchmarks.recipes import GlueRecipe
from benchmarks.registry import register_task
from benchmarks.tasks.base import Pruner, TaskResult
from benchmarks.tasks.embed import (
    CENTROID,
    COSINE,
    DENSE_IDENTITY,
    FINETUNE,
    THRESHOLD,
    drift,
    embed,
    fresh_copy,
    pristine,
    probe_predict,
    roc_auc,
    zeroshot_predict,
)

# Finetune protocol: drift to dense on a fixed sample of this many examples of each eval split.
DRIFT_LIMIT = 256
# Subset selection uses its own fixed seed so every row and seed of a suite sees the same evaluation examples.
# The zero-shot/probe fit subset is drawn with SUBSET_SEED + the cell's seed: seed 0 keeps the subset its records
# were made with, other seeds fit on other examples (evaluation units never depend on the seed).
SUBSET_SEED = 1234
# QNLI offline: the mirror has dev only; train on one half of dev, evaluate on the other (flagged).
MNLI_SUBSET_NOTE = ("1k sample of MNLI dev: the mirror holds two 1,000-example samples of MNLI dev (matched, "
                    "mismatched) and no train; fitted on a fixed half of each (seed 1234), evaluated on the other half")
ZEROSHOT_RULE_NOTE = {
    CENTROID: ("nearest class centroid by cosine (pairs: of [|u-v|, u*v]); centroids from the fit subset "
               "(seed 1234 + the cell seed)"),
    THRESHOLD: ("cosine of the two sentences against one threshold chosen for accuracy on the fit subset "
                "(seed 1234 + the cell seed)"),
    COSINE: "cosine of the two sentences' embeddings as the predicted similarity; nothing fitted",
}
PROBE_NOTE = ("standardised features, LogisticRegression (C=1) or Ridge (alpha=1) fitted on the fit subset "
              "(seed 1234 + the cell seed)")
DEV_SPLIT_NOTE = ("dev-split: mirror has no train split; fine-tuned on a fixed half of dev (seed 1234), "
                  "evaluated on the other half")


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
    zeroshot_rule: str = CENTROID  # docs/protocols.md
    protocols: tuple = ("finetune", "zeroshot", "probe")
    recipe_type: ClassVar[type] = GlueRecipe  # the recipe family this task reads (benchmarks/recipes.py)

    @property
    def regression(self) -> bool:
        return GLUE[self.name].regression

    def metrics(self, preds: np.ndarray, labels: np.ndarray) -> dict:
        if self.regression:
            return regression_metrics(preds, labels)
        return classification_metrics(preds, labels, self.f1)

    # -- data -----------------------------------------------------------------------------------
    def splits(self, ctx: RunContext, recipe: GlueRecipe) -> tuple[Examples, list[tuple[str, Examples]], dict]:
        """Train examples, [(metric prefix, eval examples)], notes; subsets per the recipe's limits.

        Cached in ``ctx.cache`` per (task, data folder, limits): every cell of a run shares one read.
        """
        recipe = GlueRecipe.coerce(recipe)
        key = ("glue-splits", self.name, str(ctx.data_dir), recipe.train_limit, recipe.eval_limit,
               recipe.dev_split_eval_limit)
        return _cached(ctx, key, lambda: self._load_splits(ctx, recipe))

    def _load_splits(self, ctx: RunContext, recipe: GlueRecipe) -> tuple[Examples, list[tuple[str, Examples]], dict]:
        notes: dict = {}
        try:
            train = load_glue(self.name, "train", ctx.data_dir)
            evals = [(prefix, load_glue(self.name, split, ctx.data_dir)) for prefix, split in self.eval_splits]
        except DataMissing as missing:
            if not self.dev_fallback:
                raise
            try:
                train, evals, notes = self._dev_split(ctx, recipe)
            except DataMissing:
                raise missing from None  # no train and no dev: the train split is what is missing
        train = _limit(train, recipe.train_limit)
        evals = [(prefix, _limit(ex, recipe.eval_limit)) for prefix, ex in evals]
        return train, evals, notes

    def _dev_split(self, ctx: RunContext, recipe: GlueRecipe) -> tuple[Examples, list[tuple[str, Examples]], dict]:
        """The mirror has no train split: fit on a fixed half of each dev split, evaluate on the other half
        (at most ``dev_split_eval_limit`` of it, a fixed sample)."""
        fit, evals, subset = [], [], False
        for prefix, split in self.eval_splits:
            dev = load_glue(self.name, split, ctx.data_dir)
            subset = subset or is_mnli_subset(dev)
            order = np.random.default_rng(SUBSET_SEED).permutation(len(dev))
            half = len(dev) // 2
            fit.append(dev.subset(order[:half]))
            evals.append((prefix, _limit(dev.subset(np.sort(order[half:])), recipe.dev_split_eval_limit)))
        train = fit[0] if len(fit) == 1 else Examples.concat(fit)
        note = MNLI_SUBSET_NOTE if subset else DEV_SPLIT_NOTE
        if recipe.dev_split_eval_limit:
            note += f" (a fixed sample of at most {recipe.dev_split_eval_limit} examples of it)"
        return train, evals, {"data_split": note}

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
    def run(self, model_ref: ModelRef, pruner: Pruner, recipe: GlueRecipe, seed: int, ctx: RunContext) -> TaskResult:
        """Prune with ``pruner``, then judge the encoder by the cell's protocol (``recipe.protocol``)."""
        recipe = GlueRecipe.coerce(recipe)
        protocol = recipe.protocol
        if protocol == FINETUNE:
            return self._run_finetune(model_ref, pruner, recipe, seed, ctx)
        return self._run_embedding(model_ref, pruner, recipe, seed, ctx, protocol)

    def _run_finetune(self, model_ref: ModelRef, pruner: Pruner, recipe: GlueRecipe, seed: int,
                      ctx: RunContext) -> TaskResult:
        """Fine-tune with the mask held fixed on train, evaluate on dev (the paper's protocol)."""
        from accelerate.utils import set_seed

        train, evals, notes = self.splits(ctx, recipe)
        tokenizer = load_tokenizer(model_ref.location, ctx)
        max_length = recipe.max_length
        set_seed(seed)  # the classifier head's initialisation and dropout depend on the seed
        model = self._classifier(model_ref, ctx, seed)
        masks = pruner(model)
        before = measure_sparsity(model)
        # Drift is measured on the pruned pre-trained encoder, before fine-tuning moves it.
        drift_metrics, arrays = self._drift(model.base_model, model_ref, tokenizer, evals, recipe, ctx, masks is None)
        # Tokenized data is shared by every cell of the run with the same task, tokenizer, length and rows.
        encode_key = (self.name, model_ref.location, max_length)
        train_enc = _cached(ctx, ("glue-encoded", "train", *encode_key, _data_key(train)),
                            lambda: _encode(tokenizer, train, max_length))
        finetune(model, tokenizer, train, recipe, seed, masks, ctx.accelerator, self.regression, encoded=train_enc)
        metrics: dict = {}
        for prefix, examples in evals:
            enc = _cached(ctx, ("glue-encoded", "eval" + prefix, *encode_key, _data_key(examples)),
                          lambda examples=examples: _encode(tokenizer, examples, max_length))
            logits = predict_logits(model, tokenizer, examples, recipe, ctx.accelerator, self.regression, encoded=enc)
            preds = logits.squeeze(-1) if self.regression else logits.argmax(-1)
            score = logits[:, 1] - logits[:, 0] if self.num_labels == 2 else None
            metrics.update(self._evaluate(prefix, preds, score, examples.labels, arrays))
        metrics.update(drift_metrics)
        metrics["train_examples"] = len(train)
        metrics["eval_examples"] = sum(len(ex) for _, ex in evals)
        data = {**train.source, **{k: v for _, ex in evals for k, v in ex.source.items()}}
        notes.update(self._record_notes(evals, FINETUNE, None))
        return TaskResult(metrics, before, measure_sparsity(model), data, notes, arrays)

    def _run_embedding(self, model_ref: ModelRef, pruner: Pruner, recipe: GlueRecipe, seed: int, ctx: RunContext,
                       protocol: str) -> TaskResult:
        """Zero-shot rule or linear probe on the pruned encoder's pooled embeddings; nothing is fine-tuned."""
        fit_limit = recipe.fit_limit if recipe.fit_limit is not None else recipe.train_limit
        pool, evals, notes = self.splits(ctx, dataclasses.replace(recipe, train_limit=None))
        train = fit_subset(pool, fit_limit, seed)
        tokenizer = load_tokenizer(model_ref.location, ctx)
        pooling = recipe.pooling
        encoder = fresh_copy(_pristine_encoder(model_ref, ctx))
        masks = pruner(encoder)
        # The disk cache (on when the runner sets pruned_as) is keyed by the pruned weights themselves, so
        # rows whose masks ignore the seed (global, upper, lower, dense) share one set of embeddings per seed.
        pruned_as = None if recipe.pruned_as is None else {"weights": weights_digest(encoder)}
        before = measure_sparsity(encoder)
        encoder.to(ctx.accelerator.device)
        if protocol == "zeroshot" and self.zeroshot_rule == COSINE:
            fit = (None, None, None)  # the cosine rule fits nothing: skip embedding the fit subset
        else:
            fit = (*self._embed(encoder, tokenizer, train, "fit", model_ref, recipe, ctx, pruned_as), train.labels)
        metrics: dict = {}
        arrays: dict = {}
        dense_encoder = _pristine_encoder(model_ref, ctx)
        for prefix, examples in evals:
            u, v = self._embed(encoder, tokenizer, examples, "eval" + prefix, model_ref, recipe, ctx, pruned_as)
            if masks is None:  # the dense row: its embeddings are the dense ones; share them
                _cached(ctx, self._dense_key(prefix, model_ref, recipe, ctx), lambda u=u, v=v: (u, v))
            du, dv = self._dense(dense_encoder, tokenizer, examples, prefix, model_ref, recipe, ctx)
            cos, cka = drift([x for x in (u, v) if x is not None], [x for x in (du, dv) if x is not None])
            arrays[prefix + DRIFT] = cos.astype(np.float32)
            metrics.update({f"{prefix}drift_cosine": float(cos.mean()), f"{prefix}drift_cka": cka})
            evaluate = (u, v, examples.labels)
            if protocol == "probe":
                preds, score = probe_predict(fit, evaluate, self.regression, seed)
            else:
                preds, score = zeroshot_predict(self.zeroshot_rule, fit, evaluate, self.num_labels)
            metrics.update(self._evaluate(prefix, preds, score, examples.labels, arrays))
        metrics["fit_examples"] = 0 if protocol == "zeroshot" and self.zeroshot_rule == COSINE else len(train)
        metrics["eval_examples"] = sum(len(ex) for _, ex in evals)
        data = {**train.source, **{k: v for _, ex in evals for k, v in ex.source.items()}}
        notes.update(self._record_notes(evals, protocol, pooling))
        return TaskResult(metrics, before, measure_sparsity(encoder), data, notes, arrays)

    # -- protocol helpers -------------------------------------------------------------------------
    def _classifier(self, model_ref: ModelRef, ctx: RunContext, seed: int):
        """A fresh sequence classifier. The pre-trained weights load once per run and are copied per cell;
        when only the task head is new, it is initialised from ``seed`` exactly as from_pretrained does
        after ``set_seed(seed)`` (tests check weights and RNG state); otherwise the model loads afresh."""
        from transformers import AutoModelForSequenceClassification

        def load():
            return AutoModelForSequenceClassification.from_pretrained(
                model_ref.location, num_labels=self.num_labels, revision=model_ref.identity.get("revision"),
                output_loading_info=True)

        cached, info = _cached(ctx, ("pristine-classifier", model_ref.location, self.num_labels), load)
        if any(not k.startswith("classifier.") for k in info.get("missing_keys", [])):
            return load()[0]  # more than the head is new (e.g. no pooler): let from_pretrained draw it all
        model = fresh_copy(cached)
        model.train(False)
        reinit_missing(model, seed)
        return model

    def _embed(self, encoder, tokenizer, examples: Examples, role: str, model_ref: ModelRef, recipe: GlueRecipe,
               ctx: RunContext, pruned_as: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Pooled embeddings (u of text_a, v of text_b or None); tokenization cached per run.

        With ``pruned_as`` (the digest of the pruned weights: what decides the embeddings) the
        embeddings are also kept on disk (embedding_cache), so another protocol's run of the same rows
        reuses them instead of recomputing identical numbers.
        """
        max_length = recipe.max_length
        batch = recipe.eval_batch_size
        pooling = recipe.pooling
        out = []
        for side, texts in (("a", examples.text_a), ("b", examples.text_b)):
            if texts is None:
                out.append(None)
                continue
            key = ("glue-tokens", self.name, role, side, model_ref.location, max_length, _data_key(examples))
            # key and texts are bound as defaults so each closure keeps this side's values.
            def tokens(key=key, texts=texts):
                return _cached(ctx, key, lambda: dict(tokenizer(texts, truncation=True, max_length=max_length)))

            def compute(tokens=tokens):
                return embed(encoder, tokens(), pooling, batch, ctx.accelerator.device)

            if pruned_as is None:
                out.append(compute())
                continue
            identity = {"model": model_ref.identity, "pruned_as": pruned_as, "task": self.name, "role": role,
                        "side": side, "max_length": max_length, "pooling": pooling, "data": _data_key(examples)}
            out.append(embedding_cache(identity, compute))
        return out[0], out[1]

    def _dense_key(self, prefix, model_ref: ModelRef, recipe: GlueRecipe, ctx: RunContext) -> tuple:
        return ("dense-embeddings", self.name, prefix, tuple(sorted(model_ref.identity.items())),
                recipe.max_length, recipe.pooling, str(ctx.data_dir),
                recipe.eval_limit, recipe.dev_split_eval_limit)

    def _dense(self, dense_encoder, tokenizer, examples: Examples, prefix, model_ref: ModelRef, recipe: GlueRecipe,
               ctx: RunContext) -> tuple[np.ndarray, np.ndarray | None]:
        """The dense model's embeddings of an eval split (or of a drift sample), computed once per run."""
        role = "eval" + prefix if isinstance(prefix, str) else "-".join(map(str, prefix))
        return _cached(ctx, self._dense_key(prefix, model_ref, recipe, ctx),
                       lambda: self._embed(dense_encoder.to(ctx.accelerator.device), tokenizer, examples,
                                           role, model_ref, recipe, ctx, DENSE_IDENTITY))

    def _drift(self, encoder, model_ref: ModelRef, tokenizer, evals: list, recipe: GlueRecipe, ctx: RunContext,
               dense_row: bool) -> tuple[dict, dict]:
        """Drift metrics and arrays of a pruned, not yet fine-tuned encoder on a fixed sample of each eval split.

        A sample (``drift_limit``, default 256 examples, seed 1234, the same for every row) keeps the extra
        forward passes small next to a short fine-tune; the ``drift`` array then covers that sample.
        """
        limit = recipe.drift_limit
        dense_encoder = _pristine_encoder(model_ref, ctx)
        metrics, arrays = {}, {}
        encoder.to(ctx.accelerator.device)
        for prefix, examples in evals:
            sample = _limit(examples, limit)
            key = ("drift" + prefix, limit)
            if dense_row:  # the dense row's embeddings are the dense ones: compute them once
                u, v = self._dense(encoder, tokenizer, sample, key, model_ref, recipe, ctx)
            else:
                u, v = self._embed(encoder, tokenizer, sample, "drift" + prefix, model_ref, recipe, ctx)
            du, dv = self._dense(dense_encoder, tokenizer, sample, key, model_ref, recipe, ctx)
            cos, cka = drift([x for x in (u, v) if x is not None], [x for x in (du, dv) if x is not None])
            arrays[prefix + DRIFT] = cos.astype(np.float32)
            metrics.update({f"{prefix}drift_cosine": float(cos.mean()), f"{prefix}drift_cka": cka,
                            f"{prefix}drift_examples": len(sample)})
        return metrics, arrays

    def _evaluate(self, prefix: str, preds: np.ndarray, score: np.ndarray | None, labels: np.ndarray,
                  arrays: dict) -> dict:
        """Metrics of one eval split (with ROC AUC for binary scores and the collapse flag); fills ``arrays``."""
        preds = np.asarray(preds)
        metrics = self.metrics(preds, labels)
        if score is not None and not self.regression:
            metrics["roc_auc"] = roc_auc(score, labels)
            arrays[prefix + SCORE] = np.asarray(score, np.float32)
        metrics["collapsed"] = predictions.collapsed(preds, self.regression)
        arrays[prefix + PRED] = preds.astype(np.float32 if self.regression else np.int8)
        arrays[prefix + LABEL] = np.asarray(labels, np.float32 if self.regression else np.int8)
        return {f"{prefix}{k}": v for k, v in metrics.items()}

    def _record_notes(self, evals: list, protocol: str, pooling: str | None) -> dict:
        """What reports need besides the metrics: protocol, headline, direction, chance level per column."""
        notes = {"protocol": protocol, "headline": self.headline, "higher_is_better": self.higher_is_better,
                 "chance": {}}
        if pooling is not None:
            notes["pooling"] = pooling
            notes["zeroshot_rule" if protocol == "zeroshot" else "probe_model"] = (
                ZEROSHOT_RULE_NOTE[self.zeroshot_rule] if protocol == "zeroshot" else PROBE_NOTE)
        for prefix, examples in evals:
            notes["chance"].update({f"{prefix}{k}": v for k, v in chance_levels(examples.labels, self.regression,
                                                                               self.num_labels == 2).items()})
        return notes


def chance_levels(labels: np.ndarray, regression: bool, binary: bool) -> dict:
    """What a model that knows nothing scores: the majority class (accuracy, its F1), AUC 0.5, correlation 0."""
    if regression:
        return {"pearson": 0.0, "spearman": 0.0}
    values, counts = np.unique(labels, return_counts=True)
    majority, share = int(values[counts.argmax()]), float(counts.max() / len(labels))
    out = {"accuracy": share}
    if binary:
        out["f1"] = binary_f1(np.full(len(labels), majority), labels)
        out["roc_auc"] = 0.5
    return out


def reinit_missing(model, seed: int) -> None:
    """Initialise the task head (the weights from_pretrained reports missing) from ``seed``, the way
    from_pretrained does after ``set_seed(seed)``, so a copied model equals a freshly loaded one."""
    from accelerate.utils import set_seed

    set_seed(seed)
    head = getattr(model, "classifier", None)
    if head is not None:
        head.apply(model._init_weights)


def _pristine_encoder(model_ref: ModelRef, ctx: RunContext):
    """The pre-trained encoder (no task head), loaded once per run."""
    from transformers import AutoModel

    return pristine(ctx, lambda: AutoModel.from_pretrained(model_ref.location,
                                                           revision=model_ref.identity.get("revision")),
                    ("pristine-encoder", model_ref.location))


EMBEDDING_CACHE_VERSION = 2  # bump when embed() would give other numbers for the same inputs


def embedding_cache(identity: dict, compute) -> np.ndarray:
    """Embeddings kept under ``paths.cache_dir()/embeddings`` by the sha256 of everything that decides them
    (model, pruned weights' digest, task, split, text side, length, pooling, data), else ``compute()``."""
    import hashlib
    import io

    from benchmarks import paths, store
    from benchmarks.config import canonical_json

    text = canonical_json({**identity, "v": EMBEDDING_CACHE_VERSION, "torch": torch.__version__})
    path = paths.cache_dir() / "embeddings" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            pass  # unreadable: recompute and replace it
    value = compute()
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    store.write_bytes_atomic(path, buffer.getvalue())
    return value


def _data_key(examples: Examples) -> tuple:
    """Identity of a split's rows for caches: its sources' sha256 and the sha256 of its texts and labels."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(examples.text_a).encode())
    digest.update(b"\x1e" + "\x1f".join(examples.text_b or []).encode() + b"\x1e")
    digest.update(np.ascontiguousarray(examples.labels).tobytes())
    return tuple(sorted(examples.source.items())), len(examples), digest.hexdigest()


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


def _limit(examples: Examples, limit: int | None, subset_seed: int = SUBSET_SEED) -> Examples:
    """A fixed random subset of ``limit`` rows (the same for every cell), or all rows."""
    if not limit or limit >= len(examples):
        return examples
    order = np.random.default_rng(subset_seed).permutation(len(examples))[:limit]
    return examples.subset(np.sort(order))


def fit_subset(pool: Examples, limit: int | None, seed: int) -> Examples:
    """The zero-shot/probe fit subset of a cell: ``limit`` rows of ``pool`` drawn with SUBSET_SEED + seed."""
    return _limit(pool, limit, SUBSET_SEED + seed)


def fit_pool(name: str, data_dir) -> Examples:
    """What GLUE task ``name`` may fit on offline, never what it evaluates: train, or the fit halves of dev."""
    from types import SimpleNamespace

    from benchmarks.registry import TASKS

    return TASKS.get(name).splits(SimpleNamespace(data_dir=data_dir, cache=None), GlueRecipe())[0]


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, shapes, bytes): what decides its outputs."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


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


def _train_loader(dataset: _Encoded, tokenizer, recipe: GlueRecipe, seed: int, regression: bool) -> DataLoader:
    """Shuffled batches; with ``group_by_length`` batches hold examples of similar length (less padding)."""
    batch_size = recipe.batch_size
    generator = torch.Generator().manual_seed(seed)
    collate = _collator(tokenizer, regression)
    if recipe.group_by_length:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(batch_size, lengths=dataset.lengths(), generator=generator)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator)


def finetune(model, tokenizer, train: Examples, recipe: GlueRecipe, seed: int, masks, accelerator, regression: bool,
             encoded: _Encoded | None = None) -> None:
    """AdamW + linear warm-up/decay, masks re-applied after every step; runs through ``accelerator``."""
    recipe = GlueRecipe.coerce(recipe)
    from transformers import get_linear_schedule_with_warmup

    epochs = recipe.epochs
    if epochs <= 0:
        return
    processes = accelerator.num_processes
    # Each process takes its share of the recipe's global batch (see _per_process_batch).
    per_process = dataclasses.replace(recipe, batch_size=_per_process_batch(recipe.batch_size, processes))
    dataset = encoded if encoded is not None else _encode(tokenizer, train, recipe.max_length)
    loader = _train_loader(dataset, tokenizer, per_process, seed, regression)
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         "weight_decay": recipe.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = _adamw(groups, recipe.lr)
    keeper = MaskKeeper(model, masks).attach(optimizer) if masks else None
    # Optimizer steps as on one process; accelerate steps a prepared scheduler once per process per
    # optimizer step, so the schedule is laid out N times longer and lands on the one-process values.
    steps = max(1, math.ceil(len(loader) * epochs / processes))
    warmup = int(recipe.warmup_ratio * steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup * processes, steps * processes)
    pmodel, poptim, ploader, psched = accelerator.prepare(model, optimizer, loader, scheduler)
    pmodel.train()
    done = 0
    with progress.steps(steps, "fine-tuning") as advance:
        while done < steps:
            for batch in ploader:
                loss = pmodel(**batch).loss
                accelerator.backward(loss)
                poptim.step()
                psched.step()
                poptim.zero_grad()
                done += 1
                advance()
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


def predict(model, tokenizer, examples: Examples, recipe: GlueRecipe, accelerator, regression: bool,
            encoded: _Encoded | None = None) -> np.ndarray:
    """Predictions on ``examples`` in their original order (class ids, or scores for regression)."""
    logits = predict_logits(model, tokenizer, examples, recipe, accelerator, regression, encoded)
    return logits.squeeze(-1) if regression else logits.argmax(-1)


@torch.inference_mode()
def predict_logits(model, tokenizer, examples: Examples, recipe: GlueRecipe, accelerator, regression: bool,
                   encoded: _Encoded | None = None) -> np.ndarray:
    """The model's outputs (logits, or the score column for regression) on ``examples`` in their order.

    Examples are batched in order of length (far less padding), then put back in input order.
    """
    recipe = GlueRecipe.coerce(recipe)
    dataset = encoded if encoded is not None else _encode(tokenizer, examples, recipe.max_length)
    order = np.argsort(dataset.lengths(), kind="stable")
    loader = DataLoader(torch.utils.data.Subset(dataset, order.tolist()),
                        batch_size=recipe.eval_batch_size, shuffle=False,
                        collate_fn=_collator(tokenizer, regression))
    model.to(accelerator.device).eval()
    outputs = []
    for batch in accelerator.prepare_data_loader(loader):
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        outputs.append(accelerator.gather_for_metrics(logits).float().cpu())
    logits = torch.cat(outputs).numpy()
    out = np.empty_like(logits)
    out[order] = logits  # undo the length sort
    return out


register_task("mrpc")(GlueTask("mrpc", headline="accuracy", num_labels=2, f1=True, zeroshot_rule=THRESHOLD))
register_task("stsb")(GlueTask("stsb", headline="pearson", num_labels=1, zeroshot_rule=COSINE))
register_task("sst2")(GlueTask("sst2", headline="accuracy", num_labels=2))
register_task("qnli")(GlueTask("qnli", headline="accuracy", num_labels=2, dev_fallback=True))
register_task("mnli")(GlueTask("mnli", headline="accuracy", num_labels=3,
                               eval_splits=(("", "dev_matched"), ("mismatched_", "dev_mismatched")), dev_fallback=True))
