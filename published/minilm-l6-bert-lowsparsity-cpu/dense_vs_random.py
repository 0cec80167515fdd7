"""Dense vs random at every sparsity on every task that ran; plus the sparsity-kept check.

Run from the repository root: python published/minilm-l6-bert-lowsparsity-cpu/dense_vs_random.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # this checkout's packages, not an installed copy

from benchmarks import store  # noqa: E402
from benchmarks.config import apply_overrides, load_suite
from benchmarks.registry import TASKS
from benchmarks.runner import expand  # noqa: E402

suite = apply_overrides(load_suite("bert-lowsparsity"), ["model=minilm-l6", "scale=cpu"])
records = store.load_records(HERE).records
by_cell = {(c.config["label"], c.config["task"]): records.get(c.key) for c in expand(suite)}
# Every ok record: exactly the same number of zero weights after fine-tuning as before.
oks = [r for r in by_cell.values() if r and r["status"] == "ok"]
kept = all(r["sparsity"]["zeros_after"] == r["sparsity"]["zeros_before"] for r in oks)
print(f"{len(oks)} ok records, {sum(1 for r in by_cell.values() if r and r['status'] == 'skipped')} skipped; "
      f"sparsity after == before in all ok records: {kept}\n")
print("| task | metric | dense | " + " | ".join(f"random-{r}" for r in ("0.1", "0.3", "0.45", "0.495")) + " | dense beats random at |")
print("|---|---|---|---|---|---|---|---|")
for task in suite.tasks:
    spec = TASKS.get(task)
    for metric, higher in dict(getattr(spec, "columns", None) or {task: (spec.headline, spec.higher_is_better)}).values():
        dense = by_cell[("full-base", task)]
        if not dense or dense["status"] != "ok":
            print(f"| {task} | {metric} | {dense['status'] if dense else 'missing'} | | | | | — |")
            continue
        d = dense["metrics"][metric]
        cells, wins = [], []
        for rate in ("0.1", "0.3", "0.45", "0.495"):
            rec = by_cell[(f"random-{rate}", task)]
            if not rec or rec["status"] != "ok":
                cells.append("—")
                continue
            v = rec["metrics"][metric]
            cells.append(f"{v:.3f}" if metric != "mlm_ppl" else f"{v:.0f}")
            better = d > v if higher else d < v
            wins.append(f"{rate}{'' if better else ' (no: tie)' if d == v else ' (no)'}")
        dtext = f"{d:.3f}" if metric != "mlm_ppl" else f"{d:.0f}"
        print(f"| {task} | {metric} | {dtext} | " + " | ".join(cells) + f" | {', '.join(wins)} |")
