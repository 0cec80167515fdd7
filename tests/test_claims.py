"""Claims on a shared cluster (issue 19, item 1): atomic claims with leases and a heartbeat, stale claims
(dead pid, reused pid, expired lease on any host), --wait, SIGTERM / SIGINT, and --jobs workers that die
with their parent. Tests with real processes start `python -m benchmarks` with a slow plug-in suite kind
(a hand-written dist-info on PYTHONPATH, no pip)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from errors_doc import check

from benchmarks import claims, paths, store
from benchmarks.errors import UserError
from benchmarks.runner import expand, run_suite

ROOT = Path(__file__).resolve().parents[1]


class _OneProcess:
    is_main_process = True
    num_processes = 1

    def wait_for_everyone(self):
        pass


def _me(**changes) -> dict:
    """A claim owner as this machine writes it, with ``changes``."""
    owner = claims._new_owner()
    owner.update(changes)
    return owner


def _write_claim(results: Path, key: str, owner: dict | str) -> Path:
    path = claims.claim_path(results, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(owner if isinstance(owner, str) else json.dumps(owner))
    return path


@pytest.fixture(autouse=True)
def _release_claims():
    yield
    claims.release_all()


# -- the original race, deterministically -------------------------------------------------------------

def test_an_empty_claim_file_of_a_run_that_has_not_written_its_owner_yet_is_respected(tmp_path):
    """The interleaving that computed a cell twice: run A created the claim (O_EXCL) and had not written
    its owner yet when run B read the empty file and took it for stale. B must leave it to A."""
    path = _write_claim(tmp_path, "k", "")  # A's claim between create and write
    assert not store.claim_cell(tmp_path, "k")
    assert path.read_text() == ""  # untouched: A goes on to write its owner
    old = time.time() - claims.TORN_GRACE_S - 5  # the same file long after: a crash's leftover
    os.utime(path, (old, old))
    assert store.claim_cell(tmp_path, "k")
    assert store.claimed_by(tmp_path, "k")["pid"] == os.getpid()


def test_a_claim_appears_with_its_content_and_only_one_of_two_runs_gets_it(tmp_path, monkeypatch):
    """Run A pauses between writing its claim's content and putting it into place; run B claims meanwhile.
    B sees no claim file at all (never an empty one), wins; A's link then fails and A leaves the cell."""
    real_link = os.link
    seen_by_b = []

    def a_pauses_here(src, dst):
        monkeypatch.setattr(claims.os, "link", real_link)  # B's own claim links normally
        seen_by_b.append(claims._read(Path(dst)))
        assert store.claim_cell(tmp_path, "k")  # B, in the pause
        return real_link(src, dst)  # A resumes

    monkeypatch.setattr(claims.os, "link", a_pauses_here)
    assert not store.claim_cell(tmp_path, "k")  # A
    assert seen_by_b == [None]
    owner = store.claimed_by(tmp_path, "k")
    assert owner["token"] == claims._held[claims.claim_path(tmp_path, "k")]["token"]  # B's claim, complete
    assert not [p for p in os.listdir(paths.records_dir(tmp_path)) if p.endswith(".tmp")]


def test_two_takers_of_one_stale_claim_only_one_wins(tmp_path):
    dead = _me(pid=_dead_pid())
    path = _write_claim(tmp_path, "k", dead)
    judged = path.read_bytes()
    first, second = _me(), _me()
    assert claims._take_over(path, judged, first)
    assert not claims._take_over(path, judged, second)  # what it judged stale is gone: a fresh claim is there
    assert json.loads(path.read_text())["token"] == first["token"]
    assert [p.name for p in path.parent.iterdir() if not p.name.startswith(".claims")] == [path.name]


def test_release_removes_only_this_runs_claim(tmp_path):
    assert store.claim_cell(tmp_path, "k")
    path = claims.claim_path(tmp_path, "k")
    other = _me(host="node-elsewhere")
    path.write_text(json.dumps(other))  # taken over meanwhile (our lease had expired)
    store.release_cell(tmp_path, "k")
    assert json.loads(path.read_text())["token"] == other["token"]


# -- when a claim is stale ----------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_stale_reasons(sleeper):
    now = time.time()
    live = _me(pid=sleeper.pid, start_ticks=claims.process_start(sleeper.pid))
    assert claims.stale_reason(live, now) is None
    assert claims.stale_reason({**live, "lease_until": now - 1}, now) == "lease expired"
    assert claims.stale_reason(_me(pid=_dead_pid()), now) == "process gone"
    if live["start_ticks"] is not None:  # Linux /proc
        assert claims.stale_reason({**live, "start_ticks": live["start_ticks"] + 1}, now) == \
            "pid reused by another process"
    elsewhere = {**live, "host": "node-elsewhere", "pid": _dead_pid()}
    assert claims.stale_reason(elsewhere, now) is None  # another machine's pid says nothing here
    assert claims.stale_reason({**elsewhere, "lease_until": now - 1}, now) == "lease expired"
    other_namespace = {**live, "pid": _dead_pid(), "pid_ns": "pid:[1]"}  # a container sharing the host name
    assert claims.stale_reason(other_namespace, now) is None
    legacy = {"pid": sleeper.pid, "host": socket.gethostname(), "started": "now"}  # before leases: mtime + lease
    assert claims.stale_reason(legacy, now) is None
    assert claims.stale_reason(legacy, now - claims.lease_seconds() - 1, now) == "lease expired"
    assert claims.stale_reason(None, now) is None  # unreadable and young: being written
    assert claims.stale_reason(None, now - claims.TORN_GRACE_S - 1, now) == "unreadable"


def test_heartbeat_renews_the_lease_and_notices_a_lost_claim(tmp_path, monkeypatch):
    assert store.claim_cell(tmp_path, "k")
    first = store.claimed_by(tmp_path, "k")["lease_until"]
    later = time.time() + 100
    monkeypatch.setattr(claims.time, "time", lambda: later)
    assert claims.renew_claims() == []
    assert store.claimed_by(tmp_path, "k")["lease_until"] == pytest.approx(later + claims.lease_seconds())
    assert store.claimed_by(tmp_path, "k")["lease_until"] > first
    path = claims.claim_path(tmp_path, "k")
    path.write_text(json.dumps(_me(host="node-elsewhere")))  # another run took it over
    assert claims.renew_claims() == [path]
    assert claims.held_claims() == []


TIMING_CASES = {  # case id: (variable, value, what the message must say)
    "claims:lease-not-a-number": (claims.LEASE_ENV, "soon", "PRUNEBENCH_CLAIM_LEASE_S=600"),
    "claims:heartbeat-negative": (claims.HEARTBEAT_ENV, "-1", "PRUNEBENCH_CLAIM_HEARTBEAT_S=60"),
    "claims:heartbeat-over-half-the-lease": (claims.HEARTBEAT_ENV, "400", "at most half"),
}


def _timing_error(case_id: str, monkeypatch) -> str:
    env, value, fix = TIMING_CASES[case_id]
    monkeypatch.setenv(env, value)
    with pytest.raises(UserError) as err:
        claims.check_settings()
    monkeypatch.delenv(env)
    assert fix in str(err.value)
    return f"error: {err.value}"


def test_bad_claim_timings_are_bad_input(monkeypatch):
    check("claims:lease-not-a-number", _timing_error("claims:lease-not-a-number", monkeypatch), 2)
    check("claims:heartbeat-negative", _timing_error("claims:heartbeat-negative", monkeypatch), 2)
    check("claims:heartbeat-over-half-the-lease",
          _timing_error("claims:heartbeat-over-half-the-lease", monkeypatch), 2)


# -- the runner with stale and held claims ---------------------------------------------------------------

def _cell(suite, cell_id):
    return next(c for c in expand(suite) if c.config["id"] == cell_id)


def test_container_pid_claim_live_pid_other_start_time_is_taken_over(tmp_path, fake_kind, sleeper):
    from conftest import FakeGrid

    suite = fake_kind([(1, "ok"), (2, "ok")])
    results = tmp_path / "results"
    ticks = claims.process_start(sleeper.pid)
    if ticks is None:
        pytest.skip("no /proc start times here")
    _write_claim(results, _cell(suite, 2).key, _me(pid=sleeper.pid, start_ticks=ticks + 4242))
    summary = run_suite(suite, results, None, progress=False, accelerator=_OneProcess())
    assert summary.ran == 2 and not summary.claimed and summary.exit_code == 0
    assert FakeGrid.runs == {1: 1, 2: 1}
    assert not list(paths.records_dir(results).glob("*.claim"))


def test_other_host_claim_expired_lease_is_taken_over_live_one_is_left(tmp_path, fake_kind, capsys):
    from conftest import FakeGrid

    suite = fake_kind([(1, "ok"), (2, "ok"), (3, "ok")])
    results = tmp_path / "results"
    far = {"host": "node-elsewhere", "pid": 4242, "boot_id": "x", "pid_ns": "pid:[1]"}
    _write_claim(results, _cell(suite, 2).key, _me(**far, lease_until=time.time() - 1))
    live = _write_claim(results, _cell(suite, 3).key, _me(**far, lease_until=time.time() + 3600))
    summary = run_suite(suite, results, None, progress=False, accelerator=_OneProcess(), wait=False)
    assert FakeGrid.runs == {1: 1, 2: 1}
    assert [label for label, _ in summary.claimed] == ["fake 3"] and summary.exit_code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("note: 1 cell(s) left to other runs that claim them and have no record yet: fake 3;")
    assert live.exists()  # not ours: left alone


def test_wait_until_the_other_run_writes_its_record(tmp_path, fake_kind, sleeper, monkeypatch, capsys):
    """--wait: the other run (a live process) holds cell 2; at the first poll it has written its record."""
    from conftest import FakeGrid

    from benchmarks import runner

    suite = fake_kind([(1, "ok"), (2, "ok")])
    results = tmp_path / "results"
    cell = _cell(suite, 2)
    claim = _write_claim(results, cell.key, _me(pid=sleeper.pid, start_ticks=claims.process_start(sleeper.pid)))
    monkeypatch.setenv(claims.POLL_ENV, "0.01")

    def other_run_finishes(seconds):
        if not store.is_done(results, cell.key):
            store.write_record(results, runner.run_cell(FakeGrid(), cell, _ctx(results), suite))
            claim.unlink()

    monkeypatch.setattr(runner.time, "sleep", other_run_finishes)
    summary = run_suite(suite, results, None, progress=False, accelerator=_OneProcess(), wait=True)
    assert (summary.ran, summary.by_others, summary.claimed, summary.exit_code) == (1, 1, [], 0)
    assert FakeGrid.runs == {1: 1, 2: 1}
    assert "note: waiting for 1 cell(s) that other runs compute: fake 2" in capsys.readouterr().err


def test_wait_takes_over_when_the_other_run_dies(tmp_path, fake_kind, sleeper, monkeypatch):
    from conftest import FakeGrid

    from benchmarks import runner

    suite = fake_kind([(1, "ok"), (2, "ok")])
    results = tmp_path / "results"
    _write_claim(results, _cell(suite, 2).key, _me(pid=sleeper.pid, start_ticks=claims.process_start(sleeper.pid)))
    monkeypatch.setenv(claims.POLL_ENV, "0.01")
    polls = []

    def the_other_run_is_killed(seconds):
        polls.append(seconds)
        if len(polls) == 2:  # one poll with the claim held, then its process dies without a record
            sleeper.kill()
            sleeper.wait()

    monkeypatch.setattr(runner.time, "sleep", the_other_run_is_killed)
    summary = run_suite(suite, results, None, progress=False, accelerator=_OneProcess(), wait=True)
    assert (summary.ran, summary.by_others, summary.exit_code, len(polls)) == (2, 0, 0, 2)
    assert FakeGrid.runs == {1: 1, 2: 1}


def _ctx(results):
    from benchmarks.context import RunContext
    from benchmarks.models import resolve_model

    return RunContext(None, results, _OneProcess(), resolve_model("fake/model"))


# -- real processes: signals, heartbeat, --jobs parent killed -----------------------------------------

SLOW_KIND = textwrap.dedent('''
    """A suite kind whose cells log their pid and sleep (tests only)."""
    import os
    import time
    from pathlib import Path

    from benchmarks.config import Cell
    from benchmarks.kinds import CellOutcome
    from benchmarks.registry import register_kind


    @register_kind("slow-grid")
    class SlowGrid:
        def validate(self, suite):
            pass

        def cells(self, suite):
            return [Cell({"kind": "slow-grid", "id": i}, f"slow {i}") for i in range(suite.options["cells"])]

        def run(self, cell, ctx):
            with open(os.environ["SLOW_GRID_LOG"], "a") as fh:
                fh.write(f"{os.getpid()} {cell.config['id']}\\n")
            time.sleep(float(os.environ["SLOW_GRID_SECONDS"]))
            return CellOutcome(metrics={"score": 1.0})
''')


@pytest.fixture
def slow_cli(tmp_path):
    """Run `python -m benchmarks` with the slow-grid kind installed as a plug-in; returns (start, paths)."""
    site = tmp_path / "site"
    dist = site / "pb_slow_grid-0.0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "pb_slow_grid.py").write_text(SLOW_KIND)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pb-slow-grid\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("[prunebench.kinds]\nslow-grid = pb_slow_grid\n")
    suite = tmp_path / "slow.yaml"
    log, results = tmp_path / "computed.log", tmp_path / "results"

    def start(*args: str, cells: int = 2, seconds: float = 300, **env: str) -> subprocess.Popen:
        suite.write_text(f"name: slow\nkind: slow-grid\nmodel: lenet-300-100\noptions: {{cells: {cells}}}\n")
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1",
                    "SLOW_GRID_LOG": str(log), "SLOW_GRID_SECONDS": str(seconds), **env}
        return subprocess.Popen([sys.executable, "-m", "benchmarks", "run", "--suite-file", str(suite),
                                 "--results", str(results), "--no-report", "--no-progress", *args],
                                cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    return start, log, results


def _until(condition, timeout: float = 180.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _started(log: Path, count: int = 1) -> list[tuple[int, int]]:
    lines = log.read_text().split("\n") if log.exists() else []
    rows = [tuple(int(x) for x in line.split()) for line in lines if line.strip()]
    return rows if len(rows) >= count else []


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["sigterm", "sigint"])
def test_signal_releases_claims_and_exits_with_one_line(slow_cli, signum, status):
    start, log, results = slow_cli
    proc = start(PRUNEBENCH_CLAIM_LEASE_S="30", PRUNEBENCH_CLAIM_HEARTBEAT_S="0.2")
    try:
        _until(lambda: _started(log), what="the first cell to start")
        claim = next(paths.records_dir(results).glob("*.claim"))
        first_lease = json.loads(claim.read_text())["lease_until"]
        # the heartbeat of the running cell renews its lease (a real process, its own thread)
        _until(lambda: json.loads(claim.read_text())["lease_until"] > first_lease, what="a renewed lease")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert err.strip().splitlines() == [err.strip()], err  # one line, no traceback
    if signum == signal.SIGTERM:
        check("claims:sigterm", err, status)
    else:
        check("claims:sigint", err, status)
    assert not list(paths.records_dir(results).glob("*.claim"))
    assert not list(paths.records_dir(results).glob("*.json"))  # the interrupted cell has no record


def test_killed_jobs_parent_takes_its_workers_with_it(slow_cli):
    start, log, results = slow_cli
    parent = start("--jobs", "2")
    try:
        rows = _until(lambda: _started(log, 2), what="both workers to start a cell")
        workers = [pid for pid, _ in rows]
        assert len(set(workers)) == 2 and parent.pid not in workers
        parent.kill()  # SIGKILL: no handler runs in the parent
        parent.wait()
        _until(lambda: not any(_alive(pid) for pid in workers), timeout=30, what="the workers to end")
        # each worker got SIGTERM (PR_SET_PDEATHSIG) and released its claim on the way out
        _until(lambda: not list(paths.records_dir(results).glob("*.claim")), timeout=30, what="claims released")
    finally:
        parent.kill()
        for pid, _ in _started(log):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
