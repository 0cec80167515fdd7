"""A hub model that is neither cached nor reachable is bad input before the first cell (issue 19, item 2):
`run` exits 2 within seconds instead of retrying the hub for minutes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from errors_doc import check

from benchmarks.errors import UserError
from benchmarks.models import ModelRef, check_hub_model

ROOT = Path(__file__).resolve().parents[1]
BERT = "google-bert/bert-base-uncased"


def _closed_port() -> int:
    """A local port nothing listens on (bound, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hub_ref(repo_id: str = BERT) -> ModelRef:
    return ModelRef("bert-base-uncased", repo_id, False, {"model": repo_id, "revision": "main"})


def test_headline_command_offline_exits_2_within_30_seconds(tmp_path):
    """The README's headline command on a machine without network (and without HF_HUB_OFFLINE)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                        "TRANSFORMERS_CACHE", "PRUNEBENCH_HUB_DIR")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf-home"),
               OMP_NUM_THREADS="1")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--suite", "bert-lowsparsity",
                           "--results", str(tmp_path / "results"), "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert seconds < 30, f"took {seconds:.1f} s"  # the process's own start (torch import) included
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model minilm-l6" in lines[0] and "HF_HUB_CACHE" in lines[0], done.stderr
    check("hub:model-not-cached-and-hub-unreachable", lines[0], 2)
    assert not (tmp_path / "results").exists()  # nothing written


def test_hub_offline_and_not_cached(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as err:
        check_hub_model(_hub_ref())
    check("hub:model-not-cached-and-hf-hub-offline", f"error: {err.value}", 2)


def test_a_cached_model_needs_no_network(tmp_path, monkeypatch):
    """In the cache (the hub's layout: refs/main -> snapshots/<commit>/config.json): no probe at all."""
    from huggingface_hub import constants

    from benchmarks import models

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--google-bert--bert-base-uncased"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(models, "_probe_hub", lambda *a: pytest.fail("probed the hub for a cached model"))
    check_hub_model(_hub_ref())


def test_a_reachable_hub_passes_and_local_models_are_not_probed(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from benchmarks import models

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    probed = []
    monkeypatch.setattr(models, "_probe_hub", lambda repo_id, revision: probed.append(repo_id))  # None: reachable
    check_hub_model(_hub_ref())
    assert probed == [BERT]
    check_hub_model(ModelRef("x", str(tmp_path), True, {}))  # a folder: nothing to probe
    assert probed == [BERT]


def test_the_early_check_knows_every_kind_that_loads_a_pretrained_model():
    """`run` probes HUB_MODEL_KINDS before importing the kinds; the kinds' own flag must agree with it."""
    from benchmarks.models import HUB_MODEL_KINDS
    from benchmarks.registry import KINDS

    flagged = {name for name in KINDS.names() if getattr(KINDS.get(name), "loads_pretrained", False)}
    assert flagged == HUB_MODEL_KINDS
