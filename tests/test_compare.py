"""The comparison section and boards that say what they measured (issue #20 items 4-5)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import store
from benchmarks.config import Cell
from reports import compare, tables
from reports.leaderboard import Column, Entry, build_board
from reports.render import load_predictions
from tests.golden import golden

ACC = Column("SST2", "sst2", "accuracy", True)
PPL = Column("MLM ppl.", "mlm", "mlm_ppl", False)


def _entry(values: np.ndarray) -> Entry:
    """A complete one-seed cell whose bootstrap replicates are given directly."""
    return Entry("ok", values=[float(values.mean())], metric="accuracy", expected=1, seeds=[0], reps=values)


def test_difference_is_row_minus_other_with_a_paired_interval():
    rng = np.random.default_rng(0)
    base = rng.normal(0.80, 0.01, 2000)
    better = _entry(base + 0.03 + rng.normal(0, 0.002, 2000))
    same = _entry(base + rng.normal(0, 0.002, 2000))
    dense = _entry(base)
    up = compare.difference(better, dense, ACC)
    assert up.diff == pytest.approx(0.03, abs=1e-3) and up.verdict == 1 and up.bounds[0] > 0
    assert up.text().endswith(compare.BETTER)
    flat = compare.difference(same, dense, ACC)
    assert flat.verdict == 0 and flat.bounds[0] < 0 < flat.bounds[1]
    # lower is better for perplexity: a higher value is worse
    worse = compare.difference(better, dense, PPL)
    assert worse.verdict == -1 and worse.text().endswith(compare.WORSE)


def test_an_incomplete_cell_has_no_difference():
    missing = Entry("missing", metric="accuracy", expected=1)
    assert compare.difference(missing, _entry(np.ones(10)), ACC).text() == "-"


def _golden_board(name: str = "zeroshot-arrays", **kwargs):
    loaded = store.load_records(golden.RECORDS / name)
    case = golden.CASES[name]
    return build_board(name, golden.case_cells(name), loaded.records, loaded.corrupt,
                       model=case["model"]["model"], scale="full", seeds=case["seeds"],
                       predictions=load_predictions(golden.RECORDS / name, loaded.records), **kwargs)


def test_every_row_is_held_against_dense_and_the_global_row_at_its_sparsity():
    board = _golden_board()
    view = compare.section_view(board)
    pairs = {(row[0], row[1]) for row in view["rows"]}
    assert ("random-0.1", "dense") in pairs and ("random-0.1", "full-0.1") in pairs
    assert ("upper-0.9", "full-0.45") in pairs  # upper-0.9 prunes 0.45 of all weights
    assert ("full-0.1", "dense") in pairs and not any(a == b for a, b in pairs)
    assert view["baselines"] == ["global"]
    assert view["headers"][:2] == ["row", "minus"] and len(view["headers"]) == 2 + len(board.columns)


def test_baselines_can_be_named_and_unknown_ones_are_ignored():
    board = _golden_board(baselines=("random", "wanda"))
    view = compare.section_view(board, board.baselines)
    assert view["baselines"] == ["random"]
    assert ("full-0.1", "random-0.1") in {(row[0], row[1]) for row in view["rows"]}


def test_board_names_metrics_labels_dense_and_counts_sparsity():
    board = _golden_board()
    text = tables.board_markdown(board)
    assert "STSB · Pearson r · zeroshot" in text and "MRPC · accuracy · zeroshot" in text
    assert "MLM ppl. (fitted head) · perplexity · zeroshot" in text
    assert "| dense[" in text and "the paper labels it full-base" in text
    assert tables.SPARSITY_NOTE in text
    assert "evaluated examples: MRPC 240 · STSB 200 · SST2 300" in text
    assert f"## {tables.COMPARE_HEADING}" in text
    assert text.index(tables.COMPARE_HEADING) < text.index("## The paper's claims")


def test_an_evaluation_subset_is_said_in_the_header():
    loaded = store.load_records(golden.RECORDS / "zeroshot-arrays")
    cells = [Cell({**c.config, "recipe": {**c.config["recipe"], "eval_limit": 200}}, c.label, c.info)
             for c in golden.case_cells("zeroshot-arrays")]
    board = build_board("x", cells, {}, loaded.corrupt)
    assert board.eval_limit == 200
    assert "at most 200 examples of each dev set" in tables.evaluation_text(board)


def test_evaluated_examples_count_the_arrays_the_intervals_resample():
    """An MNLI record counts matched + mismatched in eval_examples; the header gives the matched units shown."""
    from reports.leaderboard import evaluation_sizes
    mnli = Cell({"task": "mnli"}, "dense mnli seed=0", {})
    mlm = Cell({"task": "mlm"}, "dense mlm seed=0", {})
    records = {mnli.key: {"status": "ok", "metrics": {"eval_examples": 1000}},
               mlm.key: {"status": "ok", "metrics": {"eval_examples": 1227}}}
    arrays = {mnli.key: {"label": np.zeros(500), "mismatched_label": np.zeros(500)},
              mlm.key: {"label": np.zeros(200)}}  # MLM arrays count blocks, not positions
    assert evaluation_sizes([mnli, mlm], records, arrays) == {"mnli": [500], "mlm": [1227]}
    assert evaluation_sizes([mnli], records) == {"mnli": [1000]}  # no arrays: the record's own count


def test_claims_are_left_out_where_the_table_has_none_of_their_rows():
    loaded = store.load_records(golden.RECORDS / "zeroshot-arrays")
    keep = [c for c in golden.case_cells("zeroshot-arrays")  # no rows at 0.7 or above: no "toward chance"
            if c.config["method"] in ("dense", "random") and (c.config["sparsity"] or 0) < 0.7]
    board = build_board("mine", keep, loaded.records, loaded.corrupt,
                        predictions=load_predictions(golden.RECORDS / "zeroshot-arrays", loaded.records))
    text = tables.board_markdown(board)
    assert "## The paper's claims" not in text and tables.CLAIMS_SKIPPED in text
    html = tables.board_html(board)
    assert "id=\"claims\"" not in html and "id=\"compare\"" in html


def test_replaced_rows_replace_the_suite_description():
    from benchmarks.config import apply_overrides, load_suite
    from reports.leaderboard import describe_rows

    suite = load_suite("bert-oneshot")
    assert describe_rows(suite, []) == suite.description
    custom = apply_overrides(suite, ["rows=[dense, {method: global, sparsity: 0.5}]"])
    cells = [Cell({"label": "full-base"}, ""), Cell({"label": "full-0.5"}, "")]
    text = describe_rows(custom, cells)
    assert text.startswith("Suite bert-oneshot's grid with its rows replaced") and "full-0.5" in text
    assert "Wanda" not in text
