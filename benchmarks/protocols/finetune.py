"""finetune: the paper's protocol. Fine-tune the pruned model with its mask held fixed on train, predict dev."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks import progress
from benchmarks.context import RunContext
from benchmarks.data import Examples
from benchmarks.errors import UserError
from benchmarks.masking import MaskKeeper, measure_sparsity
from benchmarks.models import ModelRef
from benchmarks.protocols.base import FINETUNE, ProtocolOutput, cached, data_key, load_tokenizer
from benchmarks.protocols.embed import fresh_copy
from benchmarks.protocols.embedding import drift_sample
from benchmarks.recipes import GlueRecipe
from benchmarks.registry import register_protocol
from methods.prunable import prunable_weights


@register_protocol(FINETUNE, trains=True, pooling=False)
def finetune_protocol(task, train: Examples, evals: list, model_ref: ModelRef, pruner, recipe: GlueRecipe, seed: int,
                      ctx: RunContext) -> ProtocolOutput:
    """The paper's: fine-tune the pruned model with its mask held fixed on train, evaluate on dev."""
    from accelerate.utils import set_seed

    clock = _Clock(ctx.accelerator.device)
    tokenizer = load_tokenizer(model_ref.location, ctx)
    max_length = recipe.max_length
    set_seed(seed)  # the classifier head's initialisation and dropout depend on the seed
    model = classifier(model_ref, task.num_labels, ctx, seed)
    clock.lap("model_seconds")  # the copy of the pre-trained model (its pruning adds to it below)
    # Tokenized data is shared by every cell of the run with the same task, tokenizer, length and rows.
    encode_key = (task.name, model_ref.location, max_length)
    train_enc = cached(ctx, ("glue-encoded", "train", *encode_key, data_key(train)),
                       lambda: encode(tokenizer, train, max_length))
    clock.lap("tokenize_seconds")

    def train_round(round_model, round_masks) -> dict:  # an iterative method's fine-tuning between its rounds
        return finetune(round_model, tokenizer, None, recipe, seed, round_masks, ctx.accelerator, task.regression,
                        encoded=train_enc)

    masks = pruner(model, train=train_round) if getattr(pruner, "accepts_training", False) else pruner(model)
    before = measure_sparsity(model)
    clock.lap("model_seconds")  # the copy of the pre-trained model and its pruning (an iterative method's rounds)
    # Drift is measured on the pruned pre-trained encoder, before fine-tuning moves it.
    metrics, arrays = drift_sample(model.base_model, task.name, model_ref, tokenizer, evals, recipe, ctx,
                                   masks is None)
    clock.lap("drift_seconds")
    account = train_step(ctx, model, masks, tokenizer, train_enc, recipe, seed, task.regression,
                         ("glue-encoded", *encode_key, data_key(train)))
    clock.lap("training_seconds")
    predictions = []
    for prefix, examples in evals:
        enc = cached(ctx, ("glue-encoded", "eval" + prefix, *encode_key, data_key(examples)),
                     lambda examples=examples: encode(tokenizer, examples, max_length))
        logits = predict_logits(model, tokenizer, examples, recipe, ctx.accelerator, task.regression, encoded=enc)
        preds = logits.squeeze(-1) if task.regression else logits.argmax(-1)
        score = logits[:, 1] - logits[:, 0] if task.num_labels == 2 else None
        predictions.append((preds, score))
    clock.lap("evaluation_seconds")
    metrics["train_examples"] = len(train)
    # Seconds outside the training steps: the loader's own (data_seconds) and the cell's other parts.
    outside = {**clock.laps, "data_seconds": account.get("data_seconds", 0.0)}
    outside.pop("training_seconds")
    notes = {"finetune_account": {**account, "outside_steps_seconds": outside,
                                  "cell_seconds": round(sum(clock.laps.values()), 3)}}
    return ProtocolOutput(predictions, before, measure_sparsity(model), metrics, arrays, notes)


def train_step(ctx: RunContext, model, masks, tokenizer, train_enc: Encoded, recipe: GlueRecipe, seed: int,
               regression: bool, batches: tuple) -> dict:
    """Fine-tune ``model`` (``finetune``); under ``run --stack`` the run's stack session (benchmarks/stacking.py)
    captures the step (and stops the cell) or replays the cell's stacked training."""
    stack = getattr(ctx, "stack", None)
    if stack is not None and stack.current is not None:
        if stack.capturing:
            stack.capture(model, masks, tokenizer, train_enc, batches, recipe, seed, regression,
                          ctx.accelerator.device)  # raises Captured
        account = stack.replay(model)
        if account is not None:
            return account
    return finetune(model, tokenizer, None, recipe, seed, masks, ctx.accelerator, regression, encoded=train_enc)


class _Clock:
    """Seconds between successive ``lap(name)`` calls (the device synchronised first, so GPU work is counted)."""

    def __init__(self, device) -> None:
        self.device = device
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        _synchronize(self.device)
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self.last, 3)
        self.last = now


def _synchronize(device) -> None:
    """Wait for queued device work (CUDA runs asynchronously; on the CPU there is nothing to wait for)."""
    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(device)


def autocast(device, precision: str):
    """``torch.autocast`` to bfloat16 for ``precision: bf16`` (weights, gradients and AdamW stay float32), else
    nothing."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=getattr(device, "type", "cpu"), dtype=torch.bfloat16)


# What the account's FLOP count covers: the forward and backward matrix products of the encoder's prunable linear
# layers (6 x weights x tokens; masked weights count, dense kernels multiply them), over every token of the
# padded batches. Not counted: attention score/context products, embeddings, layer norms, the head, AdamW.
FLOP_RULE = ("6 x prunable linear weights (dense count, masked included) x tokens processed incl. padding; "
             "attention score/context matmuls, embeddings, norms, head and optimizer not counted")


def classifier(model_ref: ModelRef, num_labels: int, ctx: RunContext, seed: int):
    """A fresh sequence classifier. The pre-trained weights load once per run and are copied per cell;
    when only the task head is new, it is initialised from ``seed`` exactly as from_pretrained does
    after ``set_seed(seed)`` (tests check weights and RNG state); otherwise the model loads afresh."""
    from transformers import AutoModelForSequenceClassification

    def load():
        return AutoModelForSequenceClassification.from_pretrained(
            model_ref.location, num_labels=num_labels, revision=model_ref.identity.get("revision"),
            output_loading_info=True)

    pristine, info = cached(ctx, ("pristine-classifier", model_ref.location, num_labels), load)
    if any(not k.startswith("classifier.") for k in info.get("missing_keys", [])):
        return load()[0]  # more than the head is new (e.g. no pooler): let from_pretrained draw it all
    model = fresh_copy(pristine)
    model.train(False)
    reinit_missing(model, seed)
    return model


def reinit_missing(model, seed: int) -> None:
    """Initialise the task head (the weights from_pretrained reports missing) from ``seed``, the way
    from_pretrained does after ``set_seed(seed)``, so a copied model equals a freshly loaded one."""
    from accelerate.utils import set_seed

    set_seed(seed)
    head = getattr(model, "classifier", None)
    if head is not None:
        head.apply(model._init_weights)


class Encoded(torch.utils.data.Dataset):
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


def encode(tokenizer, examples: Examples, max_length: int) -> Encoded:
    enc = tokenizer(examples.text_a, examples.text_b, truncation=True, max_length=max_length)
    return Encoded(dict(enc), examples.labels)


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


def _train_loader(dataset: Encoded, tokenizer, recipe: GlueRecipe, seed: int, regression: bool,
                  device=None) -> DataLoader:
    """Shuffled batches; with ``group_by_length`` batches hold examples of similar length (less padding). For a
    CUDA ``device`` the batches are pinned, so their copy to the device does not wait for the last step."""
    batch_size = recipe.batch_size
    generator = torch.Generator().manual_seed(seed)
    collate = _collator(tokenizer, regression)
    pin = getattr(device, "type", "cpu") == "cuda"
    if recipe.group_by_length:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(batch_size, lengths=dataset.lengths(), generator=generator)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate, pin_memory=pin)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator,
                      pin_memory=pin)


def finetune(model, tokenizer, train: Examples, recipe: GlueRecipe, seed: int, masks, accelerator, regression: bool,
             encoded: Encoded | None = None) -> dict:
    """AdamW + linear warm-up/decay with the masks held fixed; runs through ``accelerator``.

    Returns the training account: steps, tokens processed (attention-mask ones) and padded tokens of the
    batches, the seconds of the training steps and of waiting for batches, and the steps' achieved GFLOP/s
    (``FLOP_RULE``).
    """
    recipe = GlueRecipe.coerce(recipe)
    from transformers import get_linear_schedule_with_warmup

    epochs = recipe.epochs
    if epochs <= 0:
        return {}
    processes = accelerator.num_processes
    # Each process takes its share of the recipe's global batch (see _per_process_batch).
    per_process = dataclasses.replace(recipe, batch_size=_per_process_batch(recipe.batch_size, processes))
    dataset = encoded if encoded is not None else encode(tokenizer, train, recipe.max_length)
    loader = _train_loader(dataset, tokenizer, per_process, seed, regression, accelerator.device)
    optimizer = _adamw(_param_groups(list(model.named_parameters()), recipe.weight_decay), recipe.lr)
    # Masked gradients are zeroed before each step; no pass over the weights after it: a weight that is zero
    # and never gets a gradient stays exactly zero under AdamW (zero moments, zero update, decay of zero).
    keeper = MaskKeeper(model, masks).attach(optimizer, reapply_each_step=False) if masks else None
    linear_weights = sum(w.weight.numel() for w in prunable_weights(model))
    # Optimizer steps as on one process; accelerate steps a prepared scheduler once per process per
    # optimizer step, so the schedule is laid out N times longer and lands on the one-process values.
    steps = max(1, math.ceil(len(loader) * epochs / processes))
    warmup = int(recipe.warmup_ratio * steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup * processes, steps * processes)
    pmodel, poptim, ploader, psched = accelerator.prepare(model, optimizer, loader, scheduler)
    pmodel.train()
    device = accelerator.device

    def step(batch: dict) -> None:
        with autocast(device, recipe.precision):
            loss = pmodel(**batch).loss
        accelerator.backward(loss)
        poptim.step()
        psched.step()
        poptim.zero_grad()

    counts = _train_steps(ploader, steps, "fine-tuning", device, step)
    pmodel.eval()
    if keeper:
        keeper.detach()
        keeper.reapply()
    accelerator.free_memory()
    return _account(*counts, linear_weights=linear_weights, precision=recipe.precision, processes=processes)


def _train_steps(loader, steps: int, desc: str, device, step) -> tuple[int, int, int, float, float]:
    """Call ``step(batch)`` on ``steps`` batches of ``loader`` (iterated again for each epoch), with a progress bar;
    return (steps, real tokens, padded tokens, seconds in the steps, seconds waiting for batches).

    Nothing here waits for the device between steps: the token count stays on the device until the end, so on a GPU
    the host collates and queues the next batch while the last step's kernels run (a small model's step is bound by
    those launches). On a GPU the step seconds are therefore the time to queue the steps plus the final wait for the
    device; steps and batches together are the loop's wall time.
    """
    done, real, slots, step_seconds, data_seconds = 0, None, 0, 0.0, 0.0
    with progress.steps(steps, desc, pace=True) as advance:
        while done < steps:
            waited = time.perf_counter()
            for batch in loader:
                started = time.perf_counter()
                data_seconds += started - waited
                mask = batch["attention_mask"]
                real = mask.sum() if real is None else real + mask.sum()
                slots += mask.numel()
                step(batch)
                done += 1
                waited = time.perf_counter()
                step_seconds += waited - started
                advance()
                if done >= steps:
                    break
    _synchronize(device)  # the queued steps' kernels belong to the steps' seconds
    step_seconds += time.perf_counter() - waited
    tokens = int(real) if real is not None else 0
    return done, tokens, slots - tokens, step_seconds, data_seconds


def _account(steps: int, tokens: int, padded: int, step_seconds: float, data_seconds: float, linear_weights: int,
             precision: str, processes: int) -> dict:
    """The training account a record reports (see ``finetune``)."""
    gflop = 6 * linear_weights * (tokens + padded) / 1e9
    return {"steps": steps, "tokens": tokens, "padded_tokens": padded,
            "padded_share": round(padded / max(1, tokens + padded), 4), "linear_weights": linear_weights,
            "gflop": round(gflop, 2), "step_seconds": round(step_seconds, 3), "data_seconds": round(data_seconds, 3),
            "gflops_per_s": round(gflop / step_seconds, 2) if step_seconds > 0 else None, "flop_rule": FLOP_RULE,
            "precision": precision, "processes": processes}


# Parameters AdamW does not decay (BERT's recipe): biases and layer norms.
NO_DECAY = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")


def _param_groups(named: list, weight_decay: float) -> list[dict]:
    """AdamW's two groups: decayed weights, and biases and norms without decay."""
    return [{"params": [p for n, p in named if not any(nd in n for nd in NO_DECAY)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0}]


def finetune_stacked(jobs: list, accelerator) -> list[dict]:
    """Fine-tune the captured cells of ``jobs`` (benchmarks/stacking.py) as one stacked model; return their accounts.

    The models' parameters are stacked along a new first dimension and one ``vmap`` of the model's forward
    computes every cell's loss on the shared batch; the summed loss gives each cell its own gradient, and AdamW,
    its schedule and the masks act elementwise, so each cell follows the steps it would take alone. Dropout is
    drawn once for the stack (``randomness="same"``) from the generator state the cells captured, as each cell
    alone draws it. The trained weights are written back into each job's model.
    """
    from torch.func import functional_call, stack_module_state, vmap
    from transformers import get_linear_schedule_with_warmup

    first = jobs[0]
    recipe = GlueRecipe.coerce(first.recipe)
    if accelerator.num_processes != 1:
        raise RuntimeError("stacked cells train in one process")
    if recipe.epochs <= 0:
        return [{} for _ in jobs]
    device = accelerator.device
    models = [job.model.to(device).train() for job in jobs]
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta").train()  # the forward's code; the weights come from ``params``
    _plain_attention(skeleton)
    loader = _train_loader(first.dataset, first.tokenizer, recipe, first.seed, first.regression, device)
    optimizer = _adamw(_param_groups(list(params.items()), recipe.weight_decay), recipe.lr)
    # As for a lone cell: masked gradients are zeroed before each step (weights that are zero stay zero).
    keeper = MaskKeeper.for_params(params, _stacked_masks(jobs, params)).attach(optimizer, reapply_each_step=False)
    linear_weights = sum(w.weight.numel() for w in prunable_weights(models[0]))
    steps = max(1, math.ceil(len(loader) * recipe.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(recipe.warmup_ratio * steps), steps)
    poptim, ploader, psched = accelerator.prepare(optimizer, loader, scheduler)

    def loss_of(p: dict, b: dict, batch: dict) -> torch.Tensor:
        return functional_call(skeleton, (p, b), (), batch).loss

    stacked_loss = vmap(loss_of, in_dims=(0, 0, None), randomness="same")

    def step(batch: dict) -> None:
        with autocast(device, recipe.precision):
            loss = stacked_loss(params, buffers, dict(batch))
        accelerator.backward(loss.sum())
        poptim.step()
        psched.step()
        poptim.zero_grad()

    done, tokens, padded, step_seconds, data_seconds = _train_steps(
        ploader, steps, f"fine-tuning {len(jobs)} stacked cells", device, step)
    keeper.detach()
    keeper.reapply()
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, param in model.named_parameters():
                param.copy_(params[name][i])
            model.eval()
    accelerator.free_memory()
    k = len(jobs)
    shared = _account(done, tokens, padded, step_seconds / k, data_seconds / k, linear_weights=linear_weights,
                      precision=recipe.precision, processes=1)
    return [{**shared, "stack": {"models": k, "position": i, "step_seconds": round(step_seconds, 3),
                                 "keys": [job.key for job in jobs]}} for i in range(k)]


def _plain_attention(model) -> None:
    """Attention as plain matrix products, softmax and dropout under the stack's vmap: a fused attention kernel
    (CUDA's flash or memory-efficient ones) draws its dropout inside the kernel, which vmap cannot draw once for
    the stack. On a CPU, training uses these plain operations anyway (its fused kernel has no dropout)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:  # older transformers
        model.config._attn_implementation = "eager"


def _stacked_masks(jobs: list, params: dict) -> dict:
    """{parameter name: [K, ...] 0/1 mask} for every parameter some job masks (ones where a job keeps it all), on
    the CPU (MaskKeeper moves them to the parameters' device)."""
    names = sorted({name for job in jobs for name in (job.masks or {})})
    out = {}
    for name in names:
        ones = torch.ones(params[name].shape[1:], dtype=params[name].dtype)
        out[name] = torch.stack([(job.masks or {}).get(name, ones).to(ones.dtype).cpu() for job in jobs])
    return out


def _per_process_batch(batch_size: int, processes: int) -> int:
    """The recipe's batch size is the global batch: each of N processes takes 1/N of it per step,
    so a cell's numbers do not depend on how many processes ran it."""
    if batch_size % processes:
        raise UserError(f"recipe batch_size {batch_size} does not split evenly over {processes} processes; "
                        f"launch a divisor of {batch_size} processes")
    return batch_size // processes


def predict(model, tokenizer, examples: Examples, recipe: GlueRecipe, accelerator, regression: bool,
            encoded: Encoded | None = None) -> np.ndarray:
    """Predictions on ``examples`` in their original order (class ids, or scores for regression)."""
    logits = predict_logits(model, tokenizer, examples, recipe, accelerator, regression, encoded)
    return logits.squeeze(-1) if regression else logits.argmax(-1)


@torch.inference_mode()
def predict_logits(model, tokenizer, examples: Examples, recipe: GlueRecipe, accelerator, regression: bool,
                   encoded: Encoded | None = None) -> np.ndarray:
    """The model's outputs (logits, or the score column for regression) on ``examples`` in their order.

    Examples are batched in order of length (far less padding), then put back in input order.
    """
    recipe = GlueRecipe.coerce(recipe)
    dataset = encoded if encoded is not None else encode(tokenizer, examples, recipe.max_length)
    order = np.argsort(dataset.lengths(), kind="stable")
    loader = DataLoader(torch.utils.data.Subset(dataset, order.tolist()),
                        batch_size=recipe.eval_batch_size, shuffle=False,
                        collate_fn=_collator(tokenizer, regression))
    model.to(accelerator.device).eval()
    outputs = []
    for batch in accelerator.prepare_data_loader(loader):
        with autocast(accelerator.device, recipe.precision):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        outputs.append(accelerator.gather_for_metrics(logits).float().cpu())
    logits = torch.cat(outputs).numpy()
    out = np.empty_like(logits)
    out[order] = logits  # undo the length sort
    return out
