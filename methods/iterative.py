"""Iterative magnitude pruning with rewinding (IMP), the lottery-ticket procedure of Frankle and Carbin (2019) as
Chen et al. (2020) apply it to pre-trained BERT: fine-tune, prune the smallest-magnitude weights of the fine-tuned
model, rewind the kept weights to their pre-trained values, and repeat until the target sparsity; the cell then
fine-tunes the final ticket from the pre-trained weights as every other row does.

The registered function is one round: global magnitude over the model's current weights (weights pruned in an
earlier round are zero, so they go first and the masks are nested). The rounds, the fine-tuning between them and
the rewinding are the runner's (``benchmarks/iterative.py``), because a method never trains: registering it with
``trains=True`` asks for them.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.registry import register_method
from methods.patterns import no_pattern
from methods.prunable import prunable_weights
from methods.select import Masks, check_rate, exact_magnitude_masks

ROUNDS = 2  # fine-tune-prune-rewind rounds by default: each round costs one full fine-tuning of the cell
MAX_ROUNDS = 20


def round_rates(sparsity: float, rounds: int) -> list[float]:
    """The sparsity after each round: every round keeps the same share of what the last one kept, so the kept
    share after round r of R is (1 - sparsity) ** (r / R); the last rate is ``sparsity`` exactly."""
    return [1 - (1 - sparsity) ** (r / rounds) for r in range(1, rounds)] + [sparsity]


def _check_imp(sparsity: float, options: dict) -> None:
    check_rate(sparsity)
    no_pattern("imp", options)
    rounds = options.get("rounds", ROUNDS)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"imp rounds must be a whole number from 1 to {MAX_ROUNDS}, got {rounds!r}; "
                         f"e.g. rounds: {ROUNDS}")


def _imp_label(sparsity: float, options: dict) -> str:
    """'imp2-0.5': IMP in 2 rounds to sparsity 0.5."""
    return f"imp{options.get('rounds', ROUNDS)}-{sparsity:g}"


@register_method("imp", options={"rounds": (int,), "pattern": (str,)}, validate=_check_imp, trains=True,
                 label=_imp_label, example_options={"rounds": ROUNDS}, title="IMP (lottery ticket, rewound)",
                 color="C9")
def iterative_magnitude(model: nn.Module, sparsity: float, generator: torch.Generator | None = None,
                        rounds: int = ROUNDS, **options) -> Masks:
    """Lottery tickets: magnitude pruning in rounds of fine-tuning, rewound to pre-trained weights (Chen et al. 2020).

    This function is one round, global magnitude over the current weights; the runner fine-tunes between
    ``rounds`` rounds (benchmarks/iterative.py)."""
    _check_imp(sparsity, {"rounds": rounds, **options})
    return exact_magnitude_masks({w.name: w.weight for w in prunable_weights(model)}, sparsity)
