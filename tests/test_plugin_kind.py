"""A suite kind and its report added by a real third-party distribution (entry-point groups
``prunebench.kinds`` and ``prunebench.reports``): it runs a suite and `python -m benchmarks report`
renders it, with no edit to the project. Installed like the method plug-in in tests/test_plugins.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN_MODULE = '''
"""Word lengths: a suite kind with no model, and its report."""
from benchmarks.kinds.base import CellOutcome
from benchmarks.config import Cell
from benchmarks.errors import UserError
from benchmarks.registry import register_kind, register_renderer


@register_kind("word-lengths")
class WordLengths:
    """One cell per word of options.words: its length in letters."""

    def validate(self, suite):
        if not suite.options.get("words"):
            raise UserError(f"suite {suite.name!r}: give options.words, e.g. options: {{words: [a, bb]}}")

    def cells(self, suite):
        self.validate(suite)
        return [Cell({"kind": "word-lengths", "word": w, "seed": s}, f"{w} seed={s}")
                for w in suite.options["words"] for s in suite.seeds]

    def run(self, cell, ctx):
        return CellOutcome(metrics={"letters": len(cell.config["word"])})


@register_renderer("word-lengths")
def render_word_lengths(suite, frame, fmt, out=None):
    """A list of words and their lengths (missing cells say so)."""
    records = frame.attrs["records"]
    lines = [f"# {suite.name}: word lengths"]
    for cell in frame.attrs["cells"]:
        record = records.get(cell.key)
        lines.append(f"- {cell.label}: {record['metrics']['letters'] if record else 'missing'}")
    text = "\\n".join(lines) + "\\n"
    return text if fmt == "md" else "<!DOCTYPE html><title>word lengths</title><pre>" + text + "</pre>\\n"
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "prunebench-word-lengths"
version = "0.0.1"

[project.entry-points."prunebench.kinds"]
word-lengths = "pb_word_lengths"

[project.entry-points."prunebench.reports"]
word-lengths = "pb_word_lengths:render_word_lengths"

[tool.setuptools]
py-modules = ["pb_word_lengths"]
'''

SUITE = '''
name: words
description: a plug-in suite kind
kind: word-lengths
model: lenet-300-100
seeds: [0]
options: {words: [prune, bench, leaderboard]}
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """Build and install the plug-in distribution into a private folder (put on PYTHONPATH by the commands)."""
    tmp_path = tmp_path_factory.mktemp("kind-plugin")
    src, site = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    (src / "pb_word_lengths.py").write_text(PLUGIN_MODULE)
    (src / "pyproject.toml").write_text(PYPROJECT)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(src)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"could not build the plug-in distribution: {done.stderr[-2000:]}")
    assert "prunebench.reports" in next(site.glob("prunebench_word_lengths-*.dist-info/entry_points.txt")).read_text()
    return site


def _benchmarks(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)


def test_plugin_kind_runs_and_its_renderer_reports(plugin_site, tmp_path):
    suite, results = tmp_path / "words.yaml", tmp_path / "results"
    suite.write_text(SUITE)
    listed = _benchmarks(plugin_site, "list", "kinds")
    assert listed.returncode == 0 and "word-lengths" in listed.stdout
    run = _benchmarks(plugin_site, "run", "--suite-file", str(suite), "--results", str(results), "--no-progress",
                      "--no-report")
    assert run.returncode == 0, run.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert sorted(r["metrics"]["letters"] for r in records) == [5, 5, 11]
    report = _benchmarks(plugin_site, "report", "--suite-file", str(suite), "--results", str(results))
    assert report.returncode == 0, report.stderr[-2000:]
    assert report.stdout.splitlines()[:4] == ["# words: word lengths", "- prune seed=0: 5", "- bench seed=0: 5",
                                              "- leaderboard seed=0: 11"]
    page = tmp_path / "words.html"
    html = _benchmarks(plugin_site, "report", "--suite-file", str(suite), "--results", str(results),
                       "--format", "html", "--out", str(page))
    assert html.returncode == 0 and "<pre># words: word lengths" in page.read_text()


def test_report_of_an_unknown_kind_is_one_line(plugin_site, tmp_path):
    """A suite whose kind no package provides: `report` says so in one line (exit status 2)."""
    suite = tmp_path / "other.yaml"
    suite.write_text(SUITE.replace("kind: word-lengths", "kind: no-such-kind"))
    report = _benchmarks(plugin_site, "report", "--suite-file", str(suite), "--results", str(tmp_path))
    assert report.returncode == 2 and report.stderr.count("\n") == 1
    assert report.stderr.startswith("error: unknown suite kind 'no-such-kind'")
