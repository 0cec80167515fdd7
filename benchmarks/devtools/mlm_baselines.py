"""Dense MLM against its two trivial baselines, per seed, in a results folder (the table in the zero-shot NOTE.md).

    python -m benchmarks.devtools.mlm_baselines published/minilm-l6-bert-lowsparsity-zeroshot

The baselines are read from the dense MLM records' per-position arrays (``baseline_mft_correct``,
``baseline_unigram_logp``; benchmarks/tasks/mlm.py) and compared with dense on the same masked positions.
Intervals: 95% percentile bootstrap over evaluation blocks (the unit the leaderboard resamples), paired, 2,000
resamples from a fixed seed. Dense beats a baseline when the whole interval of the difference is on its side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tabulate import tabulate

from benchmarks import predictions, store
from benchmarks.predictions import BASELINE_MFT_CORRECT, BASELINE_UNIGRAM_LOGP, MLM_CORRECT, MLM_NLL, MLM_TOKENS

RESAMPLES, BOOTSTRAP_SEED = 2000, 0


def block_sums(arrays: dict) -> np.ndarray:
    """Per block: [model NLL, model correct, tokens, baseline correct, baseline -log p] (positions grouped by block)."""
    tokens = arrays[MLM_TOKENS].astype(np.int64)
    block = np.repeat(np.arange(len(tokens)), tokens)
    mft = np.bincount(block, arrays[BASELINE_MFT_CORRECT].astype(np.float64), len(tokens))
    nll = np.bincount(block, -arrays[BASELINE_UNIGRAM_LOGP].astype(np.float64), len(tokens))
    return np.column_stack([arrays[MLM_NLL], arrays[MLM_CORRECT], tokens, mft, nll]).astype(np.float64)


def statistics(sums: np.ndarray) -> np.ndarray:
    """[model accuracy, baseline accuracy, model ppl, unigram ppl] from (resampled) block sums [..., blocks, 5]."""
    total = sums.sum(-2)
    n = total[..., 2]
    return np.stack([total[..., 1] / n, total[..., 3] / n, np.exp(total[..., 0] / n), np.exp(total[..., 4] / n)], -1)


def compare(arrays: dict) -> dict:
    """Point values and paired 95% bootstrap intervals of dense, the baselines and their differences."""
    sums = block_sums(arrays)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boot = statistics(sums[rng.integers(0, len(sums), (RESAMPLES, len(sums)))])
    point = statistics(sums)
    derived = np.column_stack([boot, boot[:, 0] - boot[:, 1], boot[:, 2] / boot[:, 3]])
    low, high = np.percentile(derived, [2.5, 97.5], axis=0)
    names = ["accuracy", "mft_accuracy", "ppl", "unigram_ppl", "accuracy_minus_mft", "ppl_ratio"]
    values = [*point, point[0] - point[1], point[2] / point[3]]
    return {name: (float(v), float(lo), float(hi)) for name, v, lo, hi in zip(names, values, low, high)}


def dense_rows(folder: Path) -> list[list]:
    """One table row per seed of the folder's dense MLM records that carry baseline arrays."""
    rows = []
    records = [r for r in store.load_records(folder).records.values()
               if r["config"].get("task") == "mlm" and r["config"].get("method") == "dense" and r["status"] == "ok"]
    for record in sorted(records, key=lambda r: (r["config"]["seed"], r["config"].get("task_version", ""))):
        arrays = predictions.load(folder, record)
        if not arrays or BASELINE_MFT_CORRECT not in arrays:
            continue
        c = compare(arrays)
        fmt = lambda key, d=3, c=c: f"{c[key][0]:.{d}f} [{c[key][1]:.{d}f}, {c[key][2]:.{d}f}]"  # noqa: E731
        rows.append([record["config"]["seed"], int(arrays[MLM_TOKENS].sum()), fmt("accuracy"), fmt("mft_accuracy"),
                     fmt("accuracy_minus_mft"), "yes" if c["accuracy_minus_mft"][1] > 0 else "**no**",
                     fmt("ppl", 0), fmt("unigram_ppl", 0), fmt("ppl_ratio", 2),
                     "yes" if c["ppl_ratio"][2] < 1 else "**no**"])
    return rows


HEADERS = ["seed", "masked", "dense acc.", "MFT acc.", "dense - MFT", "beats MFT", "dense ppl", "unigram ppl",
           "dense / unigram ppl", "beats unigram"]


def main(argv: list[str] | None = None) -> int:
    """Print dense MLM against the most-frequent-token and unigram baselines for each results folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.mlm_baselines", description=main.__doc__)
    parser.add_argument("folders", nargs="+", metavar="FOLDER")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not (Path(folder) / "records").is_dir():  # argparse's one line and exit status 2, as devtools.chance
            parser.error(f"{folder} has no records/ folder; pass a results folder such as "
                         f"published/minilm-l6-bert-lowsparsity-zeroshot")
    for folder in args.folders:
        rows = dense_rows(Path(folder))
        table = tabulate(rows, HEADERS, tablefmt="github") if rows else "(no dense MLM record with baseline arrays)"
        print(f"{folder}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
