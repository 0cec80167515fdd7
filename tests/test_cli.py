"""The command line: bad input exits 2 with one line naming the problem and a fix, writing nothing."""

from __future__ import annotations

import pytest
from conftest import tiny_suite_yaml
from errors_doc import check

from benchmarks.cli import main


@pytest.fixture
def env(tmp_path, tiny_bert, tiny_mirror):
    """Paths the bad-input cases are built from; ``results`` must never appear."""
    suite = tmp_path / "ok.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nrows: [dense, {method: global\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    return {"suite": str(suite), "bad_yaml": str(bad_yaml), "file": str(a_file), "mirror": str(tiny_mirror),
            "results": tmp_path / "results", "model": str(tiny_bert), "tmp": tmp_path}


def _run_args(e: dict, *extra: str) -> list[str]:
    return ["run", "--suite-file", e["suite"], "--data-dir", e["mirror"], "--results", str(e["results"]),
            "--no-progress", *extra]


def _break_header(e: dict) -> None:
    path = e["tmp"] / "mirror" / "glue" / "MRPC" / "dev.tsv"
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    path.write_text("Quality\t#1 ID\t#2 ID\tString1\t#2 String\n" + "".join(lines[1:]))


def _break_label(e: dict) -> None:
    path = e["tmp"] / "mirror" / "glue" / "SST-2" / "train.tsv"
    path.write_text(path.read_text() + "a sentence\tpositive\n")


# (id, argv builder, text the message must contain, optional damage to apply first)
CASES = [
    ("unknown-suite", lambda e: ["run", "--suite", "smok", "--results", str(e["results"])], "did you mean 'smoke'",
     None),
    ("unknown-method", lambda e: _run_args(e, "--set", "rows=[{method: glob, sparsity: 0.5}]"),
     "unknown method 'glob'", None),
    ("set-syntax", lambda e: _run_args(e, "--set", "seeds"), "expected KEY=VALUE", None),
    ("set-bad-yaml", lambda e: _run_args(e, "--set", "rows=[dense"), "not valid YAML", None),
    ("unknown-field", lambda e: _run_args(e, "--set", "sedes=[1]"), "did you mean 'seeds'", None),
    ("bad-yaml-file", lambda e: ["run", "--suite-file", e["bad_yaml"], "--results", str(e["results"])], "invalid YAML",
     None),
    ("missing-suite-file",
     lambda e: ["run", "--suite-file", str(e["tmp"] / "nope.yaml"), "--results", str(e["results"])],
     "does not exist", None),
    ("rate-1.5", lambda e: _run_args(e, "--set", "rows=[{method: global, sparsity: 1.5}]"), "outside [0, 1)", None),
    ("negative-rate", lambda e: _run_args(e, "--set", "rows=[{method: random, sparsity: -0.1}]"), "outside [0, 1)",
     None),
    ("mixed-rate", lambda e: _run_args(e, "--set", "rows=[{method: mixed, upper: 0.6, lower: 1.2}]"), "lower rate",
     None),
    ("upper-global-above-half",
     lambda e: _run_args(e, "--set", "rows=[{method: upper, sparsity: 0.6, global_target: true}]"),
     "below 0.5", None),
    ("bad-shard", lambda e: _run_args(e, "--shard", "3/2"), "--shard", None),
    ("shard-syntax", lambda e: _run_args(e, "--shard", "one"), "--shard", None),
    ("data-dir-missing", lambda e: _run_args(e, "--data-dir", str(e["tmp"] / "nodata")), "--data-dir", None),
    ("results-is-file", lambda e: _run_args(e, "--results", e["file"]), "is a file", None),
    ("unknown-task", lambda e: _run_args(e, "--set", "tasks=[sst3]"), "unknown task 'sst3'", None),
    ("seeds-type", lambda e: _run_args(e, "--set", "seeds=abc"), "'seeds' must be", None),
    ("seeds-items", lambda e: _run_args(e, "--set", "seeds=[a, 1]"), "list of integers", None),
    ("unknown-model-folder", lambda e: _run_args(e, "--model", str(e["tmp"] / "no_model")), "does not exist", None),
    ("model-without-config", lambda e: _run_args(e, "--model", str(e["tmp"] / "mirror")), "config.json", None),
    ("unknown-scale", lambda e: _run_args(e, "--set", "scale=huge"), "no scale 'huge'", None),
    ("no-suite", lambda e: ["run", "--results", str(e["results"])], "--suite", None),
    ("unknown-option", lambda e: _run_args(e, "--frobnicate"), "unrecognized arguments", None),
    ("bad-format", lambda e: ["report", "--suite-file", e["suite"], "--format", "pdf"], "invalid choice", None),
    ("report-no-results", lambda e: ["report", "--suite-file", e["suite"], "--results", str(e["results"])],
     "does not exist", None),
    ("malformed-tsv-header", lambda e: _run_args(e), "MRPC/dev.tsv", _break_header),
    ("bad-tsv-label", lambda e: _run_args(e), "SST-2/train.tsv", _break_label),
    ("duplicate-cells", lambda e: _run_args(e, "--set", "seeds=[0, 0]"), "same cell twice", None),
    ("jobs-zero", lambda e: _run_args(e, "--jobs", "0"), "--jobs 0", None),
    ("stack-zero", lambda e: _run_args(e, "--stack", "0"), "--stack 0", None),
    ("jobs-with-shard", lambda e: _run_args(e, "--jobs", "2", "--shard", "0/2"), "drop --shard", None),
    ("jobs-bad-tsv", lambda e: _run_args(e, "--jobs", "2"), "MRPC/dev.tsv", _break_header),
    ("compare-syntax", lambda e: ["report", "--suite-file", e["suite"], "--compare", "zeroshot", "probe"],
     "is not PROTOCOL=RESULTS", None),
    ("compare-no-records", lambda e: ["report", "--suite-file", e["suite"], "--compare",
                                      f"zeroshot={e['tmp'] / 'nope'}", f"probe={e['tmp'] / 'nope'}"],
     "has no records/ folder", None),
    ("same-cells-no-records", lambda e: ["report", "--results", str(e["tmp"] / "nope"), "--same-cells",
                                         str(e["tmp"] / "nope")], "has no records/ folder", None),
    ("same-cells-html", lambda e: ["report", "--results", str(e["tmp"] / "nope"), "--same-cells",
                                   str(e["tmp"] / "nope"), "--format", "html"], "Markdown only", None),
    ("pair-ignoring-alone", lambda e: ["report", "--results", str(e["results"]), "--pair-ignoring", "model"],
     "only applies to --same-cells", None),
    ("pair-ignoring-with-compare", lambda e: ["report", "--suite-file", e["suite"], "--compare",
                                              f"zeroshot={e['tmp'] / 'nope'}", f"probe={e['tmp'] / 'nope'}",
                                              "--pair-ignoring", "model"], "only applies to --same-cells", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(case, env, capsys):
    _, argv, expected, damage = case
    if damage:
        damage(env)
    code = main(argv(env))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert not env["results"].exists(), "bad input must write nothing"
    check(f"cli:{case[0]}", lines[0], 2)


def test_at_least_ten_kinds(env):
    assert len(CASES) >= 10


def test_list_commands(capsys):
    for what in ("methods", "tasks", "suites", "models", "kinds", "protocols"):
        assert main(["list", what]) == 0
    out = capsys.readouterr().out
    for name in ("global", "lower", "upper", "mixed", "random", "sst2", "mrpc", "smoke", "minilm-l6", "prune-finetune",
                 "zeroshot", "probe"):
        assert name in out


def test_jobs_runs_every_cell_once_in_worker_processes(env, capsys):
    """--jobs 2: two shard workers share the grid; every cell gets exactly one ok record, and a second
    run finds nothing to do."""
    from benchmarks import store

    code = main(_run_args(env, "--jobs", "2"))
    out, err = capsys.readouterr()
    assert code == 0, err
    records = store.load_records(env["results"]).records
    assert len(records) == 6 and all(r["status"] == "ok" for r in records.values())
    assert len(list((env["results"] / "records").glob("*.json"))) == 6
    assert "6 cells, 6 with an ok record; worker exit statuses [0, 0]" in err
    assert "| dense" in out  # the leaderboard, printed once by the parent
    assert main(_run_args(env, "--shard", "0/1", "--no-report")) == 0
    assert "6 already done, 0 run" in capsys.readouterr().err


@pytest.mark.parametrize("codes,expected", [([0, 0], 0), ([0, 1], 1), ([0, -9], 1), ([1, 2], 2), ([2, -15], 2)])
def test_jobs_exit_status_combines_the_workers(codes, expected):
    from benchmarks.cli import combined_status

    assert combined_status(codes) == expected
