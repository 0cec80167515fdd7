"""Everything checked before the first cell, and records and arrays that are not done (issue 19, items 2 and 3).

Each bad input exits 2 with one line and writes nothing: N:M pattern syntax and its fit to the resolved model,
finite recipe floats, suite names that are safe file names, bounded YAML, --jobs against cores and cells,
calibration limits, protocol-specific recipe keys, a data file that is a folder. A record with a non-finite
metric or unreadable arrays is rerun, and `report` never dies on it. docs/errors.md lists every case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_suite_yaml
from errors_doc import check

from benchmarks import paths, preflight, store
from benchmarks.cli import main
from benchmarks.config import MAX_YAML_NODES, load_suite, parse_yaml


@pytest.fixture
def env(tmp_path, tiny_bert, tiny_mirror):
    """A tiny suite file, its mirror and a results folder that must never appear after bad input."""
    suite = tmp_path / "ok.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert))
    return {"suite": str(suite), "mirror": tiny_mirror, "results": tmp_path / "results", "tmp": tmp_path,
            "model": tiny_bert}


def _run(e: dict, *extra: str) -> list[str]:
    return ["run", "--suite-file", e["suite"], "--data-dir", str(e["mirror"]), "--results", str(e["results"]),
            "--no-progress", *extra]


def _row(e: dict, row: str) -> list[str]:
    return _run(e, "--set", f"rows=[{row}]")


def _suite_file(e: dict, text: str) -> list[str]:
    """Run a suite file: the tiny suite's text with ``text`` appended (a later key wins)."""
    path = e["tmp"] / "extra.yaml"
    path.write_text(Path(e["suite"]).read_text() + text + "\n")
    return _run(e, "--suite-file", str(path))


# 8 levels of 10 aliases: under 300 bytes that expand to 10**8 values (the bomb was 439 bytes)
BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{b}: &{b} [*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a},*{a}]\n" for a, b in zip("abcdefg", "bcdefgh"))


def _data_file_is_folder(e: dict) -> list[str]:
    train = e["mirror"] / "glue" / "MRPC" / "train.tsv"
    train.unlink()
    train.mkdir()
    return _run(e)


WANDA = "{method: wanda, sparsity: 0.5}"

# (id, argv builder, text the one line must contain)
CASES = [
    # N:M patterns: syntax, conflicts, the YAML 1.1 sexagesimal trap, and the fit to the resolved model
    ("pattern-n-above-m", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: "4:2"}'), "0 < N < M"),
    ("pattern-n-zero", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: "0:4"}'), "0 < N < M"),
    ("pattern-m-zero", lambda e: _row(e, '{method: global, sparsity: 0.5, pattern: "2:0"}'), "0 < N < M"),
    ("pattern-n-equals-m", lambda e: _row(e, '{method: global, sparsity: 0.5, pattern: "4:4"}'), "0 < N < M"),
    ("pattern-letters", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: "a:b"}'), "two whole numbers"),
    ("pattern-leading-space", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: " 2:4"}'),
     "no spaces"),
    ("pattern-three-numbers", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: "2:4:8"}'),
     "two whole numbers"),
    ("pattern-slash", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: "2/4"}'), "two whole numbers"),
    ("pattern-empty", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: ""}'), "two whole numbers"),
    ("pattern-fullwidth-digits", lambda e: _row(e, '{method: layerwise, sparsity: 0.5, pattern: "\uff12:\uff14"}'),
     "two whole numbers"),
    ("pattern-and-other-sparsity", lambda e: _row(e, '{method: global, sparsity: 0.3, pattern: "2:4"}'),
     "sparsity 0.3 conflicts with pattern 2:4"),
    ("pattern-unquoted-in-set", lambda e: _row(e, "{method: layerwise, sparsity: 0.5, pattern: 2:4}"),
     'quote it: pattern: "2:4"'),
    ("pattern-unquoted-in-suite-file",
     lambda e: _suite_file(e, "rows: [{method: wanda, sparsity: 0.5, pattern: 2:4}]"), 'quote it: pattern: "2:4"'),
    ("pattern-on-random", lambda e: _row(e, '{method: random, sparsity: 0.5, pattern: "2:4"}'),
     "does not take an N:M pattern"),
    ("pattern-with-global-target", lambda e: _row(e, '{method: upper, sparsity: 0.5, pattern: "2:4", '
                                                     'global_target: true}'), "fixes the rate inside the half"),
    ("pattern-does-not-fit-model", lambda e: _row(e, '{method: layerwise, sparsity: 0.4, pattern: "2:5"}'),
     "does not fit model"),
    # recipe floats are finite (NaN passes every range check; lr=inf trained a NaN model into an ok record)
    ("recipe-lr-inf", lambda e: _run(e, "--set", "recipe.lr=.inf"), "recipe.lr=inf is not a finite number"),
    ("recipe-lr-nan", lambda e: _run(e, "--set", "recipe.lr=.nan"), "recipe.lr=nan is not a finite number"),
    ("recipe-epochs-inf", lambda e: _run(e, "--set", "recipe.epochs=.inf"), "not a finite number"),
    ("recipe-warmup-nan", lambda e: _run(e, "--set", "recipe.warmup_ratio=.nan"), "not a finite number"),
    ("recipe-weight-decay-inf", lambda e: _run(e, "--set", "recipe.weight_decay=.inf"), "not a finite number"),
    ("recipe-mlm-head-lr-nan", lambda e: _run(e, "--set", "recipe.mlm_head_lr=.nan"), "not a finite number"),
    ("recipe-lr-inf-in-scale", lambda e: _run(e, "--set", "scales.cpu.lr=-.inf"), "scale 'cpu': recipe.lr=-inf"),
    ("mnist-recipe-lr-nan", lambda e: ["run", "--suite", "mnist-ci", "--set", "recipe.lr=.nan",
                                       "--results", str(e["results"]), "--no-progress"], "not a finite number"),
    # suite names become file names
    ("name-path-separator", lambda e: _run(e, "--set", "name=a/b"), "contains a path separator"),
    ("name-escapes-results", lambda e: _run(e, "--set", "name=../../escape"), "contains a path separator"),
    ("name-dot-dot", lambda e: _run(e, "--set", "name=.."), "contains '..'"),
    ("name-backslash", lambda e: _run(e, "--set", r"name='a\b'"), "contains a path separator"),
    ("name-control-character", lambda e: _run(e, "--set", 'name="tab\\there"'), "control character"),
    ("name-too-long", lambda e: _run(e, "--set", "name=" + "x" * 300), "300 characters long"),
    ("name-empty", lambda e: _run(e, "--set", "name=''"), "the suite name is empty"),
    ("name-in-suite-file", lambda e: _suite_file(e, "name: ../up"), "contains a path separator"),
    # bounded YAML: aliases may not expand without limit, nor refer to themselves
    ("yaml-alias-bomb-in-set", lambda e: _run(e, "--set", "options=" + "{" + BOMB.replace("\n", ", ") + "}"),
     "YAML too large to load"),
    ("yaml-alias-bomb-in-suite-file", lambda e: _suite_file(e, "options:\n" + "".join(
        f"  {line}\n" for line in BOMB.splitlines())), "YAML too large to load"),
    ("yaml-recursive-alias", lambda e: _run(e, "--set", "rows=&a [*a]"), "refers to a node that contains it"),
    # calibration windows checked against the model and the source before any cell
    ("calibration-count-beyond-source", lambda e: _row(e, WANDA) + [
        "--set", "calibration={source: 'glue-train:sst2,mrpc', count: 10000000}"], "holds at most"),
    ("calibration-seq-len-beyond-positions", lambda e: _row(e, WANDA) + ["--set", "calibration.seq_len=1000"],
     "exceeds the model's 128 positions"),
    # protocols: probe on a task without one, and recipe keys the protocol never reads
    ("probe-on-mlm-only", lambda e: _run(e, "--set", "tasks=[mlm]", "--set", "protocol=probe"),
     "exactly what protocol 'zeroshot' measures"),
    ("recipe-lr-under-zeroshot", lambda e: _run(e, "--set", "protocol=zeroshot", "--set", "recipe.lr=1e-4"),
     "protocol 'zeroshot' never reads it"),
    ("recipe-fit-limit-under-finetune", lambda e: _run(e, "--set", "recipe.fit_limit=64"),
     "protocol 'finetune' never reads it"),
    # a data file that is a folder is not missing data
    ("data-file-is-folder", _data_file_is_folder, "train.tsv is not a file"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_checked_before_the_first_cell(case, env, capsys):
    name, argv, expected = case
    code = main(argv(env))
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert not env["results"].exists(), "bad input must write nothing"
    check(f"bad:{name}", lines[0], 2)


# -- N:M canonical form -------------------------------------------------------------------------------------

def _cells(e: dict, pattern: str):
    from benchmarks.runner import expand

    text = tiny_suite_yaml(e["model"], rows=f'[{{method: layerwise, sparsity: 0.5, pattern: "{pattern}"}}]')
    path = e["tmp"] / f"p{len(pattern)}.yaml"
    path.write_text(text)
    return expand(load_suite(path=path))


def test_zero_padded_pattern_is_the_same_cell_and_row(env):
    plain, padded = _cells(env, "2:4"), _cells(env, "02:04")
    assert [c.key for c in plain] == [c.key for c in padded]
    assert {c.label.split()[0] for c in padded} == {"layerwise-2:4"}
    assert plain[0].config["options"] == {"pattern": "2:4"}  # existing "2:4" keys keep their config


def test_pattern_that_fits_passes_the_model_check(env):
    from benchmarks.models import resolve_model

    shape = preflight.model_shape(resolve_model(str(env["model"])))
    assert set(shape.widths.values()) == {32, 64} and shape.max_positions == 128
    preflight.check_pattern_fit(_cells(env, "2:4"), shape, "tiny")  # 4 divides 32 and 64: no error


def test_minilm_matrices_refuse_m_5(minilm_path):
    """The issue's case: "2:5" on MiniLM-L6, whose matrices are 384 and 1536 wide."""
    from benchmarks.errors import UserError
    from benchmarks.models import resolve_model

    shape = preflight.model_shape(resolve_model(str(minilm_path)))
    assert set(shape.widths.values()) == {384, 1536}
    cell = type("C", (), {"config": {"options": {"pattern": "2:5"}}})()
    with pytest.raises(UserError, match="M=5 does not divide"):
        preflight.check_pattern_fit([cell], shape, "minilm-l6")


# -- YAML ---------------------------------------------------------------------------------------------------

def test_bomb_is_refused_without_expanding_it():
    from benchmarks.config import YamlTooLarge

    assert len(BOMB.encode()) < 440
    with pytest.raises(YamlTooLarge):
        parse_yaml(BOMB)


def test_aliases_within_the_bound_still_load():
    data = parse_yaml("base: &b {lr: 1.0e-3}\nscales: {cpu: *b, gpu: *b}\n")
    assert data["scales"] == {"cpu": {"lr": 0.001}, "gpu": {"lr": 0.001}}
    assert parse_yaml("[" + ",".join(["1"] * (MAX_YAML_NODES - 1)) + "]")[-1] == 1


# -- --jobs ---------------------------------------------------------------------------------------------------

def _fake_workers(monkeypatch, cores: int) -> list:
    """Workers that run nothing: what is checked is how many start (and with which --shard)."""
    import subprocess

    from benchmarks import progress

    started = []

    class FakeWorker:
        def __init__(self, argv, env=None):
            started.append(argv)
            self.returncode = 0

    monkeypatch.setattr(preflight, "usable_cores", lambda: cores)
    monkeypatch.setattr(subprocess, "Popen", FakeWorker)
    monkeypatch.setattr(progress, "follow_workers", lambda workers, *a, **k: [0] * len(workers))
    return started


def _shards(started: list) -> list[str]:
    return [argv[argv.index("--shard") + 1] for argv in started]


def test_jobs_never_start_more_workers_than_cells(env, capsys, monkeypatch):
    """--jobs 99 for one cell starts one worker."""
    started = _fake_workers(monkeypatch, cores=64)
    code = main(_run(env, "--jobs", "99", "--set", "rows=[dense]", "--set", "tasks=[sst2]", "--no-report"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert _shards(started) == ["0/1"]
    check("bad:jobs-more-than-cells", next(line for line in err.splitlines() if line.startswith("note:")), 0)


def test_jobs_never_start_more_workers_than_cores(env, capsys, monkeypatch):
    """--jobs 99 on 2 cores for 6 cells starts two workers, and says each one's memory."""
    started = _fake_workers(monkeypatch, cores=2)
    code = main(_run(env, "--jobs", "99", "--no-report"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert _shards(started) == ["0/2", "1/2"]
    check("bad:jobs-more-than-cores", next(line for line in err.splitlines() if line.startswith("note:")), 0)


def test_jobs_beyond_the_memory_are_refused(env, capsys, monkeypatch):
    started = _fake_workers(monkeypatch, cores=64)
    monkeypatch.setattr(preflight, "total_memory", lambda: 3 * 2**30)
    code = main(_run(env, "--jobs", "6"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and started == [] and not env["results"].exists()
    check("bad:jobs-beyond-memory", err, 2)


@pytest.mark.parametrize("jobs", [None, "2"])
def test_a_stack_beyond_the_memory_is_refused(env, capsys, monkeypatch, jobs):
    """--stack 200 on a CPU with 4 GiB: refused before anything runs, naming a stack that fits."""
    started = _fake_workers(monkeypatch, cores=64)
    monkeypatch.setattr(preflight, "total_memory", lambda: 4 * 2**30)
    code = main(_run(env, "--stack", "200", *(["--jobs", jobs] if jobs else [])))
    err = capsys.readouterr().err.strip()
    assert code == 2 and started == [] and not env["results"].exists()
    if jobs:
        check("bad:stack-beyond-memory-jobs", err, 2)
    else:
        check("bad:stack-beyond-memory", err, 2)


@pytest.mark.parametrize("jobs,cores,todo,workers", [(99, 64, 1, 1), (99, 2, 50, 2), (2, 2, 6, 2), (4, 8, 0, 1),
                                                     (1, 1, 9, 1)])
def test_plan_workers(jobs, cores, todo, workers):
    assert preflight.plan_workers(jobs, cores, todo)[0] == workers
    assert (preflight.plan_workers(jobs, cores, todo)[1] is None) == (workers == jobs)


def test_worker_memory_scales_with_the_model():
    small = preflight.ModelShape({}, 1_000_000, None)
    big = preflight.ModelShape({}, 110_000_000, None)
    assert preflight.worker_memory(big) - preflight.worker_memory(small) == 109_000_000 * 16
    assert preflight.worker_memory(big, 8) - preflight.worker_memory(big) == 110_000_000 * (44 * 8 - 16)
    assert preflight.worker_memory(None) is None


# -- records and arrays that are not done ------------------------------------------------------------------

def _one_ok_record(tmp_path, fake_kind, monkeypatch, arrays: bool = True):
    """A fake one-cell suite run once; its ok record (with per-example arrays when ``arrays``)."""
    import numpy as np
    from conftest import FakeGrid

    from benchmarks.kinds import CellOutcome
    from benchmarks.runner import run_suite

    outcome = CellOutcome(metrics={"accuracy": 0.5}, arrays={"pred": np.arange(50) % 2, "label": np.zeros(50)}
                          if arrays else {})
    monkeypatch.setattr(FakeGrid, "run", lambda self, cell, ctx: FakeGrid.runs.update(n=FakeGrid.runs.get("n", 0) + 1)
                        or outcome)
    suite = fake_kind([(1, "ok")])
    results = tmp_path / "results"
    run_suite(suite, results, None, progress=False)
    (path,) = paths.records_dir(results).glob("*.json")
    return suite, results, path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "0.9", True])
def test_record_with_a_non_finite_or_non_number_metric_is_rerun(tmp_path, fake_kind, monkeypatch, capsys, value):
    from conftest import FakeGrid

    from benchmarks.runner import run_suite

    suite, results, path = _one_ok_record(tmp_path, fake_kind, monkeypatch, arrays=False)
    record = json.loads(path.read_text())
    record["metrics"]["accuracy"] = value
    path.write_text(json.dumps(record))
    assert store.record_state(results, record["key"]) == store.CORRUPT
    capsys.readouterr()
    summary = run_suite(suite, results, None, progress=False)
    assert summary.ran == 1 and FakeGrid.runs["n"] == 2
    assert store.read_record(path)["metrics"]["accuracy"] == 0.5
    if value is True:
        check("bad:ok-record-metric-true-rerun", capsys.readouterr().err.strip(), 0)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_ok_record_with_unusable_arrays_is_rerun(tmp_path, fake_kind, monkeypatch, capsys, damage):
    from conftest import FakeGrid

    from benchmarks.runner import run_suite

    suite, results, path = _one_ok_record(tmp_path, fake_kind, monkeypatch)
    npz = path.with_suffix(".npz")
    good = npz.read_bytes()
    if damage == "truncated":
        npz.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        npz.write_bytes(b"not a zip file" * 20)
    else:
        npz.unlink()
    assert store.record_state(results, path.stem) == store.CORRUPT
    capsys.readouterr()
    summary = run_suite(suite, results, None, progress=False)
    assert summary.ran == 1 and FakeGrid.runs["n"] == 2 and npz.read_bytes() == good
    check(f"bad:ok-record-npz-{damage}-rerun", capsys.readouterr().err.strip(), 0)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_report_does_not_die_on_unreadable_arrays(tmp_path, tiny_bert, tiny_mirror, capsys, damage):
    suite = tmp_path / "one.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="one", tasks="[sst2]", rows="[dense]"))
    results = tmp_path / "results"
    assert main(["run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror), "--results", str(results),
                 "--no-progress", "--no-report"]) == 0
    npz = next(paths.records_dir(results).glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:200] if damage == "truncated" else b"\x00garbage" * 40)
    capsys.readouterr()
    assert main(["report", "--suite-file", str(suite), "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    assert "full-base" in out
    check(f"bad:report-npz-{damage}", err.strip(), 0)


def test_a_cell_with_a_nan_metric_is_a_failed_cell(tmp_path, fake_kind, monkeypatch):
    from conftest import FakeGrid

    from benchmarks.kinds import CellOutcome
    from benchmarks.runner import run_suite

    monkeypatch.setattr(FakeGrid, "run", lambda self, cell, ctx: CellOutcome(metrics={"accuracy": float("nan")}))
    results = tmp_path / "results"
    summary = run_suite(fake_kind([(1, "ok")]), results, None, progress=False)
    assert summary.ok == 0 and "metrics.accuracy" in summary.failed[0][1]
    (record,) = store.load_records(results).records.values()
    assert record["status"] == "failed" and not store.is_done(results, record["key"])
