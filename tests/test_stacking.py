"""``run --stack K``: cells fine-tuned as one stacked model give the records they give trained one at a time.

Tiny random BERT (dropout on), tiny mirror: seconds per test. The GPU speed this is for cannot be measured on a CPU;
what a CPU shows is the mechanism, launch overhead paid once per stack (tests/test_stacking_bench.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmarks import predictions, stacking, store
from benchmarks.config import apply_overrides, load_suite
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
    """{key: record} of a results folder (the store's reader)."""
    return store.load_records(folder).records


def _scores(folder, record) -> dict:
    """The per-example arrays a record names ({} when none)."""
    return predictions.load(folder, record) or {}


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


def _leaf_ops(fn) -> int:
    """How many aten operators ``fn`` dispatches that call no other (on a GPU, each is a kernel launch or more)."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return sum(1 for e in prof.events() if e.name.startswith("aten::")
               and not any(c.name.startswith("aten::") for c in e.cpu_children))


def test_a_stack_dispatches_about_as_many_operators_as_one_cell(tiny_bert, tiny_mirror_session):
    """What makes a stack fast on a launch-bound GPU, counted on the CPU: the operators its training steps dispatch
    do not grow with the number of stacked cells, so per cell they fall about K-fold. (Setting a stack up and
    taking it apart costs operators per cell, once; the steps' count is isolated as 2 epochs minus 1.)"""
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from benchmarks.data import load_glue
    from benchmarks.protocols import finetune as F
    from benchmarks.recipes import GlueRecipe

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    dataset = F.encode(tokenizer, load_glue("sst2", "train", tiny_mirror_session), 32)
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)

    def training(k: int, epochs: int):
        """One cell alone through ``finetune`` (k = 0), or a stack of k through ``finetune_stacked``."""
        recipe = GlueRecipe(lr=1e-3, batch_size=16, epochs=epochs, max_length=32, group_by_length=True)
        models = [copy.deepcopy(base) for _ in range(max(k, 1))]
        if k == 0:
            return lambda: F.finetune(models[0], tokenizer, None, recipe, 0, None, accelerator, False,
                                      encoded=dataset)
        jobs = [stacking.TrainJob(str(i), m, None, tokenizer, dataset, (), recipe, 0, False,
                                  stacking.rng_state(accelerator.device), "") for i, m in enumerate(models)]
        return lambda: F.finetune_stacked(jobs, accelerator)

    def step_ops(k: int) -> int:
        return _leaf_ops(training(k, 2)) - _leaf_ops(training(k, 1))

    lone, two, eight = step_ops(0), step_ops(2), step_ops(8)
    print("operators per epoch of 3 steps: lone", lone, "stack of 2", two, "stack of 8", eight)
    assert eight < 1.05 * two, (lone, two, eight)  # the steps' operator count does not grow with the stack
    assert eight / 8 < lone / 4, (lone, two, eight)  # per cell, at least 4 times fewer than one cell alone


def test_stack_under_several_processes_is_refused(tiny_bert, tmp_path, tiny_mirror_session):
    """accelerate launch with several processes splits each batch across them: a stack cannot (one line, exit 2)."""
    from types import SimpleNamespace

    from benchmarks.errors import UserError

    fake = SimpleNamespace(num_processes=2, is_main_process=True)
    with pytest.raises(UserError, match="--stack 4 trains stacked cells in one process"):
        run_suite(_suite(tmp_path, tiny_bert), tmp_path / "r", tiny_mirror_session, progress=False, accelerator=fake,
                  stack=4)


def test_a_stack_that_cannot_train_leaves_its_cells_to_train_alone(lone_and_stacked, tmp_path, tiny_mirror_session,
                                                                   monkeypatch, capsys):
    """A stack that fails (e.g. out of device memory) warns once; its cells train alone and equal the lone run."""
    from benchmarks.protocols import finetune as F

    def broken(jobs, accelerator):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(F, "finetune_stacked", broken)
    suite, lone, _ = lone_and_stacked
    out = tmp_path / "fallback"
    run_suite(suite, out, tiny_mirror_session, progress=False, stack=4)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "CUDA out of memory (simulated)" in warnings[0]
    a, b = _records(lone), _records(out)
    for key, rec in a.items():
        assert b[key]["status"] == "ok" and "stack" not in b[key]["notes"]["finetune_account"]
        assert b[key]["metrics"] == rec["metrics"]


def test_a_cell_rebuilt_differently_trains_alone(lone_and_stacked, tmp_path, tiny_mirror_session, monkeypatch,
                                                 capsys):
    """The replay checks the pruned model against the captured one (sha256); on a mismatch the cell trains alone."""
    real = stacking.train_jobs

    def tamper(session, accelerator):
        real(session, accelerator)
        first = sorted(session.trained)[0]
        session.trained[first].fingerprint = "not the model"

    monkeypatch.setattr(stacking, "train_jobs", tamper)
    suite, lone, _ = lone_and_stacked
    out = tmp_path / "tampered"
    run_suite(suite, out, tiny_mirror_session, progress=False, stack=4)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "rebuilt another pruned model" in line]
    assert len(warnings) == 2  # one cell in each of the two stacks
    accounts = [r["notes"]["finetune_account"] for r in _records(out).values()]
    assert sum("stack" not in a for a in accounts) == 2
    for key, rec in _records(lone).items():
        assert _records(out)[key]["metrics"] == rec["metrics"]


def test_jobs_workers_stack_their_own_shards(tmp_path, tiny_bert, tiny_mirror_session, capsys):
    """--jobs 2 --stack 3: each worker gets --stack and stacks its shard (here one task each: the grid interleaves
    two tasks over two workers), so every record comes from a stack of 3."""
    from benchmarks.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert))  # dense, global-0.5, random-0.5 x SST-2, MRPC
    results = tmp_path / "r"
    code = main(["run", "--suite-file", str(path), "--data-dir", str(tiny_mirror_session), "--results", str(results),
                 "--jobs", "2", "--stack", "3", "--no-progress", "--no-report"])
    assert code == 0, capsys.readouterr().err
    records = _records(results)
    assert len(records) == 6
    for record in records.values():
        info = record["notes"]["finetune_account"]["stack"]
        assert info["models"] == 3
        assert {records[k]["config"]["task"] for k in info["keys"]} == {record["config"]["task"]}


# bf16: stacked (batched) and lone matrix products round differently in bfloat16. Measured on the tiny BERT: scores
# within 3.4e-4 of the lone run's; three times that is the tolerance.
BF16_SCORE_ATOL = 1e-3


def test_bf16_stacks_agree_with_lone_cells_to_bf16_rounding(tmp_path, tiny_bert, tiny_mirror_session):
    path = tmp_path / "bf16.yaml"
    path.write_text(tiny_suite_yaml(tiny_bert, name="stack", rows=ROWS, tasks="[sst2]"))
    suite = apply_overrides(load_suite(path=path), ["recipe.precision=bf16"])
    assert suite.resolved_recipe()["precision"] == "bf16"
    run_suite(suite, tmp_path / "lone", tiny_mirror_session, progress=False)
    run_suite(suite, tmp_path / "stacked", tiny_mirror_session, progress=False, stack=4)
    a, b = _records(tmp_path / "lone"), _records(tmp_path / "stacked")
    for key, rec in a.items():
        assert b[key]["notes"]["finetune_account"]["stack"]["models"] == 4
        mine, theirs = _scores(tmp_path / "lone", rec), _scores(tmp_path / "stacked", b[key])
        for name in mine:
            assert np.allclose(mine[name], theirs[name], atol=BF16_SCORE_ATOL), (rec["label"], name)


def test_a_stack_out_of_memory_is_split_in_halves(lone_and_stacked, tmp_path, tiny_mirror_session, monkeypatch,
                                                   capsys):
    """Out of memory, a stack of 4 is retried as two stacks of 2, and the failed try keeps nothing: what it held is
    freed before the retry starts. Every record comes from a stack of 2 and equals the lone run."""
    import weakref

    import torch

    from benchmarks.protocols import finetune as F

    real = F.finetune_stacked
    failed_tries = []  # weak references to what each failed try held when it ran out of memory

    def small_device(jobs, accelerator):
        assert all(ref() is None for ref in failed_tries), "a failed stack's tensors are still alive at the retry"
        if len(jobs) > 2:
            held = torch.zeros(1000)  # stands for the stacked weights, moments and activations of the failed try
            failed_tries.append(weakref.ref(held))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(jobs, accelerator)

    monkeypatch.setattr(F, "finetune_stacked", small_device)
    suite, lone, _ = lone_and_stacked
    out = tmp_path / "halves"
    run_suite(suite, out, tiny_mirror_session, progress=False, stack=4)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: a stack of 4")]
    assert len(notes) == 2  # one per task
    assert len(failed_tries) == 2
    b = _records(out)
    for key, rec in _records(lone).items():
        assert b[key]["notes"]["finetune_account"]["stack"]["models"] == 2
        assert b[key]["metrics"] == rec["metrics"]
