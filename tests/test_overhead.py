"""The harness's evaluation adds at most 5% to a bare Hugging Face forward over the same batches (``bench``
marker: run by ``tox -e bench``, never in the default run, as the ratio depends on how fast this CPU runs the model).

Both sides tokenize the same examples, pad each batch of 32 dynamically and run the same model;
the harness side is ``benchmarks.protocols.finetune.predict`` (dataset, collator, accelerate data loader,
gather_for_metrics). The ratio of the two pytest-benchmark minima is taken in one process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bert_tiny  # noqa: E402

from benchmarks.data import load_glue  # noqa: E402
from benchmarks.models import resolve_model  # noqa: E402
from benchmarks.protocols.finetune import predict  # noqa: E402

RECIPE = {"max_length": 64, "eval_batch_size": 32}
# The project's target (docs/bert-grid.md). Both sides run the same model on the same batches, so the ratio is
# the harness's own per-batch Python cost over one forward: 0.96 measured on a 2-core AVX2 machine; a much
# faster CPU shortens the forward and raises it, which `tox -e bench` reports.
MAX_OVERHEAD = 1.05


@pytest.fixture(scope="module")
def setup():
    if bert_tiny.real_mirror() is None:
        pytest.skip("needs the data mirror ../shared/data")
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    location = resolve_model("minilm-l6").location
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(location)
    examples = load_glue("sst2", "dev", bert_tiny.real_mirror()).subset(range(96))
    return model, tokenizer, examples, Accelerator(cpu=True)


@torch.no_grad()
def bare_forward(model, tokenizer, examples) -> torch.Tensor:
    """What one writes by hand: tokenize a batch, pad it, forward, argmax."""
    out = []
    for start in range(0, len(examples), RECIPE["eval_batch_size"]):
        texts = examples.text_a[start:start + RECIPE["eval_batch_size"]]
        enc = tokenizer(texts, truncation=True, max_length=RECIPE["max_length"], padding=True, return_tensors="pt")
        out.append(model(**enc).logits.argmax(-1))
    return torch.cat(out)


def _interleaved_minima(fns: dict, rounds: int = 7) -> dict:
    """Min wall time of each function over ``rounds``, alternating between them so that a load
    change on this shared machine hits both sides alike (sequential blocks swung the ratio 0.3-2.7)."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


@pytest.mark.bench
def test_harness_predict_overhead(benchmark, report_ratio, setup):
    model, tokenizer, examples, accelerator = setup
    harness = lambda: predict(model, tokenizer, examples, RECIPE, accelerator, False)  # noqa: E731
    bare = lambda: bare_forward(model, tokenizer, examples)  # noqa: E731
    harness(), bare()  # warm-up: first calls build caches
    preds = benchmark.pedantic(harness, rounds=3, iterations=1)
    assert (preds == bare().numpy()).all()  # same examples, same answers
    best = _interleaved_minima({"bare": bare, "harness": harness})
    ratio = best["harness"] / best["bare"]
    report_ratio("harness / bare Hugging Face evaluation time", ratio, 1.0,
                 **{f"{k}_min_s": v for k, v in best.items()})
    print(f"\nharness/bare evaluation time ratio: {ratio:.3f} (interleaved min of 7 rounds each)")
    assert ratio <= MAX_OVERHEAD
