"""Code identity (benchmarks/identity.py): built-in methods match tests/reference/code_versions.json, an edited
method fails until its version is bumped, and a plug-in edited between two runs makes its cells stale."""

from __future__ import annotations

import dataclasses
import inspect
import json
import textwrap
from pathlib import Path

import pytest
from conftest import tiny_suite_yaml
from errors_doc import check

from benchmarks.cli import main
from benchmarks.devtools import code_versions
from benchmarks.identity import identity, key_fields, normalised_source, stale_reasons
from benchmarks.registry import METHODS


@pytest.mark.parametrize("name", code_versions.builtin_methods())
def test_builtin_method_source_matches_its_committed_version(name):
    message = code_versions.problem(name, code_versions.read_table())
    assert message is None, message


def test_the_table_names_only_registered_methods():
    assert sorted(code_versions.read_table()) == sorted(code_versions.builtin_methods())


def test_normalised_source_ignores_comments_docstrings_decorators_and_layout(tmp_path):
    first = "@dec(1)\ndef f(x):\n    '''Doc.'''\n    # why\n    return x +  1\n"
    second = "@dec(2)\ndef f(x):\n    return (x\n            + 1)  # other comment\n"
    assert normalised_source_of(tmp_path, first) == normalised_source_of(tmp_path, second)
    assert normalised_source_of(tmp_path, first) != normalised_source_of(tmp_path, first.replace("+  1", "+ 2"))


def normalised_source_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"m{abs(hash(text))}.py"
    path.write_text(text)
    namespace = {"dec": lambda _: (lambda fn: fn)}
    exec(compile(text, str(path), "exec"), namespace)
    return normalised_source(namespace["f"])


def _edited_global(tmp_path: Path):
    """A copy of the built-in ``global`` whose code differs (the rate it prunes at), as if edited in place."""
    import methods.magnitude as magnitude

    original = METHODS.get("global")
    source = textwrap.dedent(inspect.getsource(original))
    edited = source.replace("check_pattern_rate(sparsity,", "check_pattern_rate(sparsity * 0.5,")
    assert edited != source
    path = tmp_path / "magnitude_edited.py"
    path.write_text(edited)
    namespace = {**vars(magnitude), "register_method": lambda *a, **k: (lambda fn: fn)}
    exec(compile(edited, str(path), "exec"), namespace)
    fn = namespace[original.__name__]
    fn.__module__ = original.__module__  # a built-in, edited where it lives
    return original, fn


def test_editing_a_builtin_method_fails_until_its_version_is_bumped(tmp_path):
    table = code_versions.read_table()
    original, edited = _edited_global(tmp_path)
    meta = METHODS.meta("global")
    METHODS.unregister("global")
    try:
        METHODS.register("global", edited, **meta)
        message = code_versions.problem("global", table)
        assert message and "'global' source changed" in message and "version=2" in message
        assert code_versions.COMMAND in message
        with pytest.raises(ValueError, match="without a version bump: global"):
            code_versions.refreshed(table)
        assert key_fields(METHODS, "global") == {}  # version 1: the old key, so old records would count as done

        METHODS.unregister("global")
        METHODS.register("global", edited, **{**meta, "spec": dataclasses.replace(meta["spec"], version=2)})
        assert "version 2" in code_versions.problem("global", table)  # bumped: now the table must follow
        refreshed = code_versions.refreshed(table)
        assert refreshed["global"] == [2, identity(METHODS, "global")["source"]]
        assert code_versions.problem("global", refreshed) is None
        assert key_fields(METHODS, "global") == {"method_version": 2}  # new cells; old records are not reused
    finally:
        METHODS.unregister("global")
        METHODS.register("global", original, **meta)
    assert code_versions.problem("global", table) is None


def test_records_without_code_identity_are_not_stale():
    now = {"method": {"name": "global", "version": 1, "source": "abc"}}
    assert stale_reasons(None, now) == []
    assert stale_reasons({"method": {"name": "global", "version": 1, "source": "abc"}}, now) == []
    assert stale_reasons({"method": {"name": "global", "version": 1, "source": "old"}}, now) == [
        "method global source changed (old -> abc)"]


PLUGIN = '''
"""colnorm: |W_ij| times the norm of its column, per matrix (the issue's example plug-in)."""
from benchmarks.registry import register_method
from methods import exact_magnitude_masks, prunable_weights


@register_method("colnorm")
def colnorm(model, sparsity, generator=None, **options):
    """Per matrix, prune the lowest |W_ij| * ||W_:j||."""
    masks = {}
    for w in prunable_weights(model):
        scores = w.weight.detach().abs() * w.weight.detach().norm(dim=0, keepdim=True)
        masks.update(exact_magnitude_masks({w.name: scores}, sparsity))
    return masks
'''


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))]


def test_an_edited_plugin_makes_its_cells_stale(tmp_path, tiny_bert, tiny_mirror, capsys):
    """Edit a --plugin file between runs: the next run reruns its cell; --keep-stale keeps it, marked."""
    plugin = tmp_path / "colnorm.py"
    plugin.write_text(PLUGIN)
    suite = tmp_path / "colnorm.yaml"
    suite.write_text(tiny_suite_yaml(tiny_bert, name="colnorm", tasks="[sst2]",
                                     rows="[{method: colnorm, sparsity: [0.5]}]"))
    results = tmp_path / "results"
    args = ["run", "--plugin", str(plugin), "--suite-file", str(suite), "--data-dir", str(tiny_mirror),
            "--results", str(results), "--no-progress"]
    try:
        code, _, err = _run(args + ["--no-report"], capsys)
        assert code == 0, err
        assert "1 cells, 0 already done, 1 run" in err
        [first] = _records(results)
        assert first["config"]["method_plugin"] == "colnorm.py"  # a plug-in's origin joins its key
        assert first["provenance"]["plugins"] == [str(plugin)]
        code_then = first["provenance"]["code"]["method"]
        assert code_then["plugin"] == "colnorm.py" and code_then["version"] == 1

        plugin.write_text(PLUGIN.replace("norm(dim=0", "norm(dim=1"))  # the edit
        code, _, err = _run(args + ["--no-report"], capsys)
        assert code == 0, err
        [second] = _records(results)
        now = second["provenance"]["code"]["method"]["source"]
        assert now != code_then["source"] and second["key"] == first["key"]
        stale_line = next(line for line in err.splitlines() if "stale" in line)
        assert stale_line == (f"1 cell stale: method colnorm source changed ({code_then['source']} -> {now}); "
                              f"rerunning them (--keep-stale keeps them)")
        check("identity:stale-cells-rerun", stale_line, 0)
        assert "1 cells, 0 already done, 1 run" in err
        assert second["timings"]["started"] != first["timings"]["started"] or second != first

        plugin.write_text(PLUGIN.replace("norm(dim=0", "norm(p=1, dim=0"))  # edited again, kept this time
        code, out, err = _run(args + ["--keep-stale"], capsys)
        assert code == 0, err
        stale_line = next(line for line in err.splitlines() if "stale" in line)
        assert stale_line.startswith("1 cell stale: method colnorm source changed") and "kept (--keep-stale)" in err
        check("identity:stale-cells-kept", stale_line, 0)
        assert "1 cells, 1 already done, 0 run" in err
        [kept] = _records(results)
        assert kept["metrics"] == second["metrics"] and kept["stale"].startswith("method colnorm source changed")
        assert "stale: computed by other code" in out  # the board's footnote

        code, out, err = _run(args, capsys)  # without --keep-stale: rerun, and the mark is gone
        assert code == 0, err
        [fresh] = _records(results)
        assert "stale" not in fresh and "stale: computed" not in out
        assert "1 cells, 0 already done, 1 run" in err
    finally:
        METHODS.unregister("colnorm")
