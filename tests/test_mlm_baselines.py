"""benchmarks.devtools.mlm_baselines: dense MLM against its baselines from per-position arrays (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.devtools import mlm_baselines as mb


def _arrays() -> dict:
    """Three blocks with 2, 3 and 1 masked positions; the model gets 1, 2 and 0 right."""
    return {"mlm_tokens": np.array([2, 3, 1], np.int16), "mlm_correct": np.array([1, 2, 0], np.int16),
            "mlm_nll": np.array([2.0, 3.0, 4.0], np.float32),
            "baseline_mft_correct": np.array([1, 0, 0, 0, 1, 0], np.int8),
            "baseline_unigram_logp": np.log(np.array([0.1, 0.2, 0.1, 0.05, 0.1, 0.2], np.float32))}


def test_block_sums_group_positions_by_block():
    sums = mb.block_sums(_arrays())
    np.testing.assert_allclose(sums[:, 3], [1, 1, 0])  # baseline correct per block
    np.testing.assert_allclose(sums[:, 4], -np.log([0.1 * 0.2, 0.1 * 0.05 * 0.1, 0.2]), rtol=1e-6)


def test_compare_point_values_and_intervals():
    c = mb.compare(_arrays())
    assert c["accuracy"][0] == pytest.approx(3 / 6)
    assert c["mft_accuracy"][0] == pytest.approx(2 / 6)
    assert c["ppl"][0] == pytest.approx(math.exp(9 / 6))
    unigram = math.exp(-np.log([0.1, 0.2, 0.1, 0.05, 0.1, 0.2]).mean())
    assert c["unigram_ppl"][0] == pytest.approx(unigram, rel=1e-6)
    assert c["ppl_ratio"][0] == pytest.approx(math.exp(9 / 6) / unigram, rel=1e-6)
    for _, low, high in c.values():
        assert low <= high
    assert c == mb.compare(_arrays())  # fixed bootstrap seed: the same table every time


def test_folder_without_records_is_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        mb.main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m benchmarks.devtools.mlm_baselines: error: ") and "has no records/" in err
