"""``run --stack K``: cells fine-tuned as one stacked model give the records they give trained one at a time.

Tiny random BERT (dropout on), tiny mirror: seconds per test. The GPU speed this is for cannot be measured on a CPU;
what a CPU shows is the mechanism, launch overhead paid once per stack (tests/test_stacking_bench.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import paths, predictions, stacking
from benchmarks.cli import main
from benchmarks.config import load_suite
from benchmarks.runner import expand, run_suite
from tests.conftest import tiny_suite_yaml

# Four rows that differ only in pruning, so one task's cells share batches: dense, global, random, upper.
ROWS = ("[dense, {method: global, sparsity: [0.5]}, {method: random, sparsity: [0.5]}, "
        "{method: upper, sparsity: [0.6]}]")
# Stacked and lone training agree to float rounding (vmap batches the matrix products differently): measured
# here, the largest difference of a prediction score was below 1e-5 (see test_stacked_cells_equal_lone_cells).
SCORE_ATOL = 1e-4


def _suite(tmp_path, tiny_bert, tasks: str = "[sst2, mrpc]"):
    path = tmp_path / "stack.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert, name="stack", rows=ROWS, tasks=tasks))
    return load_suite(path=path)


def _records(folder) -> dict:
    out = {}
    for file in sorted(paths.records_dir(folder).glob("*.json")):
        record = json.loads(file.read_text())
        out[record["key"]] = record
    return out


def _scores(folder, record) -> dict:
    return predictions.read_arrays(paths.records_dir(folder) / record["predictions"]) if record.get("predictions") \
        else {}


@pytest.fixture(scope="module")
def lone_and_stacked(tmp_path_factory, tiny_bert, tiny_mirror_session):
    """The same suite run one cell at a time and with --stack 4 (two tasks x four rows: two stacks of four)."""
    tmp = tmp_path_factory.mktemp("stack")
    suite = _suite(tmp, tiny_bert)
    lone, stacked = tmp / "lone", tmp / "stacked"
    run_suite(suite, lone, tiny_mirror_session, progress=False)
    run_suite(suite, stacked, tiny_mirror_session, progress=False, stack=4)
    return suite, lone, stacked


def test_stacked_cells_equal_lone_cells(lone_and_stacked):
    """Every cell's metrics, sparsity and per-example predictions match the lone run's to float rounding."""
    suite, lone, stacked = lone_and_stacked
    a, b = _records(lone), _records(stacked)
    assert set(a) == set(b) == {cell.key for cell in expand(suite)}
    for key, rec in a.items():
        other = b[key]
        assert other["status"] == rec["status"] == "ok", other.get("error")
        assert other["sparsity"] == rec["sparsity"]  # masks held: the very same zeros
        for name, value in rec["metrics"].items():
            if isinstance(value, float):
                assert other["metrics"][name] == pytest.approx(value, abs=SCORE_ATOL), (rec["label"], name)
        mine, theirs = _scores(lone, rec), _scores(stacked, other)
        assert set(mine) == set(theirs)
        for name in mine:
            assert np.allclose(mine[name], theirs[name], atol=SCORE_ATOL), (rec["label"], name)


def test_stacked_records_say_how_they_were_trained(lone_and_stacked):
    """The account of a stacked cell names its stack (size, position, companions) and its share of the seconds;
    a lone cell's account has no stack."""
    _, lone, stacked = lone_and_stacked
    for record in _records(lone).values():
        assert "stack" not in record["notes"]["finetune_account"]
    stacks = {}
    for record in _records(stacked).values():
        account = record["notes"]["finetune_account"]
        info = account["stack"]
        assert info["models"] == 4 and record["key"] in info["keys"]
        assert info["keys"][info["position"]] == record["key"]
        assert account["step_seconds"] == pytest.approx(info["step_seconds"] / 4, abs=1e-3)
        stacks.setdefault(tuple(info["keys"]), set()).add(record["config"]["task"])
    assert len(stacks) == 2 and all(len(tasks) == 1 for tasks in stacks.values())


def test_plan_groups_stacks_only_cells_that_share_batches(tiny_bert, tmp_path):
    """Groups hold one task and seed each, at most K cells, in the order the cells come."""
    suite = _suite(tmp_path, tiny_bert)
    cells = expand(suite)
    groups = stacking.plan_groups(cells, 3)
    assert [c.key for g in groups for c in g] == sorted((c.key for c in cells), key=[
        c.key for g in groups for c in g].index)  # every cell once
    assert sorted(len(g) for g in groups) == [1, 1, 3, 3]
    for group in groups:
        assert len({(c.config["task"], c.config["seed"]) for c in group}) == 1
    assert all(len(g) == 1 for g in stacking.plan_groups(cells, 1))


def test_stacking_is_deterministic(lone_and_stacked, tmp_path, tiny_mirror_session):
    """The same stacked run twice gives the same numbers exactly."""
    suite, _, stacked = lone_and_stacked
    again = tmp_path / "again"
    run_suite(suite, again, tiny_mirror_session, progress=False, stack=4)
    a, b = _records(stacked), _records(again)
    for key, rec in a.items():
        assert b[key]["metrics"] == rec["metrics"]
        mine, theirs = _scores(stacked, rec), _scores(again, b[key])
        for name in mine:
            assert np.array_equal(mine[name], theirs[name])


def test_stack_below_one_is_refused(tmp_path, tiny_bert, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert))
    assert main(["run", "--suite-file", str(path), "--stack", "0", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stack 0" in err[0]
    assert not (tmp_path / "r").exists()
