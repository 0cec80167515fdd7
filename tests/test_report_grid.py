"""`report --results DIR` renders the grid the run saved there; `--plugin` loads a method from a file or module."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_suite_yaml
from errors_doc import check

from benchmarks.cli import main
from benchmarks.registry import METHODS

SET = ["--set", "tasks=[sst2]", "--set", "rows=[dense]"]  # the run's own flags: one cell


@pytest.fixture
def ran(tmp_path, tiny_bert, tiny_mirror, capsys):
    """A tiny suite run with --set flags (one dense SST-2 cell) into results/; yields (suite file, results)."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert))
    results = tmp_path / "results"
    code = main(["run", "--suite-file", str(suite), *SET, "--data-dir", str(tiny_mirror), "--results",
                 str(results), "--no-progress", "--no-report"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    return suite, results


def _report(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["report", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_report_with_only_results_renders_the_saved_grid(ran, capsys):
    _, results = ran
    code, out, err = _report(["--results", str(results)], capsys)
    assert code == 0, err
    assert "1 cells: 1 ok" in out  # the run's one cell, not the suite file's six
    assert "full-base" in out
    code, again, _ = _report(["--suite", "tiny", "--results", str(results)], capsys)  # --suite NAME picks it
    assert code == 0 and again == out


def test_report_flags_naming_a_grid_the_folder_lacks_are_bad_input(ran, capsys):
    suite, results = ran
    code, out, err = _report(["--suite-file", str(suite), "--results", str(results)], capsys)  # without the --set
    line = _one_error(code, err)
    assert "holds no grid for suite 'tiny' as these flags give it" in line and not out
    check("identity:report-flags-name-a-grid-not-held", line, 2)
    code, out, err = _report(["--suite-file", str(suite), *SET, "--results", str(results)], capsys)
    assert code == 0 and "1 cells: 1 ok" in out  # the run's own flags find it


def test_report_with_several_grids_names_them_and_how_to_pick(ran, tiny_mirror, capsys):
    suite, results = ran
    assert main(["run", "--suite-file", str(suite), *SET, "--set", "name=other", "--data-dir", str(tiny_mirror),
                 "--results", str(results), "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    code, _, err = _report(["--results", str(results)], capsys)
    line = _one_error(code, err)
    assert "holds 2 grids: other (1 cells" in line and "tiny (1 cells" in line and "--suite NAME" in line
    check("identity:report-several-grids", line, 2)
    code, out, err = _report(["--suite", "other", "--results", str(results)], capsys)
    assert code == 0, err
    assert "other" in out


def test_report_of_a_folder_without_grids_needs_the_suite(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _report(["--results", str(tmp_path / "empty")], capsys)
    line = _one_error(code, err)
    assert "holds no saved grid" in line
    check("identity:report-no-saved-grid", line, 2)


PLUGIN = '''
from benchmarks.registry import register_method
from methods import exact_magnitude_masks, prunable_weights


@register_method("rownorm")
def rownorm(model, sparsity, generator=None, **options):
    {doc}
    return exact_magnitude_masks({{w.name: w.weight for w in prunable_weights(model)}}, sparsity)
'''


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "rownorm.py"
    path.write_text(PLUGIN.format(doc='"""Prune the smallest magnitudes (a plug-in for the tests)."""'))
    yield path
    METHODS.unregister("rownorm")


def test_plugin_file_lists_its_method(plugin_file, capsys):
    assert main(["list", "methods", "--plugin", str(plugin_file)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("rownorm "))
    assert line.split(None, 1)[1] == "Prune the smallest magnitudes (a plug-in for the tests)."


def test_plugin_module_on_the_path_lists_its_method(plugin_file, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(plugin_file.parent))
    try:
        assert main(["list", "methods", "--plugin", "rownorm"]) == 0
        assert any(line.startswith("rownorm ") for line in capsys.readouterr().out.splitlines())
    finally:
        import sys

        sys.modules.pop("rownorm", None)


def test_plugin_file_runs_end_to_end_and_is_recorded(plugin_file, tmp_path, tiny_bert, tiny_mirror, capsys):
    suite = tmp_path / "p.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="p", tasks="[sst2]", rows="[{method: rownorm, sparsity: [0.5]}]"))
    results = tmp_path / "results"
    code = main(["run", "--plugin", str(plugin_file), "--suite-file", str(suite), "--data-dir", str(tiny_mirror),
                 "--results", str(results), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "| rownorm-0.5 " in out
    [record] = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert record["provenance"]["plugins"] == [str(plugin_file)]
    assert record["provenance"]["code"]["method"]["plugin"] == "rownorm.py"
    code, board, err = _report(["--results", str(results)], capsys)  # reports need no plug-in: records only
    assert code == 0 and "| rownorm-0.5 " in board, err


PLUGIN_CASES = [
    ("plugin-missing-file", lambda t: str(t / "nope.py"), "no such file"),
    ("plugin-missing-module", lambda t: "no_such_plugin_module", "no module named 'no_such_plugin_module'"),
    ("plugin-fails-to-import", lambda t: _write(t / "broken.py", "raise RuntimeError('half-written')\n"),
     "failed to import (RuntimeError: half-written)"),
    ("method-without-docstring", lambda t: _write(t / "nodoc.py", PLUGIN.format(doc="")),
     "method 'rownorm' has no docstring; add a one-line docstring"),
]


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", PLUGIN_CASES, ids=[c[0] for c in PLUGIN_CASES])
def test_bad_plugin_is_one_line_and_exit_2(case, tmp_path, capsys):
    name, make, expected = case
    try:
        code = main(["list", "methods", "--plugin", make(tmp_path)])
    finally:
        METHODS.unregister("rownorm")
    line = _one_error(code, capsys.readouterr().err)
    assert expected in line, line
    check(f"identity:{name}", line, 2)
