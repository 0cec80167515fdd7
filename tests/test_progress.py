"""Progress you can see: one combined bar for ``run --jobs`` (cells done across workers, time left), nested
bars inside long cells (fine-tuning steps, MNIST training steps), and nothing bar-like off a terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import torch

from benchmarks import progress

ROOT = Path(__file__).resolve().parents[1]
# A drawn tqdm bar: "k/n cells |███   |  50% [00:03<00:04]" (combined) or the runner's "k/n [..<..".
BAR_LIKE = re.compile(r"\r|\d+/\d+ cells|\[\d\d:\d\d<|\d+%\|")


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1"}


def _cli_on_terminal(*args: str, timeout: float = 600) -> tuple[int, str]:
    """Run the CLI with its stderr on a pseudo-terminal (120 columns); its exit status and everything the
    terminal received."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)  # the CLI and its workers hold the only copies: reading ends when they are all gone
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


def _run_args(suite: Path, mirror: Path, results: Path, *extra: str) -> list[str]:
    return ["run", "--suite-file", str(suite), "--data-dir", str(mirror), "--results", str(results), "--no-report",
            *extra]


def test_jobs_shows_one_combined_bar_with_time_left(tmp_path, tiny_suite_file, tiny_mirror_session):
    """``run --jobs 2`` on a terminal: one bar counts the 6 cells finished across both workers, with a
    time-left estimate while cells are still running, and ends at 6/6."""
    code, text = _cli_on_terminal(*_run_args(tiny_suite_file, tiny_mirror_session, tmp_path / "r", "--jobs", "2"))
    assert code == 0, text[-3000:]
    frames = re.findall(r"tiny: (\d)/6 cells \|[^|]*\| +(\d+)% \[(\d\d:\d\d)<([^\]]+)\]", text)
    assert frames, text[-3000:]
    assert frames[-1][0] == "6" and frames[-1][1] == "100", frames[-1]
    running = [f for f in frames if f[0] != "6" and re.fullmatch(r"\d\d:\d\d", f[3])]
    assert running, f"no frame with cells left and a time-left estimate: {frames}"
    assert "fine-tuning" not in text  # workers draw no bars of their own into the parent's terminal
    assert "6 cells, 6 with an ok record; worker exit statuses [0, 0]" in text


def test_single_run_nests_the_fine_tuning_steps(tmp_path, tiny_suite_file, tiny_mirror_session):
    """One process on a terminal: the bar of cells, and inside each cell a nested bar of its steps."""
    results = tmp_path / "r"
    code, text = _cli_on_terminal(*_run_args(tiny_suite_file, tiny_mirror_session, results, "--set", "tasks=[mrpc]"))
    assert code == 0, text[-3000:]
    assert re.search(r"cells: +100%\|[^|]*\| 3/3 \[", text), text[-3000:]
    assert re.search(r"fine-tuning: +\d+%\|[^|]*\| \d+/\d+ \[", text), text[-3000:]
    code, text = _cli_on_terminal(*_run_args(tiny_suite_file, tiny_mirror_session, results, "--set", "tasks=[mrpc]",
                                             "--no-progress"))
    assert code == 0 and not BAR_LIKE.search(text.replace("\r\n", "\n")), text


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, tiny_suite_file, tiny_mirror_session):
    """``run --jobs 2`` with stderr on a pipe (a log, CI): the summary lines only, nothing bar-like."""
    done = subprocess.run([sys.executable, "-m", "benchmarks", *_run_args(
        tiny_suite_file, tiny_mirror_session, tmp_path / "r", "--jobs", "2", "--set", "tasks=[mrpc]")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "3 cells, 3 with an ok record" in done.stderr
    assert not BAR_LIKE.search(done.stderr), done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _tiny_mnist(n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 784, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_mnist_training_draws_a_nested_bar_of_its_steps(monkeypatch):
    """Training a model stack on a terminal draws a bar of steps over all chunks (3 models in chunks of 2:
    2 chunks x 4 steps); with progress off, or off a terminal, it draws nothing."""
    from benchmarks.mnist.train import Recipe, train_models

    x, y = _tiny_mnist()
    recipe = Recipe(batch_size=30, epochs=1.0, chunk=2, threads=1)
    for show, stream, drawn in ((True, _Terminal(), True), (False, _Terminal(), False), (True, io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress.reporting(show):
            train_models([0, 1, 2], x, y, recipe)
        assert bool(re.search(r"3 models: +\d+%\|[^|]*\| \d/8 \[", stream.getvalue())) == drawn, stream.getvalue()


def test_a_worker_reports_its_cell_fraction_to_the_progress_file(tmp_path):
    """A --jobs worker's progress file names the running cell and how far its steps are (1.0 at their end)."""
    from benchmarks.mnist.train import Recipe, train_models

    x, y = _tiny_mnist()
    channel = tmp_path / "worker-0.json"
    with progress.reporting(False, channel), progress.running_cell("abc", "row seed=0"):
        assert json.loads(channel.read_text()) == {"key": "abc", "label": "row seed=0", "fraction": 0.0}
        train_models([0, 1, 2], x, y, Recipe(batch_size=30, epochs=1.0, chunk=2, threads=1))
        assert json.loads(channel.read_text()) == {"key": "abc", "label": "3 models", "fraction": 1.0}


class _FakeWorker:
    """A worker process stand-in: each poll() does its next action; exit status 0 when none are left."""

    def __init__(self, actions: list):
        self.actions = list(actions)

    def poll(self):
        if self.actions:
            self.actions.pop(0)()
            return None
        return 0

    def wait(self) -> int:
        while self.poll() is None:
            pass
        return 0


def test_combined_bar_counts_this_runs_records_and_the_running_fractions(tmp_path, monkeypatch):
    """The parent's bar: 3 cells to do (one already ok is left out, an old failed record counts only once
    rewritten), a running cell's reported half counts as half, and the bar ends at 3/3 = 100%."""
    from benchmarks import paths

    keys = [f"{i:020x}" for i in range(4)]
    results, channel = tmp_path / "r", tmp_path / "worker-0.json"

    def record(key: str, status: str = "ok") -> None:
        path = paths.record_path(results, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "tmp").write_text(json.dumps({"key": key, "status": status}))
        (path.parent / "tmp").replace(path)  # as store writes them: a new file

    record(keys[3], "failed")  # from an earlier run: still to do, not finished by this one
    monkeypatch.setattr(progress.store, "is_done", lambda _results, key: key == keys[0])
    monkeypatch.setattr(progress, "POLL_INTERVAL", 0.0)
    monkeypatch.setattr(sys, "stderr", _Terminal())

    def half():
        channel.write_text(json.dumps({"key": keys[2], "fraction": 0.5}))

    worker = _FakeWorker([lambda: record(keys[1]), half, lambda: record(keys[2], "failed"),
                          lambda: record(keys[3])])
    assert progress.follow_workers([worker], keys, results, [channel], True, "g") == [0]
    text = sys.stderr.getvalue()
    frames = re.findall(r"g: (\d)/3 cells \|[^|]*\| +(\d+)%", text)
    assert ("1", "33") in frames and ("1", "50") in frames and ("2", "67") in frames, frames
    assert frames[-1] == ("3", "100"), frames


def test_long_steps_off_a_terminal_print_their_pace(monkeypatch):
    """Off a terminal (a job's log), a block of steps with ``pace`` prints a line every PACE_INTERVAL seconds: how
    far, how many ms a step, how long is left. A drawn bar, or a block without ``pace``, prints no such line."""
    monkeypatch.setattr(progress, "PACE_INTERVAL", 0.0)  # a line at every step
    for show, stream, pace, lines in ((False, io.StringIO(), True, 3), (True, _Terminal(), True, 0),
                                      (False, io.StringIO(), False, 0)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress.reporting(show), progress.steps(3, "fine-tuning 9 stacked cells", pace=pace) as advance:
            for _ in range(3):
                advance()
        found = re.findall(r"fine-tuning 9 stacked cells: (\d)/3 steps in \d+ s, \d+ ms a step, about \d+ s left",
                           stream.getvalue())
        assert found == [str(i) for i in range(1, lines + 1)], stream.getvalue()
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress.running_cell("k1", "sst2 dense"), progress.steps(1, "fine-tuning", pace=True) as advance:
        advance()
    assert stream.getvalue().startswith("fine-tuning (sst2 dense): 1/1 steps"), stream.getvalue()  # whose steps
    monkeypatch.setattr(progress, "PACE_INTERVAL", 60.0)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with progress.steps(3, "fine-tuning", pace=True) as advance:
        advance()
    assert "ms a step" not in stream.getvalue()  # short blocks stay silent
    assert progress.pace_line("x", 100, 400, 5.0) == "x: 100/400 steps in 5 s, 50 ms a step, about 15 s left"
