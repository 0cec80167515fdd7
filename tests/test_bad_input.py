"""Bad input and faults (issue 12, item 4): each answered with one line naming the problem and a fix.

Bad input exits 2 before anything trains or is written; a fault while writing a record exits 1 with
one line and leaves nothing corrupt; a broken plug-in is one warning line; two runs on one results
folder never compute a cell twice. docs/errors.md lists every case with its message.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import FakeGrid, tiny_suite_yaml
from errors_doc import check

from benchmarks import paths, store
from benchmarks.cli import main
from benchmarks.config import Suite, apply_overrides, load_suite
from benchmarks.registry import METHODS


@pytest.fixture
def env(tmp_path, tiny_bert, tiny_mirror):
    """Paths the cases are built from; ``results`` must never appear after bad input."""
    suite = tmp_path / "ok.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    (tmp_path / "empty").mkdir()
    return {"suite": str(suite), "file": str(a_file), "mirror": str(tiny_mirror), "results": tmp_path / "results",
            "model": model, "tmp": tmp_path}


def _run_args(e: dict, *extra: str) -> list[str]:
    return ["run", "--suite-file", e["suite"], "--data-dir", e["mirror"], "--results", str(e["results"]),
            "--no-progress", *extra]


def _bad_utf8(e: dict) -> list[str]:
    path = e["tmp"] / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\nrows: [dense]\n".encode("latin-1"))
    return ["run", "--suite-file", str(path), "--results", str(e["results"])]


def _corrupt_config(e: dict) -> list[str]:
    (e["model"] / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    return _run_args(e, "--model", str(e["model"]))


def _config_not_bert(e: dict) -> list[str]:
    (e["model"] / "config.json").write_text('{"model_type": "no-such-architecture"}')
    return _run_args(e, "--model", str(e["model"]))


def _truncated_weights(e: dict) -> list[str]:
    weights = e["model"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return _run_args(e, "--model", str(e["model"]))


def _garbage_bin_weights(e: dict) -> list[str]:
    (e["model"] / "model.safetensors").unlink()
    (e["model"] / "pytorch_model.bin").write_bytes(b"not a torch file" * 10)
    return _run_args(e, "--model", str(e["model"]))


def _readonly_results(e: dict, monkeypatch) -> None:
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(store.tempfile, "mkstemp", denied)  # root ignores chmod; the probe sees what a user would


def _full_results(e: dict, monkeypatch) -> None:
    real_fsync = os.fsync

    def full(fd):
        real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)


def _suite_file_run(e: dict, extra: str) -> list[str]:
    """Run a tiny suite file whose text ends with ``extra`` (a later key wins in YAML: recipe, scales)."""
    path = e["tmp"] / "extra.yaml"
    path.write_text(Path(e["suite"]).read_text() + extra + "\n")
    return _run_args(e, "--suite-file", str(path))


def _rows(e: dict, rows: str) -> list[str]:
    return _run_args(e, "--set", f"rows={rows}")


def _report(e: dict, out: Path) -> list[str]:
    return ["report", "--suite-file", e["suite"], "--results", str(e["results"]), "--out", str(out)]


# (id, argv builder, text the one line must contain, optional fault set up with monkeypatch)
CASES = [
    ("seeds-empty", lambda e: _run_args(e, "--set", "seeds=[]"), "seeds is empty", None),
    ("seed-negative", lambda e: _run_args(e, "--set", "seeds=[-1]"), "outside [0, 2**32)", None),
    ("seed-too-large", lambda e: _run_args(e, "--set", "seeds=[0, 4294967296]"), "seed 4294967296 is outside", None),
    ("seed-float", lambda e: _run_args(e, "--set", "seeds=[1e3]"), "list of integers", None),
    ("model-alias-typo", lambda e: _run_args(e, "--model", "minilm-l7"), "did you mean 'minilm-l6'", None),
    ("model-name-no-owner", lambda e: _run_args(e, "--model", "bert-base-uncasd"), "not a model alias", None),
    ("model-empty", lambda e: _run_args(e, "--model", ""), "--model '' is empty", None),
    ("model-blank-in-set", lambda e: _run_args(e, "--set", "model=' '"), "model is empty", None),
    ("model-null-in-set", lambda e: _run_args(e, "--set", "model=null"), "field 'model' must be str", None),
    ("model-corrupt-config", _corrupt_config, "config.json does not load", None),
    ("model-unknown-architecture", _config_not_bert, "config.json does not load", None),
    ("model-truncated-weights", _truncated_weights, "model.safetensors does not load", None),
    ("model-garbage-bin-weights", _garbage_bin_weights, "pytorch_model.bin does not load", None),
    ("suite-not-utf8", _bad_utf8, "not UTF-8", None),
    ("suite-file-is-folder", lambda e: ["run", "--suite-file", str(e["tmp"]), "--results", str(e["results"])],
     "is a folder", None),
    ("data-dir-without-suite-files", lambda e: _run_args(e, "--data-dir", str(e["tmp"] / "empty")),
     "holds none of the files", None),
    ("data-dir-without-task-files", lambda e: _run_args(e, "--set", "tasks=[stsb]"), "glue/STS-B/*.tsv", None),
    ("results-read-only", lambda e: _run_args(e), "is not writable (Permission denied)", _readonly_results),
    ("results-disk-full", lambda e: _run_args(e), "is not writable (No space left on device)", _full_results),
    ("results-under-a-file", lambda e: _run_args(e, "--results", str(Path(e["file"]) / "results")),
     "is not writable", None),
    ("jobs-results-read-only", lambda e: _run_args(e, "--jobs", "2"), "is not writable", _readonly_results),
    # closed, typed recipes (benchmarks/recipes.py), checked in every scale before any cell
    ("recipe-unknown-key", lambda e: _run_args(e, "--set", "recipe.learnig_rate=3e-5"), "did you mean 'lr'?", None),
    ("recipe-wrong-type", lambda e: _run_args(e, "--set", "recipe.epochs=three"), "recipe.epochs must be a number",
     None),
    ("recipe-epochs-negative", lambda e: _run_args(e, "--set", "recipe.epochs=-1"), "recipe.epochs=-1 is out of range",
     None),
    ("recipe-train-limit-zero", lambda e: _run_args(e, "--set", "recipe.train_limit=0"),
     "train_limit=0 is out of range", None),
    ("recipe-batch-size-zero", lambda e: _run_args(e, "--set", "recipe.batch_size=0"), "batch_size=0 is out of range",
     None),
    ("recipe-bool-as-number", lambda e: _run_args(e, "--set", "recipe.group_by_length=1"), "must be true or false",
     None),
    ("recipe-suite-field", lambda e: _run_args(e, "--set", "recipe.protocol=zeroshot"), "is a suite field", None),
    ("recipe-in-suite-file", lambda e: _suite_file_run(e, "recipe: {lr: 1.0e-3, epcohs: 1}"),
     "unknown recipe key 'epcohs'; did you mean 'epochs'?", None),
    ("scale-key-misspelt", lambda e: _run_args(e, "--set", "scales.cpu.epcohs=1"), "scale 'cpu': unknown recipe key",
     None),
    ("scale-out-of-range-unused-scale", lambda e: _suite_file_run(e, "scales: {cpu: {train_limit: 0}}"),
     "scale 'cpu': recipe.train_limit=0", None),
    ("scale-not-a-mapping", lambda e: _run_args(e, "--set", "scales.cpu=3"), "scales.cpu must be a mapping", None),
    ("mnist-scale-key-misspelt", lambda e: ["run", "--suite", "mnist-ci", "--set", "scales.small={epcohs: 1}",
                                            "--results", str(e["results"]), "--no-progress"],
     "unknown recipe key(s) epcohs", None),
    ("bert-correlations-recipe", lambda e: ["run", "--suite", "bert-correlations", "--set", "recipe.lr=0.1",
                                            "--model", "minilm-l6",  # a hub model is probed first (offline here)
                                            "--results", str(e["results"]), "--no-progress"],
     "takes no recipe or scales", None),
    # methods describe themselves (benchmarks.registry.MethodSpec)
    ("method-unknown-option", lambda e: _rows(e, "[{method: global, sparsity: [0.3], foo: 1}]"),
     "method 'global' has no option 'foo'", None),
    ("method-option-wrong-type", lambda e: _rows(e, "[{method: layerwise, sparsity: 0.5, pattern: 3}]"),
     "option 'pattern' must be a string", None),
    ("mixed-one-rate", lambda e: _rows(e, "[{method: mixed, upper: 0.6}]"), "needs option(s) 'lower'", None),
    ("mixed-no-rates", lambda e: _rows(e, "[{method: mixed}]"), "needs option(s) 'upper', 'lower'", None),
    ("mixed-with-sparsity", lambda e: _rows(e, "[{method: mixed, sparsity: 0.3, upper: 0.6, lower: 0.8}]"),
     "not 'sparsity'", None),
    ("rows-one-label", lambda e: _rows(e, "[{method: global, sparsity: 0.5}, "
                                          "{method: global, sparsity: 0.5, pattern: unstructured}]"),
     "two rows have the label 'full-0.5'", None),
    # structured pruning and the cost note (issue 23)
    ("structured-drop-side", lambda e: _rows(e, "[{method: drop-layers, sparsity: 0.3, side: middle}]"),
     "side must be 'top' or 'bottom'", None),
    ("structured-heads-pattern", lambda e: _rows(e, "[{method: heads, sparsity: 0.2, pattern: '2:4'}]"),
     "method 'heads' has no option 'pattern'", None),
    ("structured-cost-unknown-field", lambda e: _run_args(e, "--set", "options={cost: {threads: 2}}"),
     "unknown options.cost field(s) ['threads']", None),
    ("structured-cost-bad-batch", lambda e: _run_args(e, "--set", "options={cost: {batch_sizes: [0]}}"),
     "batch_sizes must be a list of positive integers", None),
    ("structured-unknown-suite-option", lambda e: _run_args(e, "--set", "options={costs: {}}"),
     "unknown option(s) ['costs'] for a prune-finetune suite", None),
    # iterative pruning (methods/iterative.py): its rounds fine-tune
    ("imp-rounds-zero", lambda e: _rows(e, "[{method: imp, sparsity: 0.5, rounds: 0}]"),
     "imp rounds must be a whole number from 1 to 20, got 0", None),
    ("imp-zeroshot", lambda e: _run_args(e, "--set", "rows=[{method: imp, sparsity: 0.5}]",
                                         "--set", "protocol=zeroshot"),
     "protocol 'zeroshot' fine-tunes nothing", None),
    ("imp-mlm", lambda e: _run_args(e, "--set", "rows=[{method: imp, sparsity: 0.5}]", "--set", "tasks=[sst2,mlm]"),
     "task(s) mlm are not fine-tuned", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(case, env, capsys, monkeypatch):
    _, argv, expected, fault = case
    args = argv(env)
    if fault:
        fault(env, monkeypatch)
    code = main(args)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert not env["results"].exists(), "bad input must write nothing"
    check(f"bad:{case[0]}", lines[0], 2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (the simulated case covers it)")
def test_really_read_only_results_folder(env, capsys):
    env["results"].mkdir()
    env["results"].chmod(0o555)
    try:
        assert main(_run_args(env)) == 2
    finally:
        env["results"].chmod(0o755)
    assert "is not writable" in capsys.readouterr().err
    assert not list(env["results"].iterdir())


# -- numbers in --set and suite files --------------------------------------------------------------

@pytest.mark.parametrize("text", ["3e-5", "3.0e-5", "3E-5", "+3e-05", "0.00003"])
def test_e_notation_is_a_number(text):
    suite = apply_overrides(Suite(name="s", recipe={"lr": 1.0}), [f"recipe.lr={text}"])
    assert suite.recipe["lr"] == pytest.approx(3e-5) and isinstance(suite.recipe["lr"], float)


def test_e_notation_spellings_make_one_cell_key(env):
    from benchmarks.runner import expand

    base = load_suite(path=env["suite"])
    keys = {tuple(c.key for c in expand(apply_overrides(base, [f"recipe.lr={t}"]))) for t in ("3e-5", "3.0e-5")}
    assert len(keys) == 1


def test_e_notation_in_a_suite_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nrecipe: {lr: 2e-5, label: adam-1e-2, n: 1e3}\n")
    recipe = load_suite(path=path).recipe
    assert recipe == {"lr": 2e-5, "label": "adam-1e-2", "n": 1000.0}


# -- report --out ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where,expected", [("folder", "is a folder"), ("under-file", "is a file, not a folder")])
def test_report_out_bad_path_writes_nothing(env, capsys, where, expected):
    env["results"].mkdir()
    out = env["tmp"] / "empty" if where == "folder" else Path(env["file"]) / "report.md"
    before = sorted(p.name for p in env["tmp"].iterdir())
    assert main(_report(env, out)) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    check(f"bad:report-out-{where}", lines[0], 2)
    assert sorted(p.name for p in env["tmp"].iterdir()) == before  # no plots folder, no report
    assert not list((env["tmp"] / "empty").iterdir())


# -- faults during a run ---------------------------------------------------------------------------

def _fake_suite_file(tmp_path: Path, ids: range) -> Path:
    path = tmp_path / "fake.yaml"
    rows = ", ".join(f"{{id: {i}, do: ok}}" for i in ids)
    path.write_text(f"name: fake\nkind: fake-grid\nmodel: fake/model\nrows: [{rows}]\n")
    return path


def test_oserror_writing_a_record_stops_the_run_cleanly(tmp_path, fake_kind, monkeypatch, capsys):
    """The second record cannot be written (disk full): one line, exit 1, the first record intact, no debris."""
    suite = _fake_suite_file(tmp_path, range(1, 4))
    results = tmp_path / "results"
    real_write = store.write_record
    written = []

    def write_then_fill(results_dir, record):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(record["key"])
        return real_write(results_dir, record)

    monkeypatch.setattr(store, "write_record", write_then_fill)
    code = main(["run", "--suite-file", str(suite), "--results", str(results), "--no-progress", "--no-report"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("error: could not write the record of fake 2"), lines
    assert "No space left on device" in lines[0]
    check("bad:record-write-fails", lines[0], 1)
    files = sorted(p.name for p in paths.records_dir(results).iterdir())
    assert files == [f"{written[0]}.json"]  # no temporary file, no claim left behind
    assert store.read_record(paths.record_path(results, written[0]))["status"] == "ok"
    assert FakeGrid.runs == {1: 1, 2: 1}  # the run stopped at the fault

    monkeypatch.setattr(store, "write_record", real_write)
    assert main(["run", "--suite-file", str(suite), "--results", str(results), "--no-progress", "--no-report"]) == 0
    assert FakeGrid.runs == {1: 1, 2: 2, 3: 1}


@pytest.mark.parametrize("metrics", ["missing", None, [], "0.9"])
def test_ok_record_without_metrics_mapping_is_not_done(tmp_path, fake_kind, capsys, metrics):
    from benchmarks.runner import expand, run_suite

    suite = fake_kind([(1, "ok"), (2, "ok")])
    results = tmp_path / "results"
    run_suite(suite, results, None, progress=False)
    cell = next(c for c in expand(suite) if c.config["id"] == 2)
    path = paths.record_path(results, cell.key)
    record = json.loads(path.read_text())
    if metrics == "missing":
        del record["metrics"]
    else:
        record["metrics"] = metrics
    path.write_text(json.dumps(record))
    assert store.record_state(results, cell.key) == store.CORRUPT
    reason = store.load_records(results).corrupt[path.name]
    check(f"bad:ok-record-metrics-{metrics if isinstance(metrics, str) else type(metrics).__name__}", reason, 0)
    capsys.readouterr()
    summary = run_suite(suite, results, None, progress=False)
    assert summary.ran == 1 and summary.corrupt == [path.name]
    assert isinstance(store.read_record(path)["metrics"], dict)


def test_report_marks_an_ok_record_without_metrics_and_does_not_crash(tmp_path, tiny_bert, tiny_mirror, capsys):
    suite = tmp_path / "one.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="one", tasks="[sst2]", rows="[dense]"))
    results = tmp_path / "results"
    assert main(["run", "--suite-file", str(suite), "--data-dir", str(tiny_mirror), "--results", str(results),
                 "--no-progress", "--no-report"]) == 0
    path = next(paths.records_dir(results).glob("*.json"))
    record = json.loads(path.read_text())
    record["metrics"] = "lost"
    path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["report", "--suite-file", str(suite), "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    assert f"warning: 1 unreadable record(s) left out: {path.name}" in err
    check("bad:report-ok-record-without-metrics", err.strip(), 0)
    assert "| full-base" in out or "full-base" in out


# -- plug-ins --------------------------------------------------------------------------------------

@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    """A distribution whose ``prunebench.methods`` entry point names a module that fails to import."""
    site = tmp_path / "site"
    info = site / "pb_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pb-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[prunebench.methods]\nbroken-method = pb_broken_module\n")
    (site / "pb_broken_module.py").write_text("import a_module_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(site))
    METHODS.reload_entry_points()
    yield
    METHODS.reload_entry_points()
    sys.modules.pop("pb_broken_module", None)


def test_broken_plugin_is_one_warning_and_other_commands_work(broken_plugin, capsys):
    assert main(["list", "methods"]) == 0
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: plug-in method 'broken-method'"), lines
    assert "pb-broken" in lines[0] and "ModuleNotFoundError" in lines[0] and "uninstall" in lines[0]
    check("bad:plugin-broken-warning", lines[0], 0)
    assert "global" in out and "broken-method" not in out
    assert main(["list", "tasks"]) == 0 and "sst2" in capsys.readouterr().out


def test_suite_that_needs_the_broken_plugin_exits_2(broken_plugin, env, capsys):
    code = main(_run_args(env, "--set", "rows=[{method: broken-method, sparsity: 0.5}]"))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert lines[0].startswith("warning: plug-in method 'broken-method'")
    assert len(lines) == 2 and lines[1].startswith("error: plug-in method 'broken-method'"), lines
    check("bad:plugin-broken-needed", lines[1], 2)
    assert not env["results"].exists()


# -- two runs on one results folder ----------------------------------------------------------------

class _OneProcess:
    is_main_process = True
    num_processes = 1

    def wait_for_everyone(self):
        pass


class _SlowGrid(FakeGrid):
    def run(self, cell, ctx):
        time.sleep(0.05)
        return super().run(cell, ctx)


def test_two_concurrent_runner_calls_compute_each_cell_once(tmp_path, fake_kind):
    from benchmarks.registry import KINDS
    from benchmarks.runner import run_suite

    KINDS.unregister("fake-grid")
    KINDS.register("fake-grid", _SlowGrid)
    suite = fake_kind([(i, "ok") for i in range(12)])
    results = tmp_path / "results"
    summaries = []

    def one_run():
        summaries.append(run_suite(suite, results, None, progress=False, accelerator=_OneProcess()))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert FakeGrid.runs == {i: 1 for i in range(12)}
    assert sum(s.ran for s in summaries) == 12
    assert len(store.load_records(results).records) == 12
    assert not list(paths.records_dir(results).glob("*.claim"))


def test_claim_of_a_live_process_is_respected_and_a_dead_ones_taken_over(tmp_path, fake_kind, capsys):
    from benchmarks.runner import expand, run_suite

    suite = fake_kind([(1, "ok"), (2, "ok")])
    results = tmp_path / "results"
    cell = next(c for c in expand(suite) if c.config["id"] == 2)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claim = store.claim_path(results, cell.key)
        claim.parent.mkdir(parents=True)
        claim.write_text(json.dumps({"pid": other.pid, "host": os.uname().nodename, "started": "now"}))
        first = run_suite(suite, results, None, progress=False, accelerator=_OneProcess())
        assert first.ran == 1 and [label for label, _ in first.claimed] == ["fake 2"]
        assert first.exit_code == 3  # not every cell has a record: not 0 (--no-wait; the CLI waits by default)
        err = capsys.readouterr().err
        assert "1 cell(s) left to other runs that claim them and have no record yet: fake 2" in err
        check("bad:cell-claimed-by-live-run", err.strip(), 3)
        assert claim.exists()  # not ours: left alone
    finally:
        other.kill()
        other.wait()
    second = run_suite(suite, results, None, progress=False, accelerator=_OneProcess())  # its process is gone
    assert second.ran == 1 and not second.claimed and not claim.exists()
    assert FakeGrid.runs == {1: 1, 2: 1}


def test_claim_file_is_exclusive(tmp_path):
    assert store.claim_cell(tmp_path, "k")
    owner = store.claimed_by(tmp_path, "k")
    assert owner["pid"] == os.getpid() and owner["host"]
    assert not store.claim_cell(tmp_path, "k")  # held (by this live process)
    store.release_cell(tmp_path, "k")
    assert store.claimed_by(tmp_path, "k") is None
    torn = store.claim_path(tmp_path, "j")
    torn.write_text("{")  # torn claim (a crash between create and write, where there are no hard links)
    assert not store.claim_cell(tmp_path, "j")  # young: it may be being written
    old = time.time() - 3600
    os.utime(torn, (old, old))
    assert store.claim_cell(tmp_path, "j")  # old: a crash's leftover
    store.release_cell(tmp_path, "j")


WORKER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from benchmarks.kinds import CellOutcome
    from benchmarks.config import Cell, Suite
    from benchmarks.registry import KINDS
    from benchmarks.runner import run_suite

    log = Path(sys.argv[2])

    class Grid:
        def validate(self, suite):
            pass

        def cells(self, suite):
            return [Cell({"kind": "grid", "id": i}, f"cell {i}") for i in range(int(sys.argv[3]))]

        def run(self, cell, ctx):
            with open(log, "a") as fh:  # O_APPEND: one line per computed cell, from either process
                fh.write(f"{cell.config['id']}\\n")
            time.sleep(0.1)
            return CellOutcome(metrics={"score": 1.0})

    class One:
        is_main_process, num_processes = True, 1

        def wait_for_everyone(self):
            pass

    KINDS.register("grid", Grid)
    while not Path(sys.argv[4]).exists():  # start together
        time.sleep(0.01)
    run_suite(Suite(name="g", kind="grid", model="fake/model"), Path(sys.argv[1]), None, progress=False,
              accelerator=One())
''')


def test_two_processes_on_one_results_folder_compute_each_cell_once(tmp_path):
    script, log, go = tmp_path / "worker.py", tmp_path / "computed.log", tmp_path / "go"
    script.write_text(WORKER)
    cells = 10
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "results"), str(log), str(cells),
                                 str(go)], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)
    go.write_text("")
    outs = [w.communicate(timeout=900)[1] for w in workers]  # generous: two torch imports on a loaded machine
    assert [w.returncode for w in workers] == [0, 0], outs
    computed = sorted(int(x) for x in log.read_text().split())
    assert computed == list(range(cells)), computed  # every cell once, none twice
    assert len(store.load_records(tmp_path / "results").records) == cells


# -- recipes and method specs: what is accepted, and how --set and scales combine ------------------

def test_set_recipe_wins_over_the_scale_and_changes_the_key():
    """The README's `--set recipe.lr=3e-5` on a scale that sets lr: the explicit value is what runs."""
    from benchmarks.runner import expand

    base = apply_overrides(load_suite("bert-lowsparsity"), ["scale=cpu", "tasks=[sst2]", "rows=[dense]",
                                                            "model=minilm-l6"])
    assert base.resolved_recipe()["lr"] == pytest.approx(1e-4)
    changed = apply_overrides(base, ["recipe.lr=3e-5"])
    assert changed.resolved_recipe()["lr"] == pytest.approx(3e-5)
    assert all(scale.get("lr", 3e-5) == pytest.approx(3e-5) for scale in changed.scales.values())
    assert [c.key for c in expand(base)] != [c.key for c in expand(changed)]
    # --set scales.S.X after it changes that scale only
    again = apply_overrides(changed, ["scales.cpu.lr=5e-5"])
    assert again.resolved_recipe()["lr"] == pytest.approx(5e-5) and again.recipe["lr"] == pytest.approx(3e-5)


def test_typed_recipe_reads_defaults_and_given_values():
    from benchmarks.recipes import GlueRecipe, MlmRecipe

    glue = GlueRecipe.from_mapping({"lr": 1e-4, "epochs": 2, "mlm_head_lr": 1.0}, ignore={"mlm_head_lr"})
    assert (glue.lr, glue.epochs, glue.batch_size, glue.train_limit) == (1e-4, 2, 32, None)
    assert MlmRecipe.coerce({"mlm_eval_blocks": 8, "lr": 1e-4, "protocol": "zeroshot"}).protocol == "zeroshot"


def test_method_spec_labels_and_nominal_sparsity():
    """Rows take their label and nominal overall sparsity from the method's spec; options tell rows apart."""
    from benchmarks.kinds.prune_finetune import Row

    half, overall = Row("lower", 0.4, ()), Row("lower", 0.4, (("global_target", True),))
    assert (half.label, half.nominal) == ("lower-0.4", pytest.approx(0.2))
    assert (overall.label, overall.nominal) == ("lower-0.4-overall", pytest.approx(0.4))
    mixed = Row("mixed", None, (("lower", 0.8), ("upper", 0.6)))
    assert (mixed.label, mixed.nominal) == ("upper-0.6-lower-0.8", pytest.approx(0.7))
    assert Row("global", 0.5, (("pattern", "2:4"),)).nominal == pytest.approx(0.5)


def test_reports_and_runner_name_no_method():
    """The runner, the suite kinds and the leaderboard read method specs, never a built-in method's name."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "benchmarks" / "runner.py", root / "benchmarks" / "kinds" / "prune_finetune.py",
             root / "reports" / "leaderboard.py", root / "reports" / "tables.py"]
    for path in files:
        code = path.read_text()
        for literal in ('"mixed"', '"upper"', '"lower"', '"global_target"', "'mixed'", "'upper'", "'lower'"):
            assert literal not in code, f"{path.name} names {literal}"


def test_record_carries_the_spec_facts_reports_read(env, capsys):
    """A run writes the row's nominal sparsity (from the method's spec) into the record's notes."""
    assert main(_run_args(env, "--set", "rows=[{method: lower, sparsity: 0.4}]", "--set", "tasks=[sst2]")) == 0
    [record] = store.load_records(env["results"]).records.values()
    assert record["label"] == "lower-0.4 sst2 seed=0" and record["config"]["label"] == "lower-0.4"
    assert record["notes"]["nominal_sparsity"] == pytest.approx(0.2)


def test_plugin_task_without_a_recipe_type_reads_the_mapping():
    """A task that declares no recipe family gets the recipe mapping, and keys only it knows are allowed."""
    from benchmarks.kinds.prune_finetune import cell_recipe, check_recipes
    from benchmarks.registry import TASKS

    class Plain:
        version, headline, higher_is_better = "1", "acc", True

    TASKS.register("plain-task", Plain)
    try:
        suite = Suite(name="p", tasks=("plain-task",), rows=("dense",), recipe={"my_knob": 3, "lr": 1e-3})
        check_recipes(suite)  # my_knob is the plug-in's business; lr is still checked by the GLUE family
        with pytest.raises(Exception, match="recipe.lr"):
            check_recipes(Suite(name="p", tasks=("plain-task",), recipe={"lr": "fast"}))
        assert cell_recipe(Plain(), dict(suite.recipe), {"protocol": "finetune", "pooling": "mean",
                                                         "pruned_as": None}, "x") == {"my_knob": 3, "lr": 1e-3}
    finally:
        TASKS.unregister("plain-task")
