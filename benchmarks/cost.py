"""What a pruned encoder costs: parameters, FLOPs per token, and CPU latency measured against dense.

Enabled per suite by ``options: {cost: {...}}`` (``COST_DEFAULTS``; the mapping joins the cell key). The
latency of the pruned encoder and of the dense encoder are timed in the same process, alternately (dense,
pruned, dense, pruned, ...) after warm-up, on fixed random token ids at ``seq_len`` tokens, for each batch
size; each record keeps every timing, the medians, the ratio dense/pruned (the measured speed-up), the
thread count and the load average (the machine may be shared). Unstructured and N:M models are dense-shaped:
they are timed like the others (and run as fast as dense); their FLOPs over non-zero weights and, for N:M,
the speed-up those FLOPs would give are *theoretical* (no sparse kernel runs here).
"""

from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn

from benchmarks.errors import UserError
from methods.patterns import parse_pattern
from methods.prunable import prunable_weights
from methods.structured import flop_geometry

COST_DEFAULTS = {"batch_sizes": [1, 32], "seq_len": 128, "repeats": 7, "warmup": 1}


def cost_config(spec, where: str) -> dict:
    """The suite's ``options.cost`` mapping with defaults filled in, validated (UserError naming ``where``)."""
    if not isinstance(spec, dict):
        raise UserError(f"{where}: options.cost must be a mapping, e.g. {{seq_len: 128, batch_sizes: [1, 32]}}")
    unknown = sorted(set(spec) - set(COST_DEFAULTS))
    if unknown:
        raise UserError(f"{where}: unknown options.cost field(s) {unknown}; known: {', '.join(COST_DEFAULTS)}")
    config = {**COST_DEFAULTS, **spec}
    sizes = config["batch_sizes"]
    if not isinstance(sizes, list) or not sizes or not all(_positive(b) for b in sizes):
        raise UserError(f"{where}: options.cost.batch_sizes must be a list of positive integers, e.g. [1, 32]")
    for key in ("seq_len", "repeats", "warmup"):
        if not _positive(config[key]) and not (key == "warmup" and config[key] == 0):
            raise UserError(f"{where}: options.cost.{key} must be a positive integer, got {config[key]!r}")
    return config


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def encoder_of(model: nn.Module) -> nn.Module:
    """The bare encoder (BertModel) of a model or of a BertFor* wrapper."""
    return getattr(model, "base_model", model)


def model_size(model: nn.Module, seq_len: int, pattern: str | None = None) -> dict:
    """Parameters and FLOPs per token of the encoder as it runs, and over its non-zero weights (theoretical)."""
    encoder = encoder_of(model)
    params = sum(p.numel() for p in encoder.parameters())
    nonzero = sum(int((p != 0).sum()) for p in encoder.parameters())
    geo = flop_geometry(encoder)
    weights = prunable_weights(encoder)
    dense_matrix = sum(w.weight.numel() for w in weights)
    nonzero_matrix = sum(int((w.weight != 0).sum()) for w in weights)
    scores = 4 * seq_len * geo.head_size * sum(geo.heads)  # attention scores and mixing: no weights
    out = {"params": params, "params_nonzero": nonzero, "flops_per_token": 2 * dense_matrix + scores,
           "flops_per_token_nonzero": 2 * nonzero_matrix + scores, "seq_len": seq_len}
    if parse_pattern(pattern) is not None:
        out["pattern"] = pattern
    return out


def _inputs(encoder: nn.Module, batch: int, seq_len: int) -> dict:
    vocab = int(encoder.config.vocab_size)
    low = 1000 if vocab > 1000 else 0  # past BERT's special and unused tokens
    ids = torch.randint(low, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _timed(encoder: nn.Module, inputs: dict) -> float:
    start = time.perf_counter()
    encoder(**inputs)
    return time.perf_counter() - start


def time_pair(dense: nn.Module, pruned: nn.Module, batch: int, seq_len: int, repeats: int, warmup: int) -> dict:
    """Seconds per forward of both encoders, alternating, after ``warmup`` untimed rounds; medians and ratio."""
    dense, pruned = encoder_of(dense).eval(), encoder_of(pruned).eval()
    inputs = _inputs(dense, batch, seq_len)
    dense_s, pruned_s = [], []
    with torch.inference_mode():
        for round_ in range(warmup + repeats):
            d, p = _timed(dense, inputs), _timed(pruned, inputs)
            if round_ >= warmup:
                dense_s.append(d)
                pruned_s.append(p)
    dense_med, pruned_med = statistics.median(dense_s), statistics.median(pruned_s)
    return {"batch": batch, "dense_s": dense_s, "pruned_s": pruned_s, "dense_median_s": dense_med,
            "pruned_median_s": pruned_med, "speedup": dense_med / pruned_med,
            "throughput": batch / pruned_med, "dense_throughput": batch / dense_med}


def measure_cost(dense: nn.Module, pruned: nn.Module, config: dict, pattern: str | None = None) -> dict:
    """The record's ``cost`` note: sizes of both encoders, timings per batch size, threads and load."""
    seq_len = config["seq_len"]
    size, dense_size = model_size(pruned, seq_len, pattern), model_size(dense, seq_len)
    if "pattern" in size:  # N:M: only the FLOPs over non-zero weights would shrink, with a kernel for the pattern
        size["speedup_theoretical"] = dense_size["flops_per_token"] / size["flops_per_token_nonzero"]
    timings = [time_pair(dense, pruned, batch, seq_len, config["repeats"], config["warmup"])
               for batch in config["batch_sizes"]]
    return {**size, "dense_params": dense_size["params"], "dense_flops_per_token": dense_size["flops_per_token"],
            "flops_ratio": size["flops_per_token"] / dense_size["flops_per_token"], "timings": timings,
            "threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
            "repeats": config["repeats"], "warmup": config["warmup"]}
