"""What a protocol returns, and the per-run caches that protocols and tasks share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from benchmarks.context import RunContext
from benchmarks.data import SUBSET_SEED, Examples, fixed_subset

FINETUNE = "finetune"  # the paper's protocol: its cells keep the keys they had before protocols existed


@dataclass
class ProtocolOutput:
    """Per-example predictions of each eval split (in the order the task gave them) and what the record adds."""

    predictions: list  # one (predictions, binary score or None) per eval split
    sparsity_before: dict  # benchmarks.masking.measure_sparsity of the pruned model
    sparsity_after: dict  # measured again after training (equal to before when nothing trains)
    metrics: dict = field(default_factory=dict)  # the protocol's own: drift, examples fitted on, ...
    arrays: dict = field(default_factory=dict)  # per-example arrays (benchmarks/predictions.py names)
    notes: dict = field(default_factory=dict)  # e.g. pooling, the zero-shot rule, the training account


def fit_subset(pool: Examples, limit: int | None, seed: int) -> Examples:
    """A training-free protocol's fit subset of one cell: ``limit`` rows of ``pool`` drawn with SUBSET_SEED + seed.

    Seed 0 draws the rows every seed-0 record was made with; other seeds fit on other rows, so an interval
    over seeds covers the choice of fit examples. Evaluation rows never depend on the seed (fixed_subset).
    """
    return fixed_subset(pool, limit, SUBSET_SEED + seed)


def cached(ctx: RunContext | None, key: tuple, build):
    """``ctx.cache[key]``, built once per run (the cache lives as long as the RunContext)."""
    if ctx is None or getattr(ctx, "cache", None) is None:
        return build()
    if key not in ctx.cache:
        ctx.cache[key] = build()
    return ctx.cache[key]


def load_tokenizer(location: str, ctx: RunContext | None = None):
    """The model's tokenizer, loaded once per run."""
    from transformers import AutoTokenizer

    return cached(ctx, ("tokenizer", location), lambda: AutoTokenizer.from_pretrained(location))


def data_key(examples: Examples) -> tuple:
    """Identity of a split's rows for caches: its sources' sha256 and the sha256 of its texts and labels."""
    digest = hashlib.sha256("\x1f".join(examples.text_a).encode())
    digest.update(b"\x1e" + "\x1f".join(examples.text_b or []).encode() + b"\x1e")
    digest.update(np.ascontiguousarray(examples.labels).tobytes())
    return tuple(sorted(examples.source.items())), len(examples), digest.hexdigest()
