"""Layers you can draw (issue 13): a leaf registry, no import cycles, reports that load no torch.

The import graph comes from ``benchmarks.devtools.imports`` (ast, nothing imported): every import
statement is an edge, at module level or inside a function. Print it with
``python -m benchmarks.devtools.imports [--modules]``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.devtools import grids, imports

ROOT = Path(__file__).resolve().parents[1]
# What a report must never load: the model stack, the computations and the suite kinds that need it.
FORBIDDEN_THIRD_PARTY = ("torch", "transformers", "accelerate")
FORBIDDEN_PROJECT = ("benchmarks.bertcorr.statistics", "benchmarks.bertcorr.regen", "benchmarks.kinds",
                     "benchmarks.models", "benchmarks.protocols", "benchmarks.runner",
                     "benchmarks.tasks", "benchmarks.mnist", "methods")


def _third_party(module: str) -> set[str]:
    """Top-level names of every non-project module a project module imports (anywhere in it)."""
    tree = ast.parse(imports.module_files()[module].read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - set(imports.PACKAGES) - {"__future__"}


def _forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN_PROJECT)


def _reach(edges: dict[str, set[str]], starts: list[str]) -> set[str]:
    seen, todo = set(starts), list(starts)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle_between_project_modules():
    found = imports.cycles(imports.module_edges())
    assert not found, "import cycles (move the shared definitions down a layer):\n" + "\n".join(
        " -> ".join(cycle) for cycle in found)


def test_the_cycle_finder_finds_a_cycle_and_prints_it():
    """The walk sees function-level imports, so a lazy import that dodges a cycle still counts."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert imports.cycles(edges) == [["a", "b", "c", "a"]]
    tree_edges = imports.module_edges()
    assert "benchmarks.runner" in tree_edges["benchmarks.cli"]  # cli imports the runner inside functions only


@pytest.mark.parametrize("leaf", ["benchmarks.registry", "benchmarks.errors", "benchmarks.atomic",
                                  "benchmarks.bertcorr.fields", "benchmarks.bertcorr"])
def test_leaf_modules_import_nothing_of_the_project(leaf):
    assert imports.module_edges()[leaf] == set()
    assert _third_party(leaf) <= set(sys.stdlib_module_names)


def test_reports_reach_no_torch_and_no_suite_kind_through_their_imports():
    """Every module a report module imports, directly or not, is torch-free and no suite kind."""
    edges = imports.module_edges()
    reached = _reach(edges, [m for m in edges if m == "reports" or m.startswith("reports.")])
    kinds = sorted(m for m in reached if _forbidden(m))
    assert not kinds, f"reports import {kinds}"
    heavy = {m: sorted(_third_party(m) & set(FORBIDDEN_THIRD_PARTY)) for m in reached}
    assert not {m: h for m, h in heavy.items() if h}


def test_the_edges_script_prints_package_edges():
    out = subprocess.run([sys.executable, "-m", "benchmarks.devtools.imports"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    lines = out.splitlines()
    assert "methods -> benchmarks  (" in out and all(" -> " in line for line in lines)
    assert not any(line.startswith("reports -> benchmarks.kinds") for line in lines)
    cycles = subprocess.run([sys.executable, "-m", "benchmarks.devtools.imports", "--cycles"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert cycles.returncode == 0 and cycles.stdout == ""


# ------------------------------------------------------------------ reports render without torch

CHECK_MODULES = textwrap.dedent("""\
    import json, sys
    from benchmarks.cli import main
    jobs = json.loads(sys.argv[1])
    for args in jobs:
        assert main(["report", *args]) == 0, args
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {forbidden_top}
                            or any(m == p or m.startswith(p + ".") for p in {forbidden_project}))))
    """)


def _fixture_folders(tmp_path: Path) -> dict[str, list[str]]:
    """Records for the built-in suites that have none committed. bert-correlations: one record whose result
    is the committed MiniLM reference (tests/reference, made by benchmarks.bertcorr.regen), so no model runs here;
    mnist-ci: its grid only (same renderer as mnist-correlations, whose records are committed)."""
    from types import SimpleNamespace

    from benchmarks import store
    from benchmarks.bertcorr.fields import ARTIFACT
    from benchmarks.cli import build_parser, main, resolve_suite
    from benchmarks.kinds.base import CellOutcome
    from benchmarks.kinds.bert_correlations import NOTES, layer_means
    from benchmarks.runner import run_cell, save_grid

    bert = tmp_path / "bert-correlations"
    args = ["--suite", "bert-correlations", "--model", "minilm-l6"]
    suite = resolve_suite(build_parser().parse_args(["report", *args]))
    [cell] = save_grid(suite, bert)
    reference = json.loads((ROOT / "tests" / "reference" / "bert_correlations_minilm.json").read_text())

    class FromReference:  # the kind's run() with the committed result in place of analyze_model()
        def run(self, cell, ctx):
            result = reference["result"]
            per_layer = result["sparsity"]
            sparsity = {"global_after": sum(per_layer) / len(per_layer), "per_layer_after": per_layer}
            metrics = {"num_layers": result["num_layers"], **layer_means(result)}
            return CellOutcome(metrics, sparsity, notes=dict(NOTES), artifacts={ARTIFACT: result})

    ctx = SimpleNamespace(model_ref=SimpleNamespace(is_local=True), accelerator=None, results_dir=bert)
    record = run_cell(FromReference(), cell, ctx, suite)
    assert record["status"] == "ok", record.get("error")
    store.write_record(bert, record)
    mnist_ci = tmp_path / "mnist-ci"
    mnist_ci.mkdir()
    assert main(["report", "--suite", "mnist-ci", "--results", str(mnist_ci)]) == 0  # saves the grid
    return {str(bert): args, str(mnist_ci): ["--suite", "mnist-ci"]}


# One folder per renderer whose HTML (with every plot) the default run renders; the slow test renders all.
HTML_FOLDERS = ("docs/examples/smoke/results", "published/mnist-cpu/correlations", "published/mnist-cpu/init",
                "published/mnist-cpu/recipes")


def _check_reports_load_no_torch(tmp_path: Path, capsys, html_everywhere: bool) -> None:
    """`python -m benchmarks report` (its main, in a fresh process) over every committed results folder
    and a fixture folder for each other built-in suite: afterwards no torch, transformers, accelerate,
    BERT-correlation computation, suite kind or method is in sys.modules."""
    from benchmarks.config import builtin_suite_names

    folders = {str(ROOT / folder): args for folder, args in grids.COMMITTED.items()}
    fixtures = _fixture_folders(tmp_path)
    folders.update(fixtures)
    capsys.readouterr()
    suites = {args[args.index("--suite") + 1] for args in folders.values()}
    assert suites == set(builtin_suite_names()), "every built-in suite has a report rendered here"
    jobs = []
    for i, (folder, args) in enumerate(folders.items()):
        if html_everywhere or folder in fixtures or any(folder == str(ROOT / f) for f in HTML_FOLDERS):
            for fmt in ("md", "html"):  # with --out: plots written too
                jobs.append([*args, "--results", folder, "--format", fmt,
                             "--out", str(tmp_path / "out" / f"{i}.{fmt}")])
        else:
            jobs.append([*args, "--results", folder])  # Markdown to stdout: tables, no plots
    script = CHECK_MODULES.format(forbidden_top=set(FORBIDDEN_THIRD_PARTY), forbidden_project=FORBIDDEN_PROJECT)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(jobs)], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert all(Path(job[-1]).stat().st_size > 0 for job in jobs if "--out" in job)


def test_every_suite_report_renders_without_torch_or_suite_kinds(tmp_path, capsys):
    _check_reports_load_no_torch(tmp_path, capsys, html_everywhere=False)


@pytest.mark.slow
def test_every_report_in_both_formats_renders_without_torch(tmp_path, capsys):
    _check_reports_load_no_torch(tmp_path, capsys, html_everywhere=True)


def test_committed_grids_are_what_their_suites_expand_to():
    """Reports trust the saved grids: they must match the suites (rerun `python -m benchmarks.devtools.grids`)."""
    assert grids.main(["--check"]) == 0


def test_the_report_command_itself_imports_no_torch(tmp_path):
    """`python -m benchmarks report` as a user types it: -X importtime lists every module it imported."""
    out = tmp_path / "smoke.md"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "benchmarks", "report", "--suite", "smoke",
                           "--results", "docs/examples/smoke/results", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "reports.prune_finetune" in imported and "matplotlib" in imported  # the walk sees the report's imports
    heavy = sorted(m for m in imported if m.split(".")[0] in FORBIDDEN_THIRD_PARTY or _forbidden(m))
    assert heavy == []
