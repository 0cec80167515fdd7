"""Latency of shrunk models as a ratio to dense, timed in one process (pytest-benchmark; ``tox -e bench``).

``OMP_NUM_THREADS=1 pytest -m bench tests/test_structured_bench.py -s``: a MiniLM-L6-shaped BERT (random weights;
hidden 384, 12 heads, FFN 1536, 6 layers) at 128 tokens, batch 8. The dense model is the baseline; each pruned
model is timed through pytest-benchmark and the dense one with the same rounds right after, so the ratio is a
same-process speed-up. The bounds are loose (the machine is shared): a model that removed 40% of its FLOPs must
run at least 1.2x faster than dense, and an unstructured 50% model (dense-shaped) no more than 1.2x faster.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch
from transformers import BertConfig, BertModel

from benchmarks.calibration import random_calibration
from benchmarks.masking import apply_result
from benchmarks.registry import METHODS
from benchmarks.threads import intra_op_threads

pytestmark = pytest.mark.bench
BATCH, SEQ, ROUNDS = 8, 128, 5


@pytest.fixture(scope="module")
def dense() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(config).eval()


def _forward(model: BertModel):
    ids = torch.randint(1000, 30000, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))

    def run():
        with torch.inference_mode():
            model(input_ids=ids)
    return run


def _median(fn) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[ROUNDS // 2]


def _pruned(dense: BertModel, name: str, rate: float, **options) -> BertModel:
    if METHODS.meta(name).get("calibration"):
        options["calibration"] = random_calibration(30522, count=8, seq_len=32, seed=0)
    model = copy.deepcopy(dense)
    apply_result(model, METHODS.get(name)(dense, rate, torch.Generator().manual_seed(0), **options))
    return model


@pytest.mark.parametrize(("name", "rate", "options", "at_least", "at_most"), [
    ("drop-layers", 0.33, {"side": "top"}, 1.2, None),
    ("retrain-free", 0.4, {"tune": False}, 1.2, None),
    ("global", 0.5, {}, None, 1.2),
])
def test_latency_ratio_to_dense(name, rate, options, at_least, at_most, dense, benchmark, report_ratio):
    """Speed-up of the pruned model over dense (dense median / pruned median), both timed here, one thread."""
    pruned = _pruned(dense, name, rate, **options)
    with intra_op_threads(1):
        _forward(pruned)()
        _forward(dense)()  # warm-up of both
        benchmark.pedantic(_forward(pruned), rounds=ROUNDS, iterations=1, warmup_rounds=0)
        pruned_s = benchmark.stats.stats.median if benchmark.stats is not None else _median(_forward(pruned))
        dense_s = _median(_forward(dense))
    ratio = dense_s / pruned_s
    report_ratio(f"dense / {name}-{rate} latency (batch {BATCH}, {SEQ} tokens)", ratio, None,
                 pruned_s=pruned_s, dense_s=dense_s)
    print(f"\n{name}-{rate}: pruned {pruned_s * 1000:.1f} ms, dense {dense_s * 1000:.1f} ms, speed-up {ratio:.2f}x")
    if at_least is not None:
        assert ratio >= at_least
    if at_most is not None:
        assert ratio <= at_most
