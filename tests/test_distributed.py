"""Sharding splits a grid without overlap; 2 accelerate CPU processes (gloo) agree with 1 process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import bert_tiny  # noqa: E402

from benchmarks.config import apply_overrides, load_suite  # noqa: E402
from benchmarks.runner import expand, parse_shard  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["bert-lowsparsity", "bert-highsparsity"])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_partition_the_grid(name, n):
    """The shards' union is the grid, with no cell in two shards, for any worker count."""
    suite = apply_overrides(load_suite(name), ["model=minilm-l6", "scale=cpu"])
    grid = [c.key for c in expand(suite)]
    shards = [[c.key for c in expand(suite, parse_shard(f"{i}/{n}"))] for i in range(n)]
    union = [k for shard in shards for k in shard]
    assert len(union) == len(set(union)) == len(grid)
    assert set(union) == set(grid)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


# The recipe's batch_size is the global batch (2 processes x 4 examples = 1 process x 8), so both runs
# compute the same cells (same keys); dropout is off in the tiny model, so they differ only by
# floating-point reduction order.
SUITE = """
name: ddp-check
kind: prune-finetune
model: {model}
seeds: [0]
tasks: [stsb, mrpc, mlm]
rows: [dense, {{method: random, sparsity: 0.5}}]
recipe: {{lr: 1.0e-3, batch_size: 8, epochs: 2, max_length: 32, warmup_ratio: 0.1, weight_decay: 0.01,
         train_limit: 32, eval_limit: 40, eval_batch_size: 8, mlm_block_size: 32, mlm_eval_blocks: 12}}
"""
# Stated tolerance: metrics of the 2-process run within 1e-3 (absolute) of the 1-process run.
TOLERANCE = 1e-3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(tmp: Path, mirror: Path, model: Path, processes: int) -> dict:
    suite = tmp / f"suite{processes}.yaml"
    suite.write_text(SUITE.format(model=model))
    results = tmp / f"results{processes}"
    args = ["-m", "benchmarks", "run", "--suite-file", str(suite), "--results", str(results),
            "--data-dir", str(mirror), "--no-progress", "--no-report"]
    if processes > 1:
        # accelerate's --cpu launcher starts one process unless MPI is set up; the torchrun-based
        # launcher with ACCELERATE_USE_CPU=1 gives N CPU processes over gloo (see docs/bert-grid.md).
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", *args]
    else:
        cmd = [sys.executable, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1",
           "PYTHONPATH": str(REPO), "PRUNEBENCH_CACHE_DIR": str(tmp / "cache")}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert not list(results.glob("records/.*.tmp"))  # only the main process wrote, and it finished
    return {r["label"]: r for r in records}


@pytest.mark.slow
def test_two_cpu_processes_agree_with_one(tmp_path):
    if bert_tiny.real_mirror() is None:
        pytest.skip("needs the data mirror ../shared/data")
    mirror = bert_tiny.make_mirror(tmp_path / "mirror")
    model = bert_tiny.make_model(tmp_path / "tiny", mlm_head=True)
    one = _run(tmp_path, mirror, model, 1)
    two = _run(tmp_path, mirror, model, 2)
    assert set(one) == set(two) and len(one) == 6
    for label, rec in one.items():
        other = two[label]
        assert other["key"] == rec["key"]
        assert rec["status"] == other["status"] == "ok", (label, other.get("error"))
        assert rec["provenance"]["num_processes"] == 1 and other["provenance"]["num_processes"] == 2
        assert rec["metrics"]["eval_examples" if "eval_examples" in rec["metrics"] else "masked_tokens"] == \
            other["metrics"]["eval_examples" if "eval_examples" in rec["metrics"] else "masked_tokens"]
        for metric, value in rec["metrics"].items():
            print(f"{label} {metric}: 1 process {value!r}, 2 processes {other['metrics'][metric]!r}")
            assert other["metrics"][metric] == pytest.approx(value, abs=TOLERANCE), (label, metric)
        assert other["sparsity"]["zeros_after"] == other["sparsity"]["zeros_before"]
    # The fine-tuning really moved the STS-B model (a trained head correlates with the gold scores).
    assert one["full-base stsb seed=0"]["metrics"]["pearson"] != 0.0
