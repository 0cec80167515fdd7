"""Choose a fine-tune scale on DENSE only, scored on a held-out part of the TRAIN split (never dev, never pruned rows).

    python -m benchmarks.devtools.ftscale --task stsb --train-limit 1000 --epochs 2 --max-length 64 --lr 1e-4

The held-out part is the last ``--heldout`` examples of the train split in the fixed SUBSET_SEED order, so it is
disjoint from the first ``train_limit`` examples a scale fine-tunes on (``benchmarks.data.fixed_subset``). Prints
one JSON line: the recipe, the held-out metric with a 95% bootstrap interval, the task's baseline (majority class;
0 for correlation) and the wall time. docs/protocols.md lists the selection runs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def heldout_split(train, train_limit: int, heldout: int):
    """(fit examples, held-out examples): disjoint parts of ``train`` in the fixed subset order."""
    from benchmarks.data import SUBSET_SEED

    order = np.random.default_rng(SUBSET_SEED).permutation(len(train))
    if train_limit + heldout > len(train):
        raise SystemExit(f"error: train split has {len(train)} examples, fewer than {train_limit} + {heldout}; "
                         f"lower --train-limit or --heldout")
    return train.subset(np.sort(order[:train_limit])), train.subset(np.sort(order[-heldout:]))


def bootstrap(metric, preds: np.ndarray, labels: np.ndarray, resamples: int = 1000) -> tuple[float, float]:
    """95% percentile interval of ``metric`` over examples resampled with replacement (fixed seed)."""
    rng = np.random.default_rng(20221)
    values = [metric(preds[i], labels[i]) for i in rng.integers(0, len(labels), size=(resamples, len(labels)))]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def main(argv: list[str] | None = None) -> int:
    """Fine-tune dense on a train subset and score it on held-out train examples; print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.ftscale")
    parser.add_argument("--task", required=True)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--train-limit", type=int, required=True)
    parser.add_argument("--heldout", type=int, default=500)
    parser.add_argument("--epochs", type=float, required=True)
    parser.add_argument("--max-length", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from benchmarks import paths
    from benchmarks.context import RunContext
    from benchmarks.data import load_glue
    from benchmarks.models import resolve_model
    from benchmarks.protocols.finetune import classifier, finetune, predict
    from benchmarks.recipes import GlueRecipe
    from benchmarks.registry import TASKS

    start = time.perf_counter()
    task = TASKS.get(args.task)
    ref = resolve_model(args.model)
    ctx = RunContext(paths.default_data_dir(), paths.DEFAULT_RESULTS, Accelerator(cpu=True), ref)
    fit, held = heldout_split(load_glue(args.task, "train", ctx.data_dir), args.train_limit, args.heldout)
    recipe = GlueRecipe(lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, max_length=args.max_length,
                        group_by_length=True, train_limit=args.train_limit)
    from benchmarks.protocols.base import load_tokenizer

    tokenizer = load_tokenizer(ref.location, ctx)
    set_seed(args.seed)
    model = classifier(ref, task.num_labels, ctx, args.seed)
    account = finetune(model, tokenizer, fit, recipe, args.seed, None, ctx.accelerator, task.regression)
    preds = predict(model, tokenizer, held, recipe, ctx.accelerator, task.regression)
    labels = np.asarray(held.labels)
    headline = task.headline

    def metric(p, y):
        return task.metrics(p, y)[headline]

    if task.regression:
        baseline = 0.0
    else:
        baseline = float(np.max(np.bincount(labels.astype(int))) / len(labels))
    print(json.dumps({"task": args.task, "model": args.model, "train_limit": args.train_limit,
                      "heldout": args.heldout, "epochs": args.epochs, "max_length": args.max_length, "lr": args.lr,
                      "batch_size": args.batch_size, "seed": args.seed, "metric": headline,
                      "value": metric(preds, labels), "interval": bootstrap(metric, preds, labels),
                      "baseline": baseline, "training": account, "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
