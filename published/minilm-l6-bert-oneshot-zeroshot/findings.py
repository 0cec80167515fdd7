"""The findings tables of NOTE.md, from this folder's records: drift to dense and the task columns with
95% bootstrap intervals, and the paired differences the findings rest on (same resamples as the leaderboard,
reports/stats.py). Run from the repository root: python published/minilm-l6-bert-oneshot-zeroshot/findings.py [RESULTS]
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks import predictions, store
from reports import stats

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent  # or another results folder
ROWS = ["full-base", "layerwise-0.5", "layerwise-2:4", "layerwise-4:8", "full-0.5", "full-2:4", "full-4:8",
        "wanda-0.5", "wanda-2:4", "wanda-4:8", "sparsegpt-0.5", "sparsegpt-2:4", "sparsegpt-4:8",
        "layerwise-0.6", "full-0.6", "wanda-0.6", "sparsegpt-0.6"]  # the leaderboard's order
TASKS = ("sst2", "stsb", "mrpc", "mlm")
METRICS = {"sst2": ("accuracy",), "stsb": ("pearson",), "mrpc": ("accuracy",), "mlm": ("mlm_accuracy", "mlm_ppl")}
# (first, second): rows compared, effect = first - second (drift and scores: positive favours first;
# perplexity: negative favours first).
PAIRS = [("wanda-0.5", "layerwise-0.5"), ("sparsegpt-0.5", "layerwise-0.5"), ("wanda-0.5", "full-0.5"),
         ("sparsegpt-0.5", "full-0.5"), ("sparsegpt-0.5", "wanda-0.5"),
         ("wanda-0.6", "layerwise-0.6"), ("sparsegpt-0.6", "layerwise-0.6"), ("sparsegpt-0.6", "wanda-0.6"),
         ("layerwise-0.5", "layerwise-2:4"), ("full-0.5", "full-2:4"), ("wanda-0.5", "wanda-2:4"),
         ("sparsegpt-0.5", "sparsegpt-2:4"), ("wanda-2:4", "layerwise-2:4"), ("sparsegpt-2:4", "layerwise-2:4"),
         ("sparsegpt-2:4", "wanda-2:4")]


def load() -> dict:
    """(label, task) -> (record, arrays) of every ok record."""
    out = {}
    for record in store.load_records(HERE).records.values():
        if record["status"] == "ok":
            out[(record["config"]["label"], record["config"]["task"])] = (record, predictions.load(HERE, record))
    return out


def metric_names(task: str, record: dict) -> list[str]:
    """drift_cosine and the task's score metrics present in the record (headline first)."""
    names = [m for m in (record["notes"].get("headline"), *METRICS[task]) if m and m in record["metrics"]]
    return ["drift_cosine", *dict.fromkeys(names)]


def reps(cells: dict, label: str, task: str, metric: str):
    """Bootstrap replicates of one cell's metric, or None."""
    cell = cells.get((label, task))
    arrays = stats.cell_arrays(cell[1], metric) if cell else None
    return None if arrays is None else stats.replicates([arrays], metric)


def fmt(value: float, bounds: tuple[float, float], digits: int = 3) -> str:
    return f"{value:.{digits}f} [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def main() -> None:
    cells = load()
    labels = [row for row in ROWS if any(label == row for label, _ in cells)]
    columns = [(t, m) for t in TASKS for m in (metric_names(t, cells[next(k for k in cells if k[1] == t)][0])
                                               if any(k[1] == t for k in cells) else [])]
    print(f"{len(cells)} ok records\n")
    print("| row | " + " | ".join(f"{t} {m}" for t, m in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label in labels:
        entries = []
        for task, metric in columns:
            r = reps(cells, label, task, metric)
            a = stats.cell_arrays(cells[(label, task)][1], metric) if (label, task) in cells else None
            digits = 1 if metric == "mlm_ppl" else 3
            entries.append("-" if r is None else fmt(stats.value(a, metric), stats.interval(r), digits))
        print(f"| {label} | " + " | ".join(entries) + " |")
    print("\nPaired differences, first row minus second, 95% paired bootstrap interval (* excludes zero):\n")
    print("| first - second | " + " | ".join(f"{t} {m}" for t, m in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for first, second in PAIRS:
        entries = []
        for task, metric in columns:
            a, b = reps(cells, first, task, metric), reps(cells, second, task, metric)
            if a is None or b is None:
                entries.append("-")
                continue
            va = stats.value(stats.cell_arrays(cells[(first, task)][1], metric), metric)
            vb = stats.value(stats.cell_arrays(cells[(second, task)][1], metric), metric)
            bounds = stats.paired_interval(a, b)
            digits = 1 if metric == "mlm_ppl" else 3
            entries.append(fmt(va - vb, bounds, digits) + (" *" if stats.excludes_zero(bounds) else ""))
        print(f"| {first} - {second} | " + " | ".join(entries) + " |")


if __name__ == "__main__":
    main()
