"""Per-example outputs saved beside each record: what the leaderboard's intervals resample (numpy only).

The contract between tasks (which write them) and reports (which resample them):

- One compressed ``.npz`` per cell, ``records/<key>.npz`` beside ``records/<key>.json``; the record's
  ``predictions`` field names the file. It is written before the record, so a record never points at
  a missing file; a cell without it simply has no interval.
- Arrays are aligned on the evaluation units (dev examples, or text blocks for masked LM), in the same
  fixed order for every row of a suite, so two rows can be compared pairwise on the same units.
- ``drift`` may cover a fixed sample of the evaluation units instead of all of them (the fine-tune
  protocol measures it on ``drift_limit`` examples, the same for every row; the record's
  ``<prefix>drift_examples`` metric gives the count), so it is resampled on its own.
- Names are ``<prefix><name>``, where ``<prefix>`` is the task's metric prefix (``""`` for one dev
  split, e.g. ``m_`` / ``mm_`` for MNLI matched / mismatched) and ``<name>`` one of ``ARRAY_NAMES``.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

PRED = "pred"      # classification: predicted class (int); regression: predicted score (float)
LABEL = "label"    # gold class or gold score
SCORE = "score"    # binary tasks: a real-valued score for class 1 (cosine, logit margin): ROC AUC
DRIFT = "drift"    # cosine between this cell's and the dense model's embedding of the same example
MLM_CORRECT = "mlm_correct"  # masked LM, per block: masked tokens predicted right
MLM_TOKENS = "mlm_tokens"    # masked LM, per block: masked tokens
MLM_NLL = "mlm_nll"          # masked LM, per block: summed negative log-likelihood of the masked tokens
# Masked LM baselines, per masked position (block order; block i owns the next mlm_tokens[i] positions):
BASELINE_MFT_CORRECT = "baseline_mft_correct"    # the fitting text's most frequent token is the target
BASELINE_UNIGRAM_LOGP = "baseline_unigram_logp"  # the target's log-probability under the add-one unigram model
ARRAY_NAMES = (PRED, LABEL, SCORE, DRIFT, MLM_CORRECT, MLM_TOKENS, MLM_NLL, BASELINE_MFT_CORRECT,
               BASELINE_UNIGRAM_LOGP)

# A classifier that gives one class to at least this share of dev examples has collapsed.
COLLAPSE_SHARE = 0.95


def predictions_path(results_dir: Path, key: str) -> Path:
    """The per-example arrays of one cell, beside its JSON record."""
    return Path(results_dir) / "records" / f"{key}.npz"


def to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as compressed ``.npz`` bytes (written atomically by the store)."""
    bad = [name for name in arrays if not name.endswith(ARRAY_NAMES)]
    if bad:
        raise ValueError(f"unknown prediction arrays {bad}; names end with one of {ARRAY_NAMES}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in sorted(arrays.items())})
    return buffer.getvalue()


# What a truncated or foreign .npz raises while it is opened or an array is read (zip, zlib, numpy's header).
UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of one ``.npz`` file, read in full (so a truncated member fails here); raises UNREADABLE."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def problem(results_dir: Path, record: dict) -> str | None:
    """Why the arrays a record names cannot be used (missing or unreadable); None when they can or it names none."""
    name = record.get("predictions")
    if not name:
        return None
    path = Path(results_dir) / "records" / name
    if not path.is_file():
        return f"its per-example arrays {name} are missing"
    try:
        read_arrays(path)
    except UNREADABLE as exc:
        return f"its per-example arrays {name} do not load ({exc.__class__.__name__})"
    return None


def load(results_dir: Path, record: dict) -> dict[str, np.ndarray] | None:
    """The arrays a record names, or None when it names none or the file is missing or unreadable."""
    name = record.get("predictions")
    if not name:
        return None
    try:
        return read_arrays(Path(results_dir) / "records" / name)
    except UNREADABLE:
        return None


def collapsed(pred: np.ndarray, regression: bool) -> bool:
    """True when a classifier gives one class to >= COLLAPSE_SHARE of examples, or a regressor is constant."""
    pred = np.asarray(pred)
    if pred.size == 0:
        return False
    if regression:
        return bool(np.ptp(pred) == 0)
    _, counts = np.unique(pred, return_counts=True)
    return bool(counts.max() / pred.size >= COLLAPSE_SHARE)
