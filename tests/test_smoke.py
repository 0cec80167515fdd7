"""End to end: the CLI on the tiny model and mirror, progress and exit codes, resume after SIGKILL,
and (slow) the real smoke suite on MiniLM-L6 and the full dev sets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_suite_yaml

from benchmarks import paths, store
from benchmarks.cli import main
from benchmarks.config import load_suite
from benchmarks.registry import METHODS
from benchmarks.runner import expand

ROOT = Path(__file__).resolve().parents[1]
# Majority-class accuracy on the full dev sets (SST-2: 444 of 872 positive; MRPC: 279 of 408 paraphrases).
MAJORITY = {"sst2": 444 / 872, "mrpc": 279 / 408}


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, **kw)


def _records(results: Path) -> list[dict]:
    return list(store.load_records(results).records.values())


def test_smoke_suite_grid():
    suite = load_suite("smoke")
    cells = expand(suite)
    assert len(cells) == 18
    labels = {c.config["label"] for c in cells}
    assert labels == {"full-base", *(f"{m}-{r:g}" for m in ("full", "lower", "upper", "random") for r in (0.3, 0.6))}
    assert {c.config["task"] for c in cells} == {"sst2", "mrpc"}
    assert not any("eval_limit" in c.config["recipe"] for c in cells)  # full dev sets
    assert all(c.config["model"].get("weights_sha256") for c in cells)


def test_tiny_suite_cli_summary_and_report(tmp_path, tiny_suite_file, tiny_mirror_session, capsys):
    results = tmp_path / "results"
    args = ["run", "--suite-file", str(tiny_suite_file), "--data-dir", str(tiny_mirror_session),
            "--results", str(results)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    # stderr is captured, not a terminal: no bar (tests/test_progress.py draws them on a pseudo-terminal)
    assert "6/6" not in err and "\r" not in err
    assert "6 cells, 0 already done, 6 run (6 ok" in err
    assert "| full-0.5" in out and "| random-0.5" in out  # the leaderboard on stdout
    records = _records(results)
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    pruned = next(r for r in records if r["config"]["label"] == "full-0.5")
    assert pruned["sparsity"]["global_before"] == pruned["sparsity"]["global_after"]
    assert abs(pruned["sparsity"]["global_before"] - 0.5) < 1e-6
    assert set(pruned["sparsity"]["per_layer_after"]) == {"0", "1", "2", "3"}
    assert pruned["provenance"]["data"] and all(len(v) == 64 for v in pruned["provenance"]["data"].values())

    assert main(args + ["--no-report"]) == 0
    assert "6 cells, 6 already done, 0 run" in capsys.readouterr().err  # the second run does no work


def test_exit_status_1_when_a_cell_fails(tmp_path, tiny_bert, tiny_mirror_session, capsys):
    @METHODS.register("always-fails")
    def always_fails(model, sparsity, generator=None, **options):
        """Raise on every call (a broken method)."""
        raise RuntimeError("this method is broken")

    try:
        suite = tmp_path / "s.yaml"
        suite.write_text(tiny_suite_yaml(tiny_bert, tasks="[sst2]",
                                         rows="[dense, {method: always-fails, sparsity: [0.5]}]"))
        code = main(["run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror_session),
                     "--results", str(tmp_path / "r"), "--no-progress"])
    finally:
        METHODS.unregister("always-fails")
    err = capsys.readouterr().err
    assert code == 1
    assert "1 ok" in err and "1 failed" in err and "this method is broken" in err
    assert sorted(r["status"] for r in _records(tmp_path / "r")) == ["failed", "ok"]


@pytest.mark.slow
def test_sigkill_then_rerun_completes_once(tmp_path, tiny_bert, tiny_mirror_session):
    """Killed with SIGKILL part-way, a rerun ends with exactly one ok record per cell and no temp files."""
    suite = tmp_path / "kill.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="kill",
                                     rows="[dense, {method: global, sparsity: [0.2, 0.4, 0.6, 0.8]},"
                                          " {method: random, sparsity: [0.2, 0.4, 0.6, 0.8]}]"))
    results = tmp_path / "results"
    args = [sys.executable, "-m", "benchmarks", "run", "--suite-file", str(suite), "--data-dir",
            str(tiny_mirror_session), "--results", str(results), "--no-report", "--no-progress"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = paths.records_dir(results)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if folder.is_dir() and len(list(folder.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make the suite bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(folder.glob("*.json")))
    assert 2 <= written < 18

    done = _cli("run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror_session), "--results",
                str(results), "--no-report", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"18 cells, {written} already done, {18 - written} run" in done.stderr
    keys = {c.key for c in expand(load_suite(path=suite))}
    # the claims' lock file (benchmarks/claims.py, flock for takeovers) stays; nothing else but records and arrays
    files = sorted(p.name for p in folder.iterdir() if p.name != ".claims.lock")
    records = _records(results)
    assert all(r["status"] == "ok" for r in records)
    # one record per cell, each with the per-example arrays it names; no temp or claim files left
    arrays = [r["predictions"] for r in records if r.get("predictions")]
    assert arrays and files == sorted([f"{k}.json" for k in keys] + arrays)


@pytest.mark.slow
# 18 real fine-tune cells of 35-90 s each on a 2-core machine: 11-27 minutes, more than the 20-minute default
# timeout for hung tests when the machine is shared (CI's own limit, 90 minutes, still bounds it).
@pytest.mark.timeout(3600)
def test_real_smoke_suite_twice(tmp_path, real_data_dir):
    """The README's main job on MiniLM-L6 and the real mirror; dense beats the majority class."""
    results = tmp_path / "results"
    started = time.time()
    first = _cli("run", "--suite", "smoke", "--data-dir", str(real_data_dir), "--results", str(results))
    elapsed = time.time() - started
    assert first.returncode == 0, first.stderr[-3000:]
    print(f"\nsmoke suite: {elapsed:.0f} s wall\n{first.stdout}")
    records = _records(results)
    assert len(records) == 18 and all(r["status"] == "ok" for r in records)
    for task, majority in MAJORITY.items():
        dense = next(r for r in records if r["config"]["label"] == "full-base" and r["config"]["task"] == task)
        assert dense["metrics"]["eval_examples"] == {"sst2": 872, "mrpc": 408}[task]
        assert dense["metrics"]["accuracy"] > majority, (task, dense["metrics"])
    second = _cli("run", "--suite", "smoke", "--data-dir", str(real_data_dir), "--results", str(results))
    assert second.returncode == 0 and "18 cells, 18 already done, 0 run" in second.stderr
    assert json.dumps(sorted(r["key"] for r in _records(results))) == json.dumps(sorted(r["key"] for r in records))
