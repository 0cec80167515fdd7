"""GLUE tasks: data, splits and metrics. How a pruned encoder is judged on them is a protocol (benchmarks/protocols)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchmarks import predictions
from benchmarks.context import RunContext
from benchmarks.data import GLUE, SUBSET_SEED, Examples, fixed_subset, is_mnli_subset, load_glue
from benchmarks.errors import DataMissing
from benchmarks.models import ModelRef
from benchmarks.predictions import LABEL, PRED, SCORE
from benchmarks.protocols.base import cached, fit_subset
from benchmarks.protocols.embed import CENTROID, COSINE, THRESHOLD, roc_auc
from benchmarks.recipes import GlueRecipe
from benchmarks.registry import PROTOCOLS, protocol_spec, register_task
from benchmarks.tasks.base import Pruner, TaskResult

# QNLI offline: the mirror has dev only; train on one half of dev, evaluate on the other (flagged).
MNLI_SUBSET_NOTE = ("1k sample of MNLI dev: the mirror holds two 1,000-example samples of MNLI dev (matched, "
                    "mismatched) and no train; fitted on a fixed half of each (seed 1234), evaluated on the other half")
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
    zeroshot_rule: str = CENTROID  # which training-free rule the zeroshot protocol uses here (docs/protocols.md)
    recipe_type: ClassVar[type] = GlueRecipe  # the recipe family this task reads (benchmarks/recipes.py)
    fine_tunes: ClassVar[bool] = True  # under a protocol that trains, the pruned model is fine-tuned on the task

    @property
    def regression(self) -> bool:
        return GLUE[self.name].regression

    @property
    def protocols(self) -> tuple:
        """Every registered protocol: each turns this task's data into per-example predictions."""
        return tuple(PROTOCOLS.names())

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
        return cached(ctx, key, lambda: self._load_splits(ctx, recipe))

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
        train = fixed_subset(train, recipe.train_limit)
        evals = [(prefix, fixed_subset(ex, recipe.eval_limit)) for prefix, ex in evals]
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
            evals.append((prefix, fixed_subset(dev.subset(np.sort(order[half:])), recipe.dev_split_eval_limit)))
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
        """Judge the pruned encoder by the cell's protocol (``recipe.protocol``) and score its predictions."""
        recipe = GlueRecipe.coerce(recipe)
        protocol = protocol_spec(recipe.protocol)
        limit = protocol.train_limit(recipe)
        if protocol.trains:  # fine-tuning reads the fixed subset, the same for every seed
            train, evals, notes = self.splits(ctx, dataclasses.replace(recipe, train_limit=limit))
        else:  # a training-free protocol fits on a subset drawn with the cell's seed (seed 0: the fixed one)
            pool, evals, notes = self.splits(ctx, dataclasses.replace(recipe, train_limit=None))
            train = fit_subset(pool, limit, seed)
        out = protocol.predict(self, train, evals, model_ref, pruner, recipe, seed, ctx)
        metrics, arrays = {}, dict(out.arrays)
        for (prefix, examples), (preds, score) in zip(evals, out.predictions, strict=True):
            metrics.update(self._evaluate(prefix, preds, score, examples.labels, arrays))
        metrics.update(out.metrics)
        metrics["eval_examples"] = sum(len(ex) for _, ex in evals)
        data = {**train.source, **{k: v for _, ex in evals for k, v in ex.source.items()}}
        notes = {**notes, **self._record_notes(evals, recipe.protocol), **out.notes}
        return TaskResult(metrics, out.sparsity_before, out.sparsity_after, data, notes, arrays)

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

    def _record_notes(self, evals: list, protocol: str) -> dict:
        """What reports need besides the metrics: protocol, headline, direction, chance level per column."""
        notes = {"protocol": protocol, "headline": self.headline, "higher_is_better": self.higher_is_better,
                 "chance": {}}
        for prefix, examples in evals:
            notes["chance"].update({f"{prefix}{k}": v for k, v in chance_levels(examples.labels, self.regression,
                                                                               self.num_labels == 2).items()})
        return notes


def fit_pool(name: str, data_dir) -> Examples:
    """What GLUE task ``name`` may fit on offline, never what it evaluates: train, or the fit halves of dev."""
    from types import SimpleNamespace

    from benchmarks.registry import TASKS

    return TASKS.get(name).splits(SimpleNamespace(data_dir=data_dir, cache=None), GlueRecipe())[0]


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


register_task("mrpc")(GlueTask("mrpc", headline="accuracy", num_labels=2, f1=True, zeroshot_rule=THRESHOLD))
register_task("stsb")(GlueTask("stsb", headline="pearson", num_labels=1, zeroshot_rule=COSINE))
register_task("sst2")(GlueTask("sst2", headline="accuracy", num_labels=2))
register_task("qnli")(GlueTask("qnli", headline="accuracy", num_labels=2, dev_fallback=True))
register_task("mnli")(GlueTask("mnli", headline="accuracy", num_labels=3,
                               eval_splits=(("", "dev_matched"), ("mismatched_", "dev_mismatched")), dev_fallback=True))
