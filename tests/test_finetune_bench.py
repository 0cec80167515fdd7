"""A fine-tune cell's achieved GFLOP/s against the GEMM rate measured in the same process, and its padded-token
share (#22 item 2; ``bench`` marker: run by ``tox -e bench``, never in the default run).

One dense fine-tune cell of MiniLM-L6 on the ``cpu-ft`` scale's 1,000 STS-B training pairs (length-grouped
batches of 16, max length 64; one epoch instead of two) through the suite kind, as a run would do it; its
record's ``notes.finetune_account`` holds the training steps' GFLOP/s
(``benchmarks.protocols.finetune.FLOP_RULE``) and the padded share. The GEMM rate is a
float32 (32 x 30 tokens) x 384 x 1536 product, MiniLM's feed-forward shape, on the same threads, the best of a
measurement before and one after the cell (a shared machine slows one of them). Aims from the
issue: at least half the GEMM rate over the training steps, under 15% padding; the ratio goes to the bench
summary whatever it is, and the test fails only below a quarter (far from the aim: something is wrong).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bert_tiny  # noqa: E402

from benchmarks.config import apply_overrides, load_suite  # noqa: E402
from benchmarks.context import RunContext  # noqa: E402
from benchmarks.kinds.prune_finetune import PruneFinetune  # noqa: E402
from benchmarks.models import resolve_model  # noqa: E402

OVERRIDES = ["rows=[dense]", "tasks=[stsb]", "recipe.train_limit=1000", "recipe.epochs=1", "recipe.max_length=64",
             "recipe.batch_size=16", "recipe.group_by_length=true", "recipe.eval_limit=64", "recipe.drift_limit=32"]
MIN_SHARE = 0.25
MAX_PADDING = 0.15


def gemm_gflops(tokens: int = 960, hidden: int = 384, inner: int = 1536, repeats: int = 20) -> float:
    """Best float32 GFLOP/s of a (tokens x hidden) @ (hidden x inner) product on this process's threads."""
    a, b = torch.randn(tokens, hidden), torch.randn(hidden, inner)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * tokens * hidden * inner / best / 1e9


@pytest.mark.bench
def test_finetune_steps_against_the_gemm_rate(benchmark, report_ratio, tmp_path):
    mirror = bert_tiny.real_mirror()
    if mirror is None:
        pytest.skip("needs the data mirror ../shared/data")
    from accelerate import Accelerator

    suite = apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", "scale=full", *OVERRIDES])
    kind = PruneFinetune()
    cell = kind.cells(suite)[0]
    ctx = RunContext(Path(mirror), tmp_path, Accelerator(cpu=True), resolve_model(suite.model, suite.model_revision))
    before = gemm_gflops()
    outcome = benchmark.pedantic(lambda: kind.run(cell, ctx), rounds=1, iterations=1)
    account = outcome.notes["finetune_account"]
    gemm = max(before, gemm_gflops())
    share = account["gflops_per_s"] / gemm
    whole_cell = account["gflop"] / account["cell_seconds"] / gemm
    report_ratio("fine-tune steps / same-process GEMM rate", share, 1.0, gemm_gflops=gemm,
                 step_gflops=account["gflops_per_s"], whole_cell_share=whole_cell,
                 padded_share=account["padded_share"], threads=torch.get_num_threads(),
                 outside_steps_seconds=account["outside_steps_seconds"])
    print(f"fine-tune steps {account['gflops_per_s']:.1f} GFLOP/s = {share:.2f} of GEMM {gemm:.1f} GFLOP/s "
          f"(whole cell {whole_cell:.2f}); padded share {account['padded_share']:.3f}")
    assert account["padded_share"] < MAX_PADDING
    assert share > MIN_SHARE
