"""report --compare (reports/protocol_compare.py): rank correlations between two protocols' boards, with intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from benchmarks.cli import main
from reports import protocol_compare as compare
from reports.protocol_compare import Scores

ROOT = Path(__file__).resolve().parents[1]
ZEROSHOT = ROOT / "published" / "minilm-l6-bert-lowsparsity-zeroshot"
PROBE = ROOT / "published" / "minilm-l6-bert-lowsparsity-probe"


def _scores(values: list[float], noise: float, seed: int) -> Scores:
    rng = np.random.default_rng(seed)
    labels = [f"row-{i}" for i in range(len(values))]
    return Scores(dict(zip(labels, values)),
                  {label: v + noise * rng.standard_normal(2000) for label, v in zip(labels, values)}, "accuracy")


def test_rank_correlation_of_known_orders():
    values = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    same = compare.rank_correlation(_scores(values, 0.0, 0), _scores([2 * v for v in values], 0.0, 1))
    assert same["spearman"] == pytest.approx(1.0) and same["kendall"] == pytest.approx(1.0)
    assert same["spearman_ci"] == pytest.approx((1.0, 1.0)) and same["kendall_ci"] == pytest.approx((1.0, 1.0))
    assert same["disagree"] == []
    flipped = compare.rank_correlation(_scores(values, 0.0, 0), _scores(values[::-1], 0.0, 1))
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["disagree"][0][1:] in ((1, 6), (6, 1))
    noisy_y = [0.9, 0.6, 0.8, 0.5, 0.7, 0.4]
    noisy = compare.rank_correlation(_scores(values, 0.05, 0), _scores(noisy_y, 0.05, 1))
    assert noisy["spearman"] == pytest.approx(spearmanr(values, noisy_y)[0])
    assert noisy["kendall"] == pytest.approx(kendalltau(values, noisy_y)[0])
    lo, hi = noisy["spearman_ci"]
    assert -1 <= lo < noisy["spearman"] < hi <= 1  # noise in the scores and in the rows widens the interval


def test_vectorised_correlations_equal_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(50, 9)).astype(float)  # many ties
    y = x + rng.integers(0, 3, size=(50, 9))
    for row in range(50):
        assert compare.spearman_rows(x, y)[row] == pytest.approx(spearmanr(x[row], y[row])[0])
        assert compare.kendall_rows(x, y)[row] == pytest.approx(kendalltau(x[row], y[row])[0])


def test_fewer_than_three_common_rows_give_no_correlation():
    assert compare.rank_correlation(_scores([0.1, 0.2], 0, 0), _scores([0.1, 0.2], 0, 1)) is None


@pytest.mark.skipif(not (ZEROSHOT / "records").is_dir(), reason="needs the published zero-shot and probe boards")
def test_report_compare_on_the_published_boards(tmp_path, capsys):
    out = tmp_path / "compare.md"
    code = main(["report", "--suite", "bert-lowsparsity", "--model", "minilm-l6", "--set", "tasks=[stsb]",
                 "--compare", f"zeroshot={ZEROSHOT}", f"probe={PROBE}", "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "| stsb   | zeroshot pearson" in text and "| stsb   | zeroshot drift to dense" in text
    assert len(list((tmp_path / "compare_plots").glob("*.png"))) == 2
