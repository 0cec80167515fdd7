"""The findings tables of NOTE.md, from this folder's records (works on a partial run: missing cells print '-').

1. Per FLOPs target (0.2, 0.4, 0.6; drop-layers at its nearest whole-layer share): every structured row's
   score with its 95% bootstrap interval and its measured speed-up (batch 1 and 32) with its interval; the best
   row per target and task.
2. Structured against unstructured at (about) equal parameters: the paired bootstrap difference of the scores
   (same resamples as the leaderboard, reports/stats.py), with each row's share of prunable weights removed.

Run from the repository root: python published/minilm-l6-bert-structured-zeroshot/findings.py [RESULTS]
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks import predictions, store
from reports import stats
from reports.cost import row_costs

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent  # or another results folder
TASKS = {"stsb": "pearson", "sst2": "accuracy"}
TARGETS = {0.2: ["heads-0.2", "neurons-0.2", "retrain-free-0.2", "drop-top-0.17"],
           0.4: ["neurons-0.4", "retrain-free-0.4", "drop-top-0.33", "drop-bottom-0.33"],
           0.6: ["neurons-0.6", "retrain-free-0.6", "drop-top-0.67"]}
UNSTRUCTURED = ["full-0.2", "full-0.4", "full-0.6", "full-2:4", "wanda-0.4"]


class Cell:
    """A minimal stand-in for benchmarks.config.Cell (label in config, record key) for reports.cost.row_costs."""

    def __init__(self, record: dict) -> None:
        self.config, self.key = record["config"], record["key"]


def load() -> tuple[dict, dict]:
    """((label, task) -> (record, arrays), row label -> reports.cost.RowCost) of every ok record."""
    records = {key: r for key, r in store.load_records(HERE).records.items() if r["status"] == "ok"}
    cells = {(r["config"]["label"], r["config"]["task"]): (r, predictions.load(HERE, r)) for r in records.values()}
    costs = row_costs([Cell({**r, "key": key}) for key, r in records.items()], records)
    return cells, costs


def reps(cells: dict, label: str, task: str):
    cell = cells.get((label, task))
    arrays = stats.cell_arrays(cell[1], TASKS[task]) if cell else None
    return None if arrays is None else stats.replicates([arrays], TASKS[task])


def score(cells: dict, label: str, task: str) -> tuple[float, tuple] | None:
    cell, r = cells.get((label, task)), reps(cells, label, task)
    if r is None:
        return None
    return stats.value(stats.cell_arrays(cell[1], TASKS[task]), TASKS[task]), stats.interval(r)


def speed(costs: dict, label: str, batch: int) -> str:
    found = costs[label].speedup(batch) if label in costs else None
    return "-" if found is None else f"{found[0]:.2f}x [{found[1][0]:.2f}, {found[1][1]:.2f}]"


def removed_share(cells: dict, label: str) -> str:
    record = next((c[0] for (lab, _), c in cells.items() if lab == label), None)
    return "-" if record is None else f"{record['sparsity']['global_before']:.3f}"


def main() -> None:
    cells, costs = load()
    print(f"{len(cells)} ok records\n")
    head = "| target | row | removed share | FLOPs / dense | " + " | ".join(f"{t} {m}" for t, m in TASKS.items())
    print(head + " | speed-up b1 | speed-up b32 |\n|" + "---|" * (6 + len(TASKS)))
    for target, labels in TARGETS.items():
        for label in ["full-base", *labels]:
            scores = [score(cells, label, t) for t in TASKS]
            flops = f"{costs[label].size['flops_ratio']:.3f}" if label in costs else "-"
            text = ["-" if s is None else f"{s[0]:.3f} [{s[1][0]:.3f}, {s[1][1]:.3f}]" for s in scores]
            print(f"| {target} | {label} | {removed_share(cells, label)} | {flops} | " + " | ".join(text)
                  + f" | {speed(costs, label, 1)} | {speed(costs, label, 32)} |")
    print("\nBest structured row per FLOPs target and task (highest score; ties within the interval noted):\n")
    for target, labels in TARGETS.items():
        for task in TASKS:
            found = [(score(cells, lab, task), lab) for lab in labels]
            found = [(s[0], lab) for s, lab in found if s is not None]
            if found:
                value, label = max(found)
                print(f"- {target} {task}: {label} {value:.3f}, speed-up b1 {speed(costs, label, 1)}, "
                      f"b32 {speed(costs, label, 32)}")
    print("\nStructured minus unstructured, 95% paired bootstrap interval (* excludes zero):\n")
    print("| structured - unstructured | removed shares | " + " | ".join(TASKS) + " |\n|---|---|"
          + "---|" * len(TASKS))
    for structured in [lab for labels in TARGETS.values() for lab in labels]:
        for other in UNSTRUCTURED:
            entries = []
            for task in TASKS:
                a, b = reps(cells, structured, task), reps(cells, other, task)
                if a is None or b is None:
                    entries.append("-")
                    continue
                lo, hi = stats.paired_interval(a, b)
                diff = score(cells, structured, task)[0] - score(cells, other, task)[0]
                entries.append(f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("*" if stats.excludes_zero((lo, hi)) else ""))
            if any(e != "-" for e in entries):
                shares = f"{removed_share(cells, structured)} / {removed_share(cells, other)}"
                print(f"| {structured} - {other} | {shares} | " + " | ".join(entries) + " |")


if __name__ == "__main__":
    main()
