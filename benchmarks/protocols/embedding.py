"""The pruned encoder's pooled embeddings, the dense model's, drift between them, and the embedding cache.

Shared by the training-free protocols (zeroshot, probe: a head on the embeddings) and by finetune
(drift of the pruned encoder before training).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from benchmarks.context import RunContext
from benchmarks.data import Examples, fixed_subset
from benchmarks.masking import measure_sparsity
from benchmarks.models import ModelRef
from benchmarks.predictions import DRIFT
from benchmarks.protocols.base import ProtocolOutput, cached, data_key, load_tokenizer
from benchmarks.protocols.embed import DENSE_IDENTITY, drift, embed, fresh_copy, pristine

# 2: keyed by the pruned weights' digest (1: by the row's method, rate, options and seed)
EMBEDDING_CACHE_VERSION = 2  # bump when embed() would give other numbers for the same inputs


def pristine_encoder(model_ref: ModelRef, ctx: RunContext):
    """The pre-trained encoder (no task head), loaded once per run."""
    from transformers import AutoModel

    return pristine(ctx, lambda: AutoModel.from_pretrained(model_ref.location,
                                                           revision=model_ref.identity.get("revision")),
                    ("pristine-encoder", model_ref.location))


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


# Weights that never enter a pooled embedding (embed() reads the last hidden states). The pooler is also freshly
# random at every load of a checkpoint saved without one (an MLM checkpoint), which would defeat the cache.
NOT_EMBEDDED = ("pooler.",)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the parameters and buffers that decide a model's embeddings (names, dtypes, shapes, bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name.startswith(NOT_EMBEDDED):
            continue
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def embed_examples(encoder, tokenizer, examples: Examples, role: str, task: str, model_ref: ModelRef, recipe,
                   ctx: RunContext, pruned_as: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled embeddings (u of text_a, v of text_b or None); tokenization cached per run.

    With ``pruned_as`` (what decides the encoder's weights: their digest, or the dense model's identity) the
    embeddings are also kept on disk (embedding_cache), so another protocol's run of the same rows, or another
    seed of a row whose masks ignore the seed, reuses them instead of recomputing identical numbers.
    """
    max_length, batch, pooling = recipe.max_length, recipe.eval_batch_size, recipe.pooling
    out = []
    for side, texts in (("a", examples.text_a), ("b", examples.text_b)):
        if texts is None:
            out.append(None)
            continue
        key = ("glue-tokens", task, role, side, model_ref.location, max_length, data_key(examples))

        # key and texts are bound as defaults so each closure keeps this side's values.
        def tokens(key=key, texts=texts):
            return cached(ctx, key, lambda: dict(tokenizer(texts, truncation=True, max_length=max_length)))

        def compute(tokens=tokens):
            return embed(encoder, tokens(), pooling, batch, ctx.accelerator.device)

        if pruned_as is None:
            out.append(compute())
            continue
        identity = {"model": model_ref.identity, "pruned_as": pruned_as, "task": task, "role": role,
                    "side": side, "max_length": max_length, "pooling": pooling, "data": data_key(examples)}
        out.append(embedding_cache(identity, compute))
    return out[0], out[1]


def dense_key(task: str, prefix, model_ref: ModelRef, recipe, ctx: RunContext) -> tuple:
    """The run-cache key of the dense model's embeddings of one eval split (or drift sample)."""
    return ("dense-embeddings", task, prefix, tuple(sorted(model_ref.identity.items())),
            recipe.max_length, recipe.pooling, str(ctx.data_dir),
            recipe.eval_limit, recipe.dev_split_eval_limit)


def dense_embeddings(dense_encoder, tokenizer, examples: Examples, prefix, task: str, model_ref: ModelRef, recipe,
                     ctx: RunContext) -> tuple[np.ndarray, np.ndarray | None]:
    """The dense model's embeddings of an eval split (or of a drift sample), computed once per run."""
    role = "eval" + prefix if isinstance(prefix, str) else "-".join(map(str, prefix))
    return cached(ctx, dense_key(task, prefix, model_ref, recipe, ctx),
                  lambda: embed_examples(dense_encoder.to(ctx.accelerator.device), tokenizer, examples,
                                         role, task, model_ref, recipe, ctx, DENSE_IDENTITY))


def _drift_of(pruned: tuple, dense: tuple) -> tuple[np.ndarray, float]:
    return drift([x for x in pruned if x is not None], [x for x in dense if x is not None])


def drift_sample(encoder, task: str, model_ref: ModelRef, tokenizer, evals: list, recipe, ctx: RunContext,
                 dense_row: bool) -> tuple[dict, dict]:
    """Drift metrics and arrays of a pruned, not yet trained encoder on a fixed sample of each eval split.

    A sample (``drift_limit``, default 256 examples, seed 1234, the same for every row) keeps the extra
    forward passes small next to a short fine-tune; the ``drift`` array then covers that sample.
    """
    limit = recipe.drift_limit
    dense_encoder = pristine_encoder(model_ref, ctx)
    metrics, arrays = {}, {}
    encoder.to(ctx.accelerator.device)
    for prefix, examples in evals:
        sample = fixed_subset(examples, limit)
        key = ("drift" + prefix, limit)
        if dense_row:  # the dense row's embeddings are the dense ones: compute them once
            u, v = dense_embeddings(encoder, tokenizer, sample, key, task, model_ref, recipe, ctx)
        else:
            u, v = embed_examples(encoder, tokenizer, sample, "drift" + prefix, task, model_ref, recipe, ctx)
        du, dv = dense_embeddings(dense_encoder, tokenizer, sample, key, task, model_ref, recipe, ctx)
        cos, cka = _drift_of((u, v), (du, dv))
        arrays[prefix + DRIFT] = cos.astype(np.float32)
        metrics.update({f"{prefix}drift_cosine": float(cos.mean()), f"{prefix}drift_cka": cka,
                        f"{prefix}drift_examples": len(sample)})
    return metrics, arrays


# A head on frozen embeddings: (fit (u, v, labels) or Nones, evaluate (u, v, labels)) -> (predictions, score).
Head = Callable[[tuple, tuple], tuple]


def embedding_protocol(task, train: Examples, evals: list, model_ref: ModelRef, pruner, recipe, ctx: RunContext,
                       head: Head, fits: bool = True) -> ProtocolOutput:
    """Run ``head`` on the pruned encoder's pooled embeddings of the fit subset and of each eval split.

    ``fits`` False: the head fits nothing (the cosine rule), so the fit subset is not embedded. Drift to the
    dense model is measured on the whole of each eval split.
    """
    tokenizer = load_tokenizer(model_ref.location, ctx)
    encoder = fresh_copy(pristine_encoder(model_ref, ctx))
    masks = pruner(encoder)
    # The disk cache (on when the suite kind sets pruned_as) is keyed by the pruned weights themselves, so rows
    # whose masks ignore the seed (dense, global, upper, lower) share one set of embeddings across seeds, and an
    # edited method that prunes differently never reads its old output.
    pruned_as = None if recipe.pruned_as is None else {"weights": weights_digest(encoder)}
    before = measure_sparsity(encoder)
    encoder.to(ctx.accelerator.device)
    fit = (None, None, None)
    if fits:
        fit = (*embed_examples(encoder, tokenizer, train, "fit", task.name, model_ref, recipe, ctx, pruned_as),
               train.labels)
    metrics, arrays, predictions = {}, {}, []
    dense_encoder = pristine_encoder(model_ref, ctx)
    for prefix, examples in evals:
        u, v = embed_examples(encoder, tokenizer, examples, "eval" + prefix, task.name, model_ref, recipe, ctx,
                              pruned_as)
        if masks is None:  # the dense row: its embeddings are the dense ones; share them
            cached(ctx, dense_key(task.name, prefix, model_ref, recipe, ctx), lambda u=u, v=v: (u, v))
        du, dv = dense_embeddings(dense_encoder, tokenizer, examples, prefix, task.name, model_ref, recipe, ctx)
        cos, cka = _drift_of((u, v), (du, dv))
        arrays[prefix + DRIFT] = cos.astype(np.float32)
        metrics.update({f"{prefix}drift_cosine": float(cos.mean()), f"{prefix}drift_cka": cka})
        predictions.append(head(fit, (u, v, examples.labels)))
    metrics["fit_examples"] = len(train) if fits else 0
    return ProtocolOutput(predictions, before, measure_sparsity(encoder), metrics, arrays,
                          {"pooling": recipe.pooling})
