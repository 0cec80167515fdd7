"""Leaderboard logic, paper values, plots, HTML validity and the report command, from small fixed records."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import html5lib
import pytest

from benchmarks import store
from benchmarks.cli import main
from benchmarks.config import Cell, canonical_json
from benchmarks.errors import UserError
from benchmarks.kinds.prune_finetune import Row
from reports import paper, plots, tables
from reports.leaderboard import Entry, build_board, is_matching, nominal_sparsity, task_columns
from reports.render import html_document, render_suite

MINILM = {"model": "minilm-l6", "weights_sha256": "0" * 64}
BERT = {"model": "google-bert/bert-base-uncased", "revision": "main"}


def cell(method: str, rate: float | None, task: str, seed: int = 0, options: dict | None = None,
         model: dict = MINILM) -> Cell:
    """A grid cell shaped like the prune-finetune analysis's."""
    options = options or {}
    row = Row(method, rate, tuple(sorted(options.items())))  # label and nominal sparsity from the method's spec
    label = row.label
    config = {"kind": "prune-finetune", "model": model, "method": method, "sparsity": rate, "options": options,
              "label": label, "task": task, "task_version": "1", "recipe": {}, "scale": "test", "seed": seed}
    return Cell(config, f"{label} {task} seed={seed}", row.info())


def rec(c: Cell, metrics: dict | None = None, status: str = "ok", error: str | None = None,
        notes: dict | None = None) -> dict:
    """A record for a cell (ok with metrics, or failed/skipped with an error)."""
    rate = nominal_sparsity(c)
    return {"key": c.key, "suite": "t", "label": c.label, "status": status, "error": error, "config": c.config,
            "config_canonical": canonical_json(c.config), "metrics": metrics or {}, "notes": notes or {},
            "sparsity": {"global_before": rate, "global_after": rate} if status == "ok" else {},
            "artifacts": {}, "timings": {"seconds": 1.0, "started": "2026-01-01T00:00:00+00:00"},
            "provenance": {"git_sha": "fixture", "versions": {}, "device": "cpu", "data": {}}}


def board(pairs: list[tuple[Cell, dict | None]], seeds=(0,), corrupt=None):
    """Build a board from (cell, record or None) pairs."""
    records = {c.key: r for c, r in pairs if r is not None}
    return build_board("t", [c for c, _ in pairs], records, corrupt, model="m", scale="test", seeds=list(seeds))


def entry(b, label: str, title: str) -> Entry:
    row = next(r for r in b.rows if r.label == label)
    return row.entries[next(c for c in b.columns if c.title == title)]


# -- layout ------------------------------------------------------------------------------------------

def test_rows_grouped_by_nominal_sparsity_dense_first():
    cells = [cell("upper", 0.6, "sst2"), cell("global", 0.3, "sst2"), cell("dense", None, "sst2"),
             cell("lower", 0.3, "sst2"), cell("mixed", None, "sst2", options={"upper": 0.6, "lower": 0.8})]
    b = board([(c, rec(c, {"accuracy": 0.8})) for c in cells])
    assert [(bucket, [r.label for r in rows]) for bucket, rows in b.buckets] == [
        (0.0, ["full-base"]), (0.15, ["lower-0.3"]), (0.3, ["upper-0.6", "full-0.3"]), (0.7, ["upper-0.6-lower-0.8"])]


def test_columns_follow_paper_order_and_mlm_fills_two_columns():
    cells = [cell("dense", None, t) for t in ("sst2", "mlm", "mrpc", "stsb")]
    b = board([(c, None) for c in cells])
    assert [c.title for c in b.columns] == ["MRPC", "STSB", "SST2", "MLM Accuracy", "MLM ppl."]
    assert task_columns("mlm") == {"MLM Accuracy": ("mlm_accuracy", True), "MLM ppl.": ("mlm_ppl", False)}


def test_task_columns_attribute_wins(monkeypatch):
    class Multi:
        headline, higher_is_better = "a", True
        columns = {"A": ("a", True), "B loss": ("b", False)}

    from benchmarks.registry import TASKS

    TASKS.names()  # load the built-ins first
    monkeypatch.setitem(TASKS._items, "reports-multi", Multi())
    assert task_columns("reports-multi") == {"A": ("a", True), "B loss": ("b", False)}


def test_unregistered_task_is_a_user_error():
    with pytest.raises(UserError, match="not registered"):
        task_columns("no-such-task")


def test_without_per_example_arrays_nothing_is_bold():
    """Old records (no arrays) render plain values: a best mean alone is not evidence (docs/statistics.md)."""
    pairs = []
    rows = [("dense", None, 0.5, 20.0), ("global", 0.3, 0.45, 30.0), ("random", 0.3, 0.30, 90.0)]
    for method, rate, acc, ppl in rows:
        c = cell(method, rate, "mlm")
        pairs.append((c, rec(c, {"mlm_accuracy": acc, "mlm_ppl": ppl})))
    b = board(pairs)
    assert not any(e.best or e.ci for r in b.rows for e in r.entries.values())
    md = tables.board_markdown(b)
    assert "**" not in md.split("Protocol:")[0] and "| 0.450 " in md and "[" not in md.split("\n\n")[3]


def test_missing_skipped_failed_cells_show_a_mark_and_a_reason_never_blank_or_zero():
    ok, failed, skipped, missing = (cell("global", 0.3, t) for t in ("sst2", "mrpc", "stsb", "qnli"))
    b = board([(ok, rec(ok, {"accuracy": 0.9})), (failed, rec(failed, status="failed", error="ValueError: boom")),
               (skipped, rec(skipped, status="skipped", error="no STS-B data")), (missing, None)])
    md = tables.board_markdown(b)
    row = next(line for line in md.splitlines() if line.startswith("| sparsity 0.3"))
    cells_text = [c.strip() for c in row.strip("|").split("|")]
    assert cells_text[2:6] == ["failed[1]", "skipped[2]", "missing[3]", "0.900"]
    assert "1. failed: ValueError: boom" in md and "2. skipped: no STS-B data" in md
    assert "3. missing: not run yet (no record)" in md
    html = tables.board_html(b)
    assert html.count('class="status ') == 3 and 'href="#fn-1"' in html and 'id="fn-3"' in html


def test_ok_record_without_the_metric_is_flagged_not_zero():
    c = cell("dense", None, "sst2")
    b = board([(c, rec(c, {"f1": 0.5}))])
    e = entry(b, "full-base", "SST2")
    assert e.status == "failed" and not e.values
    assert "metric 'accuracy' is missing" in b.footnotes[e.notes[0] - 1]


def test_corrupt_record_is_named():
    c = cell("dense", None, "sst2")
    b = board([(c, None)], corrupt={f"{c.key}.json": "unreadable record (JSONDecodeError)"})
    e = entry(b, "full-base", "SST2")
    assert e.status == "corrupt" and "unreadable" in tables.board_markdown(b)


# -- seeds -------------------------------------------------------------------------------------------

def test_mean_and_sample_std_over_seeds():
    pairs = [(c, rec(c, {"accuracy": v}))
             for c, v in ((cell("dense", None, "sst2", s), v) for s, v in ((0, 0.8), (1, 0.9)))]
    b = board(pairs, seeds=(0, 1))
    e = entry(b, "full-base", "SST2")
    assert e.mean == pytest.approx(0.85) and e.std == pytest.approx(0.0707107, rel=1e-5)
    assert "0.850 ± 0.071" in tables.board_markdown(b)


def test_matching_is_within_one_dense_std_in_the_metric_direction():
    dense = Entry("ok", [0.80, 0.82])  # mean 0.81, std 0.01414
    assert is_matching(Entry("ok", [0.796, 0.796]), dense, True)
    assert not is_matching(Entry("ok", [0.79, 0.79]), dense, True)
    assert is_matching(Entry("ok", [0.95, 0.95]), dense, True)  # better than dense matches too
    ppl = Entry("ok", [20.0, 22.0])  # mean 21, std 1.414
    assert is_matching(Entry("ok", [22.4]), ppl, False) and not is_matching(Entry("ok", [22.5]), ppl, False)
    assert not is_matching(Entry("ok", [0.81]), Entry("ok", [0.81]), True)  # one dense seed: no std, no claim
    assert not is_matching(Entry("partial", [0.81]), dense, True)


def test_matching_mark_in_table_and_partial_cells_not_ranked():
    pairs = []
    for method, rate, values in [("dense", None, [0.80, 0.82]), ("global", 0.1, [0.805, 0.80]),
                                 ("random", 0.1, [0.70, None])]:
        for seed, v in enumerate(values):
            c = cell(method, rate, "sst2", seed)
            pairs.append((c, rec(c, {"accuracy": v}) if v is not None else rec(c, status="failed", error="E: x")))
    b = board(pairs, seeds=(0, 1))
    assert entry(b, "full-0.1", "SST2").matching
    part = entry(b, "random-0.1", "SST2")
    assert part.status == "partial" and not part.best and not part.matching
    assert not entry(b, "full-0.1", "SST2").best  # one complete candidate in the bucket
    md = tables.board_markdown(b)
    assert "0.802 ± 0.004 ✓" in md and "mean over 1 of 2 seeds" in md and "failed: seed 1: E: x" in md


# -- notes-driven variants ---------------------------------------------------------------------------

def test_fitted_and_pretrained_mlm_heads_never_share_a_column():
    pre, fit = cell("dense", None, "mlm"), cell("global", 0.3, "mlm")
    b = board([(pre, rec(pre, {"mlm_accuracy": 0.5, "mlm_ppl": 20}, notes={"mlm_head": "pretrained"})),
               (fit, rec(fit, {"mlm_accuracy": 0.6, "mlm_ppl": 10}, notes={"mlm_head": "fitted"}))])
    titles = [c.title for c in b.columns]
    assert titles == ["MLM Accuracy", "MLM Accuracy (fitted head)", "MLM ppl.", "MLM ppl. (fitted head)"]
    assert entry(b, "full-0.3", "MLM Accuracy (fitted head)").values == [0.6]
    assert entry(b, "full-0.3", "MLM Accuracy").status == "na" and "| n/a[" in tables.board_markdown(b)
    assert any("head was fitted here" in f for f in b.footnotes)


def test_dev_split_qnli_is_flagged_in_its_header():
    c = cell("dense", None, "qnli")
    b = board([(c, rec(c, {"accuracy": 0.8}, notes={"data_split": "dev-split: trained on half of dev"}))])
    assert b.columns[0].title == "QNLI (dev split)"
    md = tables.board_markdown(b)
    assert "QNLI (dev split) · accuracy · finetune[1]" in md and "1. QNLI: dev-split" in md


# -- the paper's values ------------------------------------------------------------------------------

def test_paper_file_has_figs_6_and_7_as_printed():
    rows = paper.paper_rows()
    assert [sum(r["figure"] == f for r in rows) for f in (6, 7)] == [17, 15]
    fig6 = {r["label"]: r for r in rows if r["figure"] == 6}
    fig7 = {r["label"]: r for r in rows if r["figure"] == 7}
    assert fig6["full-base"] == {**fig7["full-base"], "figure": 6}  # the dense row is printed in both
    assert fig6["lower-0.95"][("mlm", "mlm_ppl")] == 47.630 and fig7["full-0.99"][("qnli", "accuracy")] == 0.505
    assert all(len(r) == 2 + len(paper.PAPER_COLUMNS) for r in rows)


def test_paper_values_inline_for_bert_base_with_difference():
    c = cell("global", 0.1, "mrpc", model=BERT)
    b = board([(c, rec(c, {"accuracy": 0.85}))])
    e = entry(b, "full-0.1", "MRPC")
    assert b.paper_inline and not b.paper_apart
    assert e.paper == 0.853 and e.diff == pytest.approx(-0.003)
    assert "0.850 · paper 0.853 (Δ -0.003)" in tables.board_markdown(b)


def test_paper_values_apart_for_other_models_and_never_ranked():
    c = cell("global", 0.1, "mrpc")
    b = board([(c, rec(c, {"accuracy": 0.85}))])
    assert not b.paper_inline and entry(b, "full-0.1", "MRPC").paper is None
    assert [r["label"] for r in b.paper_apart] == ["full-0.1"]
    md = tables.board_markdown(b)
    table, apart = md.split("## " + tables.APART_HEADING)
    assert "0.853" not in table and "| full-0.1 | Fig 6" in re.sub(r" +", " ", apart)


def test_fitted_head_gets_no_paper_difference():
    c = cell("global", 0.1, "mlm", model=BERT)
    b = board([(c, rec(c, {"mlm_accuracy": 0.5, "mlm_ppl": 20}, notes={"mlm_head": "fitted"}))])
    assert entry(b, "full-0.1", "MLM Accuracy (fitted head)").paper is None


# -- plots -------------------------------------------------------------------------------------------

def _plot_board():
    pairs = []
    for method, rate, v in [("dense", None, 0.9), ("global", 0.3, 0.85), ("global", 0.6, 0.8), ("random", 0.3, 0.7)]:
        for task in ("sst2", "mrpc"):
            c = cell(method, rate, task)
            pairs.append((c, rec(c, {"accuracy": v})))
    c = cell("random", 0.6, "sst2")
    pairs.append((c, None))
    return board(pairs)


def test_plot_series_one_line_per_method_starting_at_dense():
    lines, dense = plots.series(_plot_board(), _plot_board().columns[1])
    assert dense == (0.0, 0.9, None)
    assert {m: [p[:2] for p in pts] for m, pts in lines.items()} == {
        "global": [(0.0, 0.9), (0.3, 0.85), (0.6, 0.8)], "random": [(0.0, 0.9), (0.3, 0.7)]}


def test_plots_written_as_png_and_svg_deterministically(tmp_path):
    b = _plot_board()
    first = plots.write_plots(b, tmp_path / "a")
    second = plots.write_plots(b, tmp_path / "b")
    assert [p.png.name for p in first] == ["mrpc.png", "sst2.png"]
    for p, q in zip(first, second):
        assert p.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        ET.parse(p.svg)  # well-formed XML
        assert p.svg.read_bytes() == q.svg.read_bytes()


# -- HTML ---------------------------------------------------------------------------------------------

def html_errors(text: str) -> list:
    """html5lib's parse errors for a document (empty = conforming to the HTML5 parsing rules)."""
    parser = html5lib.HTMLParser(strict=False)
    parser.parse(text)
    return parser.errors


def test_html_document_is_self_contained_valid_html5_with_sortable_tables():
    from tabulate import tabulate

    fragment = "<h1>Table 1</h1>\n" + tabulate([["a", 0.5], ["b", 0.25]], headers=["f", "acc"], tablefmt="html")
    page = html_document("a <b> & c", fragment)  # as other suite kinds' renderers call it
    assert html_errors(page) == []
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and "data-sortable" in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "@import" not in page


# -- the report command on a real suite ---------------------------------------------------------------

SUITE = """name: report-test
description: two tasks, two rows, two seeds
kind: prune-finetune
model: bert-base-uncased
scale: full
seeds: [0, 1]
tasks: [mrpc, sst2]
rows:
  - dense
  - {method: global, sparsity: [0.3]}
recipe: {lr: 2.0e-5}
"""


@pytest.fixture()
def suite_results(tmp_path):
    """A suite file and a results folder holding a record for every cell but one (fabricated values)."""
    from benchmarks.config import load_suite
    from benchmarks.runner import expand

    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    cells = expand(load_suite(path=path))
    results = tmp_path / "results"
    for i, c in enumerate(cells[:-1]):
        store.write_record(results, rec(c, {"accuracy": 0.8 + 0.01 * i}))
    return path, results


def test_report_command_writes_markdown_with_plots(suite_results, tmp_path, capsys):
    path, results = suite_results
    out = tmp_path / "out" / "board.md"
    assert main(["report", "--suite-file", str(path), "--results", str(results), "--format", "md",
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "| dense " in text and "| full-0.3 " in text and "(Δ -0.052)" in text
    assert "0.860[1][2]" in text and "2. missing: seed 1: not run yet" in text  # the cell left without a record
    for link in re.findall(r"\]\((board_plots/[^)]+)\)", text):
        assert (out.parent / link).is_file()
    assert (out.parent / "board_plots" / "sst2.svg").is_file()


def test_report_command_writes_one_valid_self_contained_html_file(suite_results, tmp_path):
    path, results = suite_results
    out = tmp_path / "board.html"
    assert main(["report", "--suite-file", str(path), "--results", str(results), "--format", "html",
                 "--out", str(out)]) == 0
    page = out.read_text()
    assert html_errors(page) == []
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_rejects_an_unknown_format(suite_results):
    from benchmarks.config import load_suite

    path, results = suite_results
    with pytest.raises(UserError, match="format"):
        render_suite(load_suite(path=path), results, "pdf")


def test_report_on_a_missing_results_folder_exits_2(suite_results, tmp_path, capsys):
    path, _ = suite_results
    assert main(["report", "--suite-file", str(path), "--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_committed_example_is_valid_and_complete():
    """docs/examples/smoke: valid self-contained HTML, and every plot the Markdown links exists (PNG and SVG)."""
    folder = Path(__file__).resolve().parents[1] / "docs" / "examples" / "smoke"
    page = (folder / "smoke.html").read_text()
    assert html_errors(page) == [] and not re.search(r'(src|href)="(https?:)?//', page)
    links = re.findall(r"\]\((smoke_plots/[^)]+\.png)\)", (folder / "smoke.md").read_text())
    assert links and all((folder / link).is_file() and (folder / link).with_suffix(".svg").is_file() for link in links)
    assert page.count("data:image/png;base64,") == len(links)
