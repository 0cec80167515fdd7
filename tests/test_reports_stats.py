"""Leaderboard statistics: bootstrap intervals against a direct loop and scipy, paired tests against scipy,
collapse detection, the bold and ≈ rules, the claims checks, and old records without arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score, roc_auc_score

from benchmarks import store
from reports import claims, stats, tables
from reports.leaderboard import build_board
from tests.test_reports import cell, rec

ROOT = Path(__file__).resolve().parents[1]


def sample(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Small arrays for every metric, with ties in scores and gold values (as STS-B's 0.2 steps)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    gold = rng.integers(0, 11, n) / 2
    return {"pred": np.where(rng.uniform(size=n) < 0.7, label, 1 - label), "label": label,
            "score": np.round(label + rng.normal(0, 1, n), 1),
            "reg_pred": np.round(gold + rng.normal(0, 1.5, n), 1), "gold": gold,
            "mlm_tokens": rng.integers(5, 12, n), "mlm_nll": rng.uniform(5, 30, n),
            "drift": rng.uniform(0, 1, n)}


def direct(metric: str, s: dict, i: np.ndarray) -> float:
    """The metric on one resample, computed the plain way (sklearn / scipy / numpy)."""
    if metric == "accuracy":
        return float(np.mean(s["pred"][i] == s["label"][i]))
    if metric == "f1":
        return float(f1_score(s["label"][i], s["pred"][i], zero_division=0))
    if metric == "roc_auc":
        return float(roc_auc_score(s["label"][i], s["score"][i]))
    if metric == "pearson":
        return float(sps.pearsonr(s["reg_pred"][i], s["gold"][i])[0])
    if metric == "spearman":
        return float(sps.spearmanr(s["reg_pred"][i], s["gold"][i])[0])
    correct = np.minimum(s["mlm_tokens"], (s["mlm_tokens"] * s["drift"]).astype(int))
    if metric == "mlm_accuracy":
        return float(correct[i].sum() / s["mlm_tokens"][i].sum())
    if metric == "mlm_ppl":
        return float(np.exp(s["mlm_nll"][i].sum() / s["mlm_tokens"][i].sum()))
    return float(s["drift"][i].mean())


def arrays_for(metric: str, s: dict) -> dict:
    """The npz-style arrays (names as benchmarks.predictions) a metric reads."""
    correct = np.minimum(s["mlm_tokens"], (s["mlm_tokens"] * s["drift"]).astype(int))
    everything = {"pred": s["pred"], "label": s["label"], "score": s["score"], "drift": s["drift"],
                  "mlm_correct": correct, "mlm_tokens": s["mlm_tokens"], "mlm_nll": s["mlm_nll"]}
    if metric in ("pearson", "spearman"):
        everything.update(pred=s["reg_pred"], label=s["gold"])
    return stats.cell_arrays(everything, metric)


METRICS = ["accuracy", "f1", "roc_auc", "pearson", "spearman", "mlm_accuracy", "mlm_ppl", "drift_cosine"]


# -- bootstrap against a direct computation ----------------------------------------------------------

@pytest.mark.parametrize("metric", METRICS)
def test_replicates_equal_a_direct_loop_over_the_same_resamples(metric):
    s, n, b = sample(40), 40, 150
    idx = stats.unit_indices(n, b)
    expected = np.array([direct(metric, s, i) for i in idx])
    got = stats.replicates([arrays_for(metric, s)], metric, resamples=b)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert stats.value(arrays_for(metric, s), metric) == pytest.approx(direct(metric, s, np.arange(n)), abs=1e-12)


def test_seeds_are_resampled_too_and_share_the_unit_resample():
    seeds = [sample(30, seed) for seed in (1, 2, 3)]
    b = 100
    idx, pick = stats.unit_indices(30, b), stats.seed_indices(3, b)
    expected = [np.mean([direct("accuracy", seeds[j], idx[r]) for j in pick[r]]) for r in range(b)]
    got = stats.replicates([arrays_for("accuracy", s) for s in seeds], "accuracy", resamples=b)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_resamples_are_fixed_by_the_seed_and_shared_by_every_row():
    assert np.array_equal(stats.unit_indices(50, 10), np.random.default_rng([stats.SEED, 50]).integers(0, 50, (10, 50)))
    a, b = sample(50, 1), sample(50, 2)
    first = stats.replicates([arrays_for("accuracy", a)], "accuracy")
    assert np.array_equal(first, stats.replicates([arrays_for("accuracy", a)], "accuracy"))
    weights = stats.unit_weights(50)
    assert weights.shape == (50, stats.RESAMPLES) and np.all(weights.sum(axis=0) == 50)
    diff = (stats.replicates([arrays_for("accuracy", a)], "accuracy")
            - stats.replicates([arrays_for("accuracy", b)], "accuracy"))
    loop = [direct("accuracy", a, i) - direct("accuracy", b, i) for i in stats.unit_indices(50)]
    np.testing.assert_allclose(diff, loop, atol=1e-12)  # the paired bootstrap: same resample for both rows


def test_percentile_interval_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(7)
    correct = (rng.uniform(size=800) < 0.8).astype(float)
    ours = stats.interval(stats.replicates([{"pred": correct, "label": np.ones(800)}], "accuracy"))
    theirs = sps.bootstrap((correct,), np.mean, n_resamples=2000, method="percentile",
                           random_state=0).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.006)  # two Monte Carlo draws of one interval
    assert ours[0] < correct.mean() < ours[1]


def test_paired_interval_agrees_with_scipy_paired_bootstrap():
    rng = np.random.default_rng(8)
    label = rng.integers(0, 2, 600)
    a = np.where(rng.uniform(size=600) < 0.85, label, 1 - label)
    b = np.where(rng.uniform(size=600) < 0.80, a, 1 - a)
    reps = [stats.replicates([{"pred": p, "label": label}], "accuracy") for p in (a, b)]
    ours = stats.paired_interval(*reps)
    theirs = sps.bootstrap(((a == label).astype(float), (b == label).astype(float)), lambda x, y: np.mean(x - y),
                           paired=True, vectorized=False, n_resamples=2000, method="percentile",
                           random_state=0).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.006)
    with pytest.raises(ValueError, match="same resamples"):
        stats.paired_interval(reps[0], reps[1][:10])


# -- classical paired tests against scipy ----------------------------------------------------------

def test_paired_permutation_test_equals_scipy_exact_and_randomised():
    rng = np.random.default_rng(3)
    diff = rng.normal(0.3, 1, 12)
    exact = sps.permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    assert stats.paired_permutation_p(diff) == pytest.approx(exact, abs=1e-12)
    many = rng.normal(0.15, 1, 60)
    scipy_p = sps.permutation_test((many,), np.mean, permutation_type="samples", n_resamples=20000,
                                   alternative="two-sided", random_state=0).pvalue
    assert stats.paired_permutation_p(many, resamples=20000) == pytest.approx(scipy_p, abs=0.01)


def test_mcnemar_equals_the_exact_sign_flip_test_on_correctness():
    rng = np.random.default_rng(4)
    for _ in range(5):
        a, b = rng.uniform(size=13) < 0.7, rng.uniform(size=13) < 0.5
        d = a.astype(float) - b.astype(float)
        assert stats.mcnemar_p(a, b) == pytest.approx(stats.paired_permutation_p(d), rel=1e-9)
    assert stats.mcnemar_p(np.ones(5, bool), np.ones(5, bool)) == 1.0


# -- collapse --------------------------------------------------------------------------------------

def test_collapse_is_judged_against_the_label_distribution():
    label = np.arange(400) % 2
    # one class for 95% of the examples, ignoring the input: balanced accuracy's interval contains 0.5
    assert stats.label_blind([{"pred": np.r_[np.ones(380), np.zeros(20)], "label": label}], "accuracy")
    # one class for 89.5% of the examples but right on the rest: above chance, not collapsed (no fixed share)
    skewed_label = np.r_[np.ones(300), np.zeros(100)].astype(int)
    skewed = np.r_[np.ones(300), np.zeros(58), np.ones(42)].astype(int)
    assert np.mean(skewed == 1) == pytest.approx(0.855) and not stats.label_blind(
        [{"pred": skewed, "label": skewed_label}], "accuracy")
    # the same share given at random: collapsed
    shuffled = np.random.default_rng(0).permutation(skewed)
    assert stats.label_blind([{"pred": shuffled, "label": skewed_label}], "accuracy")
    assert stats.is_collapsed({"pred": np.full(100, 2.5), "label": label[:100] * 1.0}, "pearson")
    assert stats.label_blind([{"pred": np.random.default_rng(1).normal(size=400), "label": label * 1.0}], "pearson")
    assert not stats.label_blind([{"mlm_correct": np.zeros(4), "mlm_tokens": np.ones(4)}], "mlm_accuracy")
    assert stats.split_metric("mismatched_accuracy")[0] == "mismatched_"
    assert stats.split_metric("mlm_accuracy")[0] == "" and stats.split_metric("train_examples") is None


# -- the leaderboard rules -------------------------------------------------------------------------

def classifier(label: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """Predictions right on about a given share of examples."""
    right = np.random.default_rng(seed).uniform(size=len(label)) < accuracy
    return np.where(right, label, 1 - label)


def board_with_arrays(rows: list[tuple], task: str = "sst2", protocol: str = "zeroshot", label=None):
    """A board from (method, rate, pred) rows sharing 400 labelled examples; pred None: record without arrays."""
    label = np.arange(400) % 2 if label is None else label
    cells, records, preds = [], {}, {}
    for method, rate, pred in rows:
        c = cell(method, rate, task)
        c.config["protocol"] = protocol
        cells.append(c)
        metrics = {"accuracy": float(np.mean(pred == label))} if pred is not None else {"accuracy": 0.5}
        records[c.key] = rec(c, metrics)
        if pred is not None:
            preds[c.key] = {"pred": pred, "label": label}
    return build_board("t", cells, records, model="m", scale="test", seeds=[0], predictions=preds), label


def entry_of(b, label):
    return next(r for r in b.rows if r.label == label).entries[b.columns[0]]


def test_bold_only_when_the_paired_interval_to_the_runner_up_excludes_zero():
    label = np.arange(400) % 2
    dense = classifier(label, 0.9, 0)
    b, _ = board_with_arrays([("dense", None, dense), ("global", 0.3, classifier(label, 0.85, 1)),
                              ("random", 0.3, classifier(label, 0.60, 2)), ("global", 0.5, classifier(label, 0.7, 3)),
                              ("random", 0.5, classifier(label, 0.7, 4))])
    best = entry_of(b, "full-0.3")
    assert best.best and best.lead[0] == "random-0.3" and best.lead[1] > 0
    assert best.ci[0] < best.mean < best.ci[1]
    close = [entry_of(b, "full-0.5"), entry_of(b, "random-0.5")]
    # a best mean whose lead is within the noise is not bold
    assert close[0].mean != close[1].mean and not any(e.best for e in close)
    md = tables.board_markdown(b)
    assert f"**{best.mean:.3f}** [" in md and md.count("**0.") == 1


def test_a_collapsed_cell_is_never_bold_nor_matching():
    dense = np.ones(400, dtype=int)  # dense collapsed too: nothing can match it
    b, _ = board_with_arrays([("dense", None, dense), ("global", 0.3, np.r_[np.ones(390), np.zeros(10)].astype(int)),
                              ("random", 0.3, np.zeros(400, dtype=int))])
    e = entry_of(b, "full-0.3")
    assert e.collapsed and not e.best and not e.indistinct
    assert b.collapsed_columns == b.columns  # every row collapsed: the column says so
    assert not b.column_baselines[b.columns[0]].admissible  # dense collapsed: nothing to rank
    md = tables.board_markdown(b)
    assert "SST2 · accuracy · zeroshot ⊘ (not ranked)[" in md and "cannot tell the methods apart" in md
    assert "| 0.500 [0.450, 0.547] ⊘[1]" in md  # bounds with the value's digits


def test_collapse_flag_in_a_record_counts_without_arrays():
    c = cell("global", 0.3, "stsb")
    b = build_board("t", [c], {c.key: rec(c, {"pearson": 0.0, "spearman": 0.0, "constant_predictions": True})})
    assert entry_of(b, "full-0.3").collapsed and "⊘" in tables.board_markdown(b)


def test_equivalent_within_the_margin_is_told_apart_from_not_distinguishable():
    label = np.arange(400) % 2
    dense = classifier(label, 0.85, 0)
    twin = dense.copy()  # dense with 6 right and 6 wrong answers swapped: same accuracy, other examples
    swap = np.r_[np.flatnonzero(dense == label)[:6], np.flatnonzero(dense != label)[:6]]
    twin[swap] = 1 - twin[swap]
    b, _ = board_with_arrays([("dense", None, dense), ("global", 0.1, twin),
                              ("random", 0.1, classifier(label, 0.6, 5)), ("lower", 0.2, classifier(label, 0.83, 9)),
                              ("upper", 0.2, None)])
    same, worse, plain = entry_of(b, "full-0.1"), entry_of(b, "random-0.1"), entry_of(b, "upper-0.2")
    unclear = entry_of(b, "lower-0.2")
    margin = b.column_baselines[b.columns[0]].margin  # 0.2 of dense's gap above the majority class (0.5)
    assert margin == pytest.approx(0.2 * (dense == label).mean() - 0.1)
    assert same.equivalent and not same.indistinct and not worse.equivalent and not worse.indistinct
    assert unclear.indistinct and not unclear.equivalent  # contains 0, reaches past the margin
    assert plain.ci is None and not plain.indistinct and not plain.best  # no arrays: plain value
    md = tables.board_markdown(b)
    assert " ≈" in md.split("| full-0.1")[1].split("\n")[0] and " n.d." in md.split("| lower-0.2")[1].split("\n")[0]
    assert "| 0.500 " in md and "| trivial baseline | majority class 0.500" in md


def test_title_and_every_header_name_the_protocol():
    label = np.arange(400) % 2
    b, _ = board_with_arrays([("dense", None, classifier(label, 0.8, 0)), ("global", 0.3, classifier(label, 0.8, 1)),
                              ("random", 0.3, classifier(label, 0.7, 2))], protocol="probe")
    md, html = tables.board_markdown(b), tables.board_html(b)
    assert md.startswith("# t · probe protocol") and "SST2 · accuracy · probe" in md
    assert "checked on these records (probe protocol)" in md and "(probe protocol)</h2>" in html
    assert not b.paper_inline  # published values are fine-tuned: never beside another protocol's numbers


# -- claims ----------------------------------------------------------------------------------------

def test_equal_sparsity_matching_follows_the_paper_grouping():
    rows = [claims.ClaimRow(label, *claims.parse_label(label)) for label in
            ("full-base", "full-0.45", "full-0.495", "upper-0.9", "upper-0.95", "lower-0.95", "random-0.495")]
    by = {r.label: r for r in rows}
    assert claims.partner(by["upper-0.95"], [by["full-0.45"], by["full-0.495"]]).label == "full-0.495"
    assert claims.partner(by["upper-0.9"], [by["full-0.45"], by["full-0.495"]]).label == "full-0.45"
    pairs = [(a.label, b.label) for a, b, _ in claims.pairs("random-beats-upper", rows)]
    assert pairs == [("random-0.495", "upper-0.95")]
    assert claims.parse_label("upper-0.6-lower-0.8") == ("mixed", 0.7)


def test_universal_claims_need_every_part_and_existential_ones_one():
    rep, con, inc = claims.REPRODUCED, claims.CONTRADICTED, claims.INCONCLUSIVE
    assert claims.combine("every", [rep, rep, rep]) == rep
    assert claims.combine("every", [rep, rep, inc]) == inc  # no pooled majority: one open part keeps it open
    assert claims.combine("every", [rep, rep, con]) == con
    assert claims.combine("some", [con, con, rep]) == rep
    assert claims.combine("some", [con, con, inc]) == inc and claims.combine("some", [con, con]) == con
    assert claims.combine("every", []) == claims.UNTESTED


def test_every_claim_gets_a_verdict_on_the_paper_table():
    results = claims.check_paper()
    assert [r.key for r in results] == list(claims.CLAIMS)
    assert all(r.verdict != claims.UNTESTED and r.comparisons for r in results)
    assert all(c.bounds is None for r in results for c in r.comparisons)  # point values: no interval
    lower = next(r for r in results if r.key == "lower-beats-upper")
    at_045 = {c.column: c for c in lower.comparisons if c.first == "lower-0.9"}
    assert at_045["STSB"].effect == pytest.approx(0.876 - 0.096) and at_045["STSB"].verdict == claims.REPRODUCED


def test_claims_on_records_use_paired_intervals_and_skip_collapsed_cells():
    label = np.arange(400) % 2
    dense = classifier(label, 0.9, 0)
    b, _ = board_with_arrays([("dense", None, dense), ("global", 0.3, classifier(label, 0.88, 1)),
                              ("upper", 0.6, classifier(label, 0.65, 2)), ("lower", 0.6, classifier(label, 0.87, 3)),
                              ("random", 0.3, np.ones(400, dtype=int))])
    results = {r.key: r for r in claims.check_board(b)}
    lower = results["lower-beats-upper"].comparisons[0]
    assert lower.verdict == claims.REPRODUCED and lower.bounds[0] > 0
    collapsed = next(c for c in results["global-best"].comparisons if c.second == "random-0.3")
    assert collapsed.verdict == claims.INCONCLUSIVE and collapsed.why == "collapsed"
    assert results["toward-chance"].verdict == claims.UNTESTED  # no Fig 7 rows in this board


# -- old records -----------------------------------------------------------------------------------

def test_published_records_without_arrays_still_render():
    from benchmarks.config import load_suite
    from reports.leaderboard import board_from_frame

    folder = ROOT / "published" / "minilm-l6-bert-lowsparsity-cpu"
    frame = store.records_frame(folder)
    b = board_from_frame(load_suite("bert-lowsparsity"), frame)
    md = tables.board_markdown(b)
    assert len(b.rows) == 17 and "| 0.703 " in md and "finetune protocol" in md
    assert not any(e.best or e.ci or e.indistinct for r in b.rows for e in r.entries.values())
    ours = md.split("checked on these records")[1].split("checked on the paper's own table")[0]
    assert "no per-example arrays" in ours and "[" not in ours.split("**5 claims")[1]
    assert ours.count("Verdict: **not tested**") == 5  # no column can be shown to beat its baseline


def test_report_command_reads_the_arrays_beside_the_records(tmp_path):
    """`python -m benchmarks report` loads records/<key>.npz and shows intervals; a cell without one stays plain."""
    from benchmarks import predictions
    from benchmarks.cli import main
    from benchmarks.config import load_suite
    from benchmarks.runner import expand
    from tests.test_reports import SUITE

    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    results = tmp_path / "results"
    label = np.arange(300) % 2
    for i, c in enumerate(expand(load_suite(path=path))):
        pred = classifier(label, 0.9 - 0.2 * (c.config["method"] != "dense"), i)
        record = rec(c, {"accuracy": float(np.mean(pred == label))})
        if c.config["task"] == "sst2":
            store.write_bytes_atomic(predictions.predictions_path(results, c.key),
                                     predictions.to_bytes({"pred": pred, "label": label}))
            record["predictions"] = f"{c.key}.npz"
        store.write_record(results, record)
    out = tmp_path / "board.md"
    assert main(["report", "--suite-file", str(path), "--results", str(results), "--out", str(out)]) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| sparsity 0.3"))
    mrpc, sst2 = [c.strip() for c in row.strip("|").split("|")][2:4]
    assert "[" not in mrpc and " ± " in mrpc  # two seeds, no arrays: mean ± std, no interval
    assert sst2.count("[") == 1 and " ± " in sst2  # two seeds with arrays: seeds and examples resampled


def test_a_column_where_dense_is_not_above_chance_says_so():
    label = np.r_[np.ones(300), np.zeros(100)].astype(int)  # majority share 0.75
    weak = np.where(np.random.default_rng(0).uniform(size=400) < 0.76, label, 1 - label)
    b, _ = board_with_arrays([("dense", None, weak)], label=label)
    md = tables.board_markdown(b)
    assert b.chance_notes and "does not beat the majority class baseline 0.750" in md and "(not ranked)" in md
    assert "reaches 0), so this column cannot rank" in md
    strong, _ = board_with_arrays([("dense", None, classifier(np.arange(400) % 2, 0.9, 0))])
    assert not strong.chance_notes


def test_plots_draw_the_interval_as_error_bars():
    from reports import plots

    label = np.arange(400) % 2
    b, _ = board_with_arrays([("dense", None, classifier(label, 0.9, 0)), ("global", 0.3, classifier(label, 0.8, 1))])
    lines, dense = plots.series(b, b.columns[0])
    assert dense[2] == entry_of(b, "full-base").ci and lines["global"][1][2] == entry_of(b, "full-0.3").ci


@pytest.mark.parametrize("flags, expected", [
    ({"metrics": {"constant_predictions": True}}, True), ({"metrics": {"mismatched_collapsed": 1.0}}, True),
    ({"collapsed": {"mismatched_": True}}, True), ({"collapsed": {"": True}}, False),
    ({"notes": {"collapsed": False}}, False), ({"metrics": {"accuracy": 0.7}}, False)])
def test_record_collapse_flags(flags, expected):
    from reports.leaderboard import flagged_collapsed

    assert flagged_collapsed({"metrics": {}, **flags}, "mismatched_accuracy") is expected


def test_drift_to_dense_is_a_column_with_intervals_on_published_zeroshot_records():
    """The zero-shot board has one drift column (SST-2 text): dense exactly 1, magnitude closer to dense than random."""
    from benchmarks import predictions
    from benchmarks.config import apply_overrides, load_suite
    from benchmarks.runner import expand
    from reports.leaderboard import DRIFT_METRIC, build_board

    folder = ROOT / "published" / "minilm-l6-bert-lowsparsity-zeroshot"
    suite = apply_overrides(load_suite("bert-lowsparsity"),
                            ["model=minilm-l6", "protocol=zeroshot", "scale=zeroshot", "tasks=[mrpc, stsb, sst2]"])
    cells = expand(suite)
    records = store.load_records(folder).records
    arrays = {k: predictions.load(folder, r) for k, r in records.items()}
    b = build_board(suite.name, cells, records, model=suite.model, scale=suite.scale, predictions=arrays)
    (drift,) = [c for c in b.columns if c.metric == DRIFT_METRIC]
    assert drift.task == "sst2" and "drift" in tables.board_markdown(b)
    rows = {r.label: r.entries[drift] for r in b.rows}
    assert rows["full-base"].mean == 1.0
    for rate in ("0.1", "0.3", "0.45", "0.495"):
        full, rand = rows[f"full-{rate}"], rows[f"random-{rate}"]
        assert full.ci and rand.ci and rand.ci[1] < full.ci[0] < full.mean <= 1.0


def test_nm_pattern_rows_get_their_own_plot_line():
    """wanda-0.5 and wanda-2:4 both sit at sparsity 0.5: one line each, not a vertical zigzag on one."""
    from benchmarks import predictions
    from benchmarks.config import apply_overrides, load_suite
    from benchmarks.runner import expand
    from reports.leaderboard import build_board
    from reports.plots import method_styles, series

    folder = ROOT / "published" / "minilm-l6-bert-oneshot-zeroshot"
    suite = apply_overrides(load_suite("bert-oneshot"),
                            ["model=minilm-l6", "protocol=zeroshot", "scale=zeroshot", "tasks=[sst2]"])
    records = store.load_records(folder).records
    b = build_board(suite.name, expand(suite), records,
                    predictions={k: predictions.load(folder, r) for k, r in records.items()})
    lines, _ = series(b, b.columns[0])
    assert {"wanda", "wanda 2:4", "wanda 4:8", "sparsegpt 2:4"} <= set(lines)
    assert [round(x, 2) for x, _, _ in lines["wanda"]] == [0.0, 0.5, 0.6]
    assert [round(x, 2) for x, _, _ in lines["wanda 2:4"]] == [0.0, 0.5]
    assert method_styles(b)["wanda 2:4"][0].endswith("2:4")


# -- baselines and admissible columns ----------------------------------------------------------------

def mlm_arrays(rng: np.random.Generator, blocks: int, right: float, mft: float) -> dict:
    """MLM arrays of ``blocks`` blocks with per-position baseline inputs (block order), as the MLM task writes."""
    tokens = rng.integers(3, 8, blocks)
    positions = int(tokens.sum())
    correct = rng.random(positions) < right
    starts = np.r_[0, np.cumsum(tokens)[:-1]]
    return {"mlm_correct": np.add.reduceat(correct.astype(int), starts), "mlm_tokens": tokens,
            "mlm_nll": np.add.reduceat(rng.uniform(1, 4, positions), starts),
            stats.MFT_CORRECT: (rng.random(positions) < mft).astype(np.int8),
            stats.UNIGRAM_LOGP: -rng.uniform(5, 9, positions)}


def test_mlm_baselines_are_summed_per_block_and_decide_admissibility():
    rng = np.random.default_rng(4)
    strong, weak = mlm_arrays(rng, 300, 0.5, 0.07), mlm_arrays(rng, 300, 0.04, 0.07)
    a = stats.cell_arrays(strong, "mlm_accuracy")
    assert len(a[stats.MFT_CORRECT]) == 300  # per position -> per block
    assert stats.baseline_value([a], "mlm_accuracy") == pytest.approx(strong[stats.MFT_CORRECT].mean())
    ppl = stats.cell_arrays(strong, "mlm_ppl")
    assert stats.baseline_value([ppl], "mlm_ppl") == pytest.approx(np.exp(-strong[stats.UNIGRAM_LOGP].mean()))
    assert stats.baseline_replicates([{k: v for k, v in a.items() if k != stats.MFT_CORRECT}], "mlm_accuracy") is None

    cells, records, preds = [], {}, {}
    for method, rate, arrays in (("dense", None, strong), ("global", 0.3, weak)):
        c = cell(method, rate, "mlm")
        cells.append(c)
        metrics = {"mlm_accuracy": stats.value(stats.cell_arrays(arrays, "mlm_accuracy"), "mlm_accuracy"),
                   "mlm_ppl": stats.value(stats.cell_arrays(arrays, "mlm_ppl"), "mlm_ppl")}
        records[c.key], preds[c.key] = rec(c, metrics), arrays
    b = build_board("t", cells, records, predictions=preds)
    accuracy, perplexity = b.columns[:2]
    assert b.column_baselines[accuracy].admissible and b.column_baselines[accuracy].name == "most frequent token"
    assert b.column_baselines[perplexity].admissible and b.column_baselines[perplexity].gap[0] > 0
    # the weak model as dense: below the most frequent token, so the column cannot rank
    records[cells[0].key], preds[cells[0].key] = rec(cells[0], records[cells[1].key]["metrics"]), weak
    b = build_board("t", cells, records, predictions=preds)
    md = tables.board_markdown(b)
    # dense clearly below the baseline is said to be worse, not only "not better"
    assert not b.column_baselines[b.columns[0]].admissible and "is worse than the most frequent token" in md
    assert "lies below 0), so this column cannot rank" in md
