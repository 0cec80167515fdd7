"""``run --stack K``: fine-tune up to K cells of one task and seed as one stacked model (docs/stacking.md).

MiniLM-L6 at batch 32 is far too small to fill a GPU: a step is bound by kernel launches, not arithmetic. Cells
that differ only in their pruning (same task, seed and recipe) see the same batches, so their models can be
stacked along a new leading dimension and trained by one ``torch.func.vmap`` call: one launch sequence for K
models. Dropout is drawn once per step for the whole stack (``randomness="same"``), exactly as each cell alone
draws it from the same generator state, so a stacked cell reproduces the cell trained alone (to float rounding;
tests/test_stacking.py) and its record is the same cell, not a new one.

How the runner does it, for each group of claimed cells:

1. *capture*: each cell runs as usual up to its training step, which records a ``TrainJob`` (the pruned model,
   masks, batches, generator state) and stops the cell with ``Captured``;
2. *train*: jobs whose model shapes, recipe, data, seed and generator state agree are trained as one stack
   (``benchmarks.protocols.finetune.finetune_stacked``); the trained weights are kept per cell;
3. *replay*: each cell runs again from the start (its pruning and tokenization are cached); its training step
   checks that it rebuilt the very model that was captured, loads the trained weights and reports the stack's
   account, and the cell evaluates and writes its record as any other.

A cell that never reached training, or whose stack failed, simply trains alone in step 3.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

# Config fields that may differ inside one stack: the row (how the model is pruned). Everything else (task, seed,
# recipe, model, scale, protocol) must agree for the cells to share batches.
ROW_FIELDS = frozenset({"method", "sparsity", "options", "label", "method_version", "method_plugin", "calibration",
                        "cost"})


class Captured(Exception):
    """Raised by a cell's training step in the capture phase: the cell stops there (not an error)."""


@dataclass
class TrainJob:
    """What one cell's training step was given, captured so that several cells train as one stack."""

    key: str
    model: torch.nn.Module
    masks: dict | None
    tokenizer: Any
    dataset: Any  # benchmarks.protocols.finetune.Encoded
    batches: tuple  # what the dataset is (task, tokenizer, max length, rows' digest): equal batches for equal values
    recipe: Any
    seed: int
    regression: bool
    rng: tuple  # the generators' states when training starts (dropout draws from them)
    fingerprint: str  # of the pruned model before training: the replay must rebuild the same one

    def compatible(self) -> tuple:
        """Jobs with equal values here may share a stack (same shapes, batches, schedule and dropout draws)."""
        shapes = tuple((n, tuple(p.shape)) for n, p in self.model.named_parameters())
        return (type(self.model).__name__, shapes, repr(self.recipe), self.seed, self.regression, repr(self.batches),
                _rng_digest(self.rng))


@dataclass
class Trained:
    """A stacked cell's trained parameters (on the CPU) and the training account its record reports."""

    fingerprint: str
    params: dict
    account: dict


@dataclass
class StackSession:
    """The run's stacking state: the cell being captured (if any), and trained weights waiting for their replay."""

    size: int
    current: str | None = None  # the key of the cell running now
    capturing: bool = False  # True in the capture phase: the cell's training step records a TrainJob and stops
    jobs: list = field(default_factory=list)
    trained: dict = field(default_factory=dict)  # cell key -> Trained
    warned: bool = False

    def capture(self, model, masks, tokenizer, dataset, batches: tuple, recipe, seed: int, regression: bool,
                device) -> None:
        """Record the current cell's training step as a TrainJob and stop the cell (raises Captured)."""
        self.jobs.append(TrainJob(self.current, model, masks, tokenizer, dataset, batches, recipe, seed, regression,
                                  rng_state(device), fingerprint(model)))
        raise Captured(self.current)

    def replay(self, model) -> dict | None:
        """Load the current cell's stacked training into ``model`` and return its account; None when the cell was
        not trained in a stack, or rebuilt another model than the one captured (then it trains alone)."""
        trained = self.trained.pop(self.current, None)
        if trained is None:
            return None
        if trained.fingerprint != fingerprint(model):
            print(f"warning: cell {self.current} rebuilt another pruned model than the one its stack trained; it "
                  f"trains alone", file=sys.stderr)
            return None
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(trained.params[name])
        model.eval()
        return trained.account


def rng_state(device) -> tuple:
    """The generator states a training step draws dropout from: the CPU's, and the CUDA device's when on one."""
    cuda = torch.cuda.get_rng_state(device) if getattr(device, "type", "cpu") == "cuda" else None
    return torch.get_rng_state(), cuda


def set_rng_state(state: tuple, device) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _rng_digest(state: tuple) -> str:
    digest = hashlib.sha256()
    for part in state:
        if part is not None:
            digest.update(part.cpu().numpy().tobytes())
    return digest.hexdigest()


def fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the model's parameter names, shapes and values (float32 bytes)."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(f"{name}{tuple(param.shape)}".encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def stack_key(config: dict) -> tuple | None:
    """Cells with equal keys may be stacked (None: the cell trains alone, e.g. another protocol than finetune)."""
    if config.get("kind") != "prune-finetune" or config.get("protocol", "finetune") != "finetune":
        return None
    from benchmarks.registry import trains_between_rounds

    if trains_between_rounds(config.get("method")):
        return None  # its rounds fine-tune before the stacked step could capture the cell (benchmarks/iterative.py)
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k not in ROW_FIELDS))


def plan_groups(cells: list, size: int) -> list[list]:
    """The cells in groups of at most ``size`` with one stack key each, in the order the groups first appear."""
    groups: dict = {}
    out = []
    for cell in cells:
        key = stack_key(cell.config)
        if key is None or size <= 1:
            out.append([cell])
            continue
        group = groups.get(key)
        if group is None or len(group) >= size:
            group = groups[key] = []
            out.append(group)
        group.append(cell)
    return out


def train_jobs(session: StackSession, accelerator) -> None:
    """Train the captured jobs, stacked by compatibility (groups of one are left to train alone at replay)."""
    by_kind: dict = {}
    for job in session.jobs:
        by_kind.setdefault(job.compatible(), []).append(job)
    session.jobs = []
    for jobs in by_kind.values():
        if len(jobs) >= 2:
            _train_stack(jobs, session, accelerator)


def _train_stack(jobs: list, session: StackSession, accelerator) -> None:
    """Train ``jobs`` as one stack; out of memory, as two halves (down to stacks of 2); on any other error, or out
    of memory at 2, leave the cells to train alone (one warning per run)."""
    from benchmarks.protocols.finetune import finetune_stacked

    failure = None
    try:
        set_rng_state(jobs[0].rng, accelerator.device)  # the state every job of the stack captured
        accounts = finetune_stacked(jobs, accelerator)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever stops a stack, its cells can still train alone
        failure = (f"{exc.__class__.__name__}: {exc}", is_out_of_memory(exc))
    if failure is not None:
        # Handled here, after the except block: the exception's traceback holds the failed stack's frames (its
        # stacked weights, moments and activations), so only now can their device memory be freed for a retry.
        _free_device_memory(accelerator)
        _after_failure(jobs, session, accelerator, *failure)
        return
    for job, account in zip(jobs, accounts):
        params = {n: p.detach().cpu().clone() for n, p in job.model.named_parameters()}
        session.trained[job.key] = Trained(job.fingerprint, params, account)
        job.model = None  # the trained weights are kept; the captured model can go


def _after_failure(jobs: list, session: StackSession, accelerator, reason: str, out_of_memory: bool) -> None:
    """Retry a stack that ran out of memory as two halves (nothing of the failed try was kept); otherwise leave its
    cells to train alone at their replay, with one warning per run."""
    if out_of_memory and len(jobs) >= 4:
        half = len(jobs) // 2
        print(f"note: a stack of {len(jobs)} cells ran out of memory; training it as stacks of {half} and "
              f"{len(jobs) - half}", file=sys.stderr)
        _train_stack(jobs[:half], session, accelerator)
        _train_stack(jobs[half:], session, accelerator)
        return
    if not session.warned:
        print(f"warning: a stack of {len(jobs)} cells could not train together ({reason}); its cells train one at "
              f"a time", file=sys.stderr)
        session.warned = True
    for job in jobs:
        job.model = None  # each cell rebuilds its model at its replay: the captured copy need not hold memory


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device (or host) allocation failure."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_device_memory(accelerator) -> None:
    """Drop what a failed stack left: the optimizer and loader accelerate still holds, then the device's cache."""
    free = getattr(accelerator, "free_memory", None)
    if free is not None:
        free()  # clears accelerate's references, collects garbage and empties the CUDA cache
