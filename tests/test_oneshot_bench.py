"""Speed of the one-shot methods, as pytest-benchmark ratios against a baseline in the same process.

Run with ``OMP_NUM_THREADS=1 pytest -m bench tests/test_oneshot_bench.py -s`` (or ``tox -e bench``); one
intra-op thread (OMP_NUM_THREADS=1 makes scipy's LAPACK call single-threaded too). Each ratio is a time
multiple of its baseline (lower is faster); absolute seconds go to extra_info and stdout.
- per-matrix kernels on a bert-base output.dense (768 x 3072): the Wanda mask against one calibration
  forward pass through that matrix (16384 tokens); the SparseGPT solve against building its Hessian
  from the same tokens;
- whole models: wanda and sparsegpt on MiniLM-L6 with the default calibration set (128 x 128 tokens of
  GLUE train) against one plain forward pass of those sequences (each method needs two passes per
  layer: statistics on the pruned-so-far inputs, then the pruned layer's outputs);
- sparsegpt on a bert-base-sized stack (BertConfig defaults, random weights, 2 layers, extrapolated to 12).
"""

from __future__ import annotations

import time

import pytest
import torch
from transformers import BertConfig, BertModel

from benchmarks.calibration import DEFAULTS, CalibrationData, load_calibration, random_calibration
from benchmarks.registry import METHODS
from benchmarks.threads import intra_op_threads
from methods.oneshot import wanda_keep
from methods.sparsegpt import sparsegpt_matrix

pytestmark = pytest.mark.bench
TOKENS = DEFAULTS["count"] * DEFAULTS["seq_len"]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _measure(benchmark, fn, rounds: int = 1) -> float:
    """Best wall time of ``fn`` through pytest-benchmark (or a plain clock with --benchmark-disable)."""
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    if benchmark.stats is None:
        return min(_timed(fn) for _ in range(rounds))
    return benchmark.stats.stats.min


def _forward(model, calibration: CalibrationData) -> None:
    with torch.no_grad():
        for ids, attention in calibration.batches(16):
            model(input_ids=ids, attention_mask=attention)


@pytest.fixture(scope="module")
def one_thread():
    with intra_op_threads(1):
        yield


@pytest.fixture(scope="module")
def layer_case():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(768, 3072, generator=g)
    x = torch.randn(TOKENS, 3072, generator=g)
    return w, x


def test_wanda_kernel_vs_one_forward_through_the_matrix(benchmark, report_ratio, one_thread, layer_case):
    w, x = layer_case
    sq = x.double().pow(2).sum(0)
    forward = min(_timed(lambda: x @ w.T) for _ in range(2))
    kernel = _measure(benchmark, lambda: wanda_keep(w, sq, 0.5), rounds=3)
    ratio = kernel / forward
    report_ratio("wanda mask (768x3072) / one forward through the matrix", ratio, None, wanda_mask_s=kernel,
                 forward_s=forward)
    print(f"\nwanda mask 768x3072: {kernel:.3f} s; one forward of {TOKENS} tokens: {forward:.3f} s ({ratio:.2f}x)")
    assert ratio <= 0.5


def test_sparsegpt_solve_vs_building_its_hessian(benchmark, report_ratio, one_thread, layer_case):
    w, x = layer_case
    gram_s = _timed(lambda: x.T @ x)
    h = 2.0 * (x.T @ x).double() / TOKENS
    solve = _measure(benchmark, lambda: sparsegpt_matrix(w, h, 0.5))
    ratio = solve / gram_s
    report_ratio("sparsegpt solve (768x3072) / building its Hessian", ratio, None, solve_s=solve, hessian_s=gram_s)
    print(f"\nsparsegpt solve 768x3072: {solve:.2f} s; its Hessian from {TOKENS} tokens: {gram_s:.2f} s ({ratio:.2f}x)")
    assert ratio <= 2.0


@pytest.fixture(scope="module")
def minilm(real_data_dir):
    from transformers import AutoModel, AutoTokenizer

    from benchmarks.models import resolve_model

    location = resolve_model("minilm-l6").location
    calibration = load_calibration(DEFAULTS, AutoTokenizer.from_pretrained(location), real_data_dir, 512)
    return AutoModel.from_pretrained(location).eval(), calibration


@pytest.mark.parametrize("method,bound", [("wanda", 3.0), ("sparsegpt", 6.0)])
def test_method_on_minilm_vs_calibration_forward(benchmark, report_ratio, one_thread, minilm, method, bound):
    """Whole-model pruning time over one plain forward pass of the calibration set (2 passes are needed)."""
    model, calibration = minilm
    forward = _timed(lambda: _forward(model, calibration))
    prune = _measure(benchmark, lambda: METHODS.get(method)(model, 0.5, None, calibration=calibration))
    ratio = prune / forward
    report_ratio(f"{method} on MiniLM-L6 / one calibration forward pass", ratio, None, prune_s=prune,
                 forward_s=forward, extra_over_two_forwards_s=prune - 2 * forward)
    print(f"\n{method} on MiniLM-L6, 128x128 calibration, 1 thread: {prune:.1f} s; one forward {forward:.1f} s "
          f"({ratio:.2f}x; {prune - 2 * forward:+.1f} s beyond two forward passes)")
    assert ratio <= bound


def test_sparsegpt_bert_base_stack(benchmark, report_ratio, one_thread):
    """bert-base layer sizes, 2 random layers: time per layer, extrapolated to 12, against their forward.

    Bound 8x: two passes per layer (2x), the Hessians (16384 x (768^2 shared by q/k/v, o, intermediate,
    3072^2 for output.dense): about 1.5x a forward) and the float64 solves (output.dense's 3072-wide
    factorisation dominates: about 2x), plus slack for a shared machine.
    """
    torch.manual_seed(0)
    layers = 2
    model = BertModel(BertConfig(num_hidden_layers=layers)).eval()
    calibration = random_calibration(model.config.vocab_size, DEFAULTS["count"], DEFAULTS["seq_len"], seed=0)
    forward = _timed(lambda: _forward(model, calibration))
    prune = _measure(benchmark, lambda: METHODS.get("sparsegpt")(model, 0.5, None, calibration=calibration))
    ratio = prune / forward
    estimate = prune / layers * 12
    report_ratio("sparsegpt on 2 bert-base layers / their calibration forward pass", ratio, None, layers=layers,
                 prune_s=prune, forward_s=forward, estimate_12_layers_s=estimate)
    print(f"\nsparsegpt on {layers} bert-base layers: {prune:.1f} s (forward {forward:.1f} s, {ratio:.2f}x); "
          f"12 layers ~ {estimate:.0f} s")
    assert ratio <= 8.0


def cell_pruning_times(rows: tuple = ("layerwise-0.5", "layerwise-2:4", "full-0.5", "full-2:4", "wanda-0.5",
                                      "wanda-2:4", "sparsegpt-0.5", "sparsegpt-2:4")) -> None:
    """Print the pruning step of one bert-oneshot cell per row on MiniLM-L6 (SST-2 head, one thread).

    The step is the same whatever the protocol (fine-tune, zero-shot, probe): it prunes the encoder.
    Run: ``OMP_NUM_THREADS=1 python tests/test_oneshot_bench.py``.
    """
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    from benchmarks import paths
    from benchmarks.config import apply_overrides, load_suite
    from benchmarks.context import RunContext
    from benchmarks.kinds.prune_finetune import make_pruner
    from benchmarks.models import resolve_model
    from benchmarks.runner import expand

    suite = apply_overrides(load_suite("bert-oneshot"), ["model=minilm-l6", "tasks=[sst2]"])
    data_dir = paths.default_data_dir() or Path("/work/shared/data")
    ctx = RunContext(data_dir, Path("."), None, resolve_model("minilm-l6"))
    with intra_op_threads(1):
        for cell in expand(suite):
            cfg = cell.config
            if cfg["label"] not in rows:
                continue
            model = AutoModelForSequenceClassification.from_pretrained(ctx.model_ref.location, num_labels=2)
            calibration_cached = any(key[0] == "calibration" for key in ctx.cache)
            seconds = _timed(lambda cfg=cfg, model=model: make_pruner(cfg, cfg["seed"], ctx)(model))
            note = "" if "calibration" not in cfg or calibration_cached else " (includes building the calibration set)"
            print(f"{cfg['label']:16s} {seconds:7.1f} s{note}", flush=True)


if __name__ == "__main__":
    cell_pruning_times()
