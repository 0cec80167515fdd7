"""``run --dry-run``: what a run would do with each cell (done, stale, to run, held by another run, which worker and
which stack), with the input checked as a run checks it, and nothing computed or written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import claims, store
from benchmarks.cli import main
from benchmarks.config import apply_overrides, load_suite
from benchmarks.runner import run_suite


def _files(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (what a dry run must leave as it was)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _table(out: str) -> dict[str, list[str]]:
    """{cell label: [the row's other columns]} from the dry run's table (two or more spaces between columns)."""
    rows = {}
    for line in out.splitlines()[2:]:
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) >= 4 and parts[0].isdigit():
            label = next(p for p in parts if " seed=" in p)
            rows[label] = parts
    return rows


@pytest.fixture
def half_done(tmp_path, tiny_suite_file, tiny_mirror_session) -> Path:
    """The tiny suite's results with its three MRPC cells run (SST-2 not yet)."""
    results = tmp_path / "results"
    suite = apply_overrides(load_suite(path=tiny_suite_file), ["tasks=[mrpc]"])
    assert run_suite(suite, results, tiny_mirror_session, progress=False).ok == 3
    return results


def _dry(suite_file, mirror, results, *extra) -> list[str]:
    return ["run", "--suite-file", str(suite_file), "--data-dir", str(mirror), "--results", str(results),
            "--dry-run", *extra]


def test_dry_run_lists_each_cell_with_what_the_run_would_do_and_writes_nothing(half_done, tiny_suite_file,
                                                                                tiny_mirror_session, capsys):
    """Done cells are skipped, missing and unreadable ones run, a cell another live run claims is held; the
    results folder is byte for byte as it was (no grid, no claim, no probe file)."""
    records = sorted(store.load_records(half_done).records)
    (half_done / "records" / f"{records[0]}.json").write_text("{ truncated")  # unreadable: reruns
    sst2 = load_suite(path=tiny_suite_file)
    from benchmarks.runner import expand

    held = next(c.key for c in expand(sst2) if c.config["task"] == "sst2")
    assert claims.claim_cell(half_done, held)  # a live claim, as another run would hold
    try:
        before = _files(half_done)
        assert main(_dry(tiny_suite_file, tiny_mirror_session, half_done)) == 0
        out = capsys.readouterr().out
        assert _files(half_done) == before
    finally:
        claims.release_cell(half_done, held)
    states = {label: parts[-2] for label, parts in _table(out).items()}
    assert len(states) == 6
    assert sorted(states.values()) == sorted(["corrupt", "done", "done", "held by another run", "missing",
                                              "missing"])
    assert all(states[label] in ("done", "corrupt") for label in states if "mrpc" in label)
    assert "tiny: 6 cells (" in out and "; 4 would run; nothing was run or written" in out


def test_dry_run_shows_the_worker_and_the_stack_of_each_cell(tmp_path, tiny_suite_file, tiny_mirror_session,
                                                            capsys):
    """With --jobs 2 the cells alternate between workers in grid order (as --shard i/2 takes them), and with
    --stack 3 each worker's cells of one task form one stack."""
    assert main(_dry(tiny_suite_file, tiny_mirror_session, tmp_path / "r", "--jobs", "2", "--stack", "3")) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert [parts[1] for parts in rows.values()] == ["0", "1", "0", "1", "0", "1"]
    stacks = {label: parts[2] for label, parts in rows.items()}
    by_task = {task: {s for label, s in stacks.items() if task in label} for task in ("sst2", "mrpc")}
    assert by_task["sst2"] == {"1 (3)"} and by_task["mrpc"] == {"2 (3)"}, stacks
    assert "6 would run on 2 workers" in out
    assert not (tmp_path / "r").exists()


def test_dry_run_checks_the_input_as_a_run_does(tmp_path, tiny_suite_file, tiny_mirror_session, capsys):
    """Bad input is exit 2 with one line, as for a run."""
    code = main(_dry(tiny_suite_file, tiny_mirror_session, tmp_path / "r", "--jobs", "2", "--shard", "0/2"))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "drop --shard" in err[0]
    code = main(_dry(tiny_suite_file, tiny_mirror_session, tmp_path / "r", "--set",
                     "rows=[{method: globl, sparsity: [0.5]}]"))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "did you mean" in err[0], err
    code = main(_dry(tiny_suite_file, tiny_mirror_session, tmp_path / "r", "--stack", "100000"))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "--stack" in err[0], err  # beyond this machine's memory, as a run
    assert not (tmp_path / "r").exists()
