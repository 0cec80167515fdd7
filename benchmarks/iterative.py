"""The rounds of an iterative pruning method (``register_method(..., trains=True)``, e.g. ``imp``).

Each round fine-tunes the cell's model with the masks so far (the cell's own recipe, seed and train data), prunes
the fine-tuned weights with the method at that round's rate, and rewinds every kept weight, the task head
included, to its value before the first round (the pre-trained weights: Chen et al. 2020's rewinding for BERT).
The cell then fine-tunes the final masks from there, as it fine-tunes any other row's masks. Every fine-tuning
starts from the random-generator state the cell had before the rounds, so each draws the dropout a one-shot cell
draws: the ticket's fine-tuning differs from a one-shot row's in the mask alone. A ticket depends on the
task it was fine-tuned on, so it is never shared between the tasks of a row (unlike one-shot masks).

The cell key names the method and its ``rounds``; a change here that would give other tickets needs the method's
``version`` bumped (benchmarks/identity.py), as a change of the method's own code does.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.masking import apply_pruning, method_result, prune_with_method
from benchmarks.registry import METHODS
from benchmarks.stacking import rng_state, set_rng_state

# train(model, masks or None): fine-tunes ``model`` in place with the masks held fixed (the protocol's fine-tuning)
Train = Callable[[nn.Module, dict | None], object]


def rounds_of(config: dict) -> int:
    """The row's number of rounds: its ``rounds`` option, else the default of the method's ``rounds`` argument."""
    options = config.get("options") or {}
    if "rounds" in options:
        return int(options["rounds"])
    default = inspect.signature(METHODS.get(config["method"])).parameters.get("rounds")
    return int(default.default) if default is not None and default.default is not inspect.Parameter.empty else 1


def iterative_prune(model: nn.Module, config: dict, seed: int, ctx, train: Train) -> tuple[dict, dict, dict]:
    """Prune ``model`` in place over the row's rounds with ``train`` between them; return (the final keep-masks,
    record notes, data provenance) as ``prune_with_method`` does, the notes with the rounds' account."""
    from methods.iterative import round_rates
    from methods.select import split_result

    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    # Every fine-tuning of the cell draws the dropout the cell would draw without rounds: round 1 is the dense
    # row's fine-tuning, and the ticket's final one differs from a one-shot row's in its mask alone.
    device = next(model.parameters()).device
    generators = rng_state(device)
    oneshot = split_result(method_result(model, config, seed, ctx)[0])[0]  # one round on the pre-trained weights
    rates = round_rates(float(config["sparsity"]), rounds_of(config))
    masks, notes, data, seconds = None, {}, {}, []
    for i, rate in enumerate(rates):
        began = time.perf_counter()
        set_rng_state(generators, device)
        train(model, masks)
        seconds.append(round(time.perf_counter() - began, 3))
        found, notes, data = prune_with_method(model, {**config, "sparsity": rate}, seed, ctx)
        if masks is not None:
            _check_nested(masks, found, i + 1)
        _rewind(model, start)
        apply_pruning(model, found)
        masks = found
    set_rng_state(generators, device)
    notes = {**notes, "iterative": {"rounds": len(rates), "rates": [round(r, 6) for r in rates],
                                    "training_seconds": seconds, "rewound_to": "pre-trained",
                                    "kept_also_by_oneshot": _kept_share(masks, oneshot)}}
    return masks, notes, data


def _check_nested(before: dict, after: dict, round_: int) -> None:
    """A later round prunes only weights the earlier ones kept (else the method is not iterative magnitude)."""
    revived = sum(int((after[name] & ~before[name]).sum()) for name in after if name in before)
    if revived or set(before) - set(after):
        raise RuntimeError(f"round {round_} keeps {revived} weights an earlier round pruned: the method's masks "
                           "are not nested, so its rounds are not iterative pruning")


def _rewind(model: nn.Module, start: dict) -> None:
    """Every parameter back to its value before the first round."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(start[name])


def _kept_share(masks: dict, oneshot: dict) -> float:
    """Of the weights the rounds keep, the share one-shot pruning of the pre-trained weights also keeps."""
    kept = sum(int(m.sum()) for m in masks.values())
    both = sum(int((m & oneshot[name]).sum()) for name, m in masks.items())
    return round(both / kept, 6) if kept else 1.0
