"""Add what reports now read from a record to records written before it: ``notes.nominal_sparsity``.

Reports never ask a method (they stay torch-free): the overall sparsity a prune-finetune row aims at
comes from the method's spec into the record's notes at run time. Records written before that get
it here; nothing that decides a cell (config, key, metrics) changes, so every record stays done.

    python -m benchmarks.migrate published/minilm-l6-bert-lowsparsity-cpu docs/examples/smoke/results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import paths, store


def add_row_notes(results_dir: Path) -> int:
    """Give every prune-finetune record under ``results_dir`` its ``notes.nominal_sparsity``; return how many changed."""
    from benchmarks.analyses.prune_finetune import Row
    from benchmarks.registry import load_builtins

    load_builtins()
    changed = 0
    for path in sorted(paths.records_dir(results_dir).glob("*.json")):
        record = json.loads(path.read_text())
        cfg = record.get("config") or {}
        notes = record.get("notes")
        if cfg.get("kind") != "prune-finetune" or not isinstance(notes, dict) or "nominal_sparsity" in notes:
            continue
        row = Row(cfg["method"], cfg.get("sparsity"), tuple(sorted((cfg.get("options") or {}).items())))
        notes["nominal_sparsity"] = row.nominal
        store.write_json_atomic(path, record)
        changed += 1
    return changed


def main(argv: list[str]) -> int:
    """Migrate each results folder named on the command line."""
    for folder in argv:
        print(f"{folder}: {add_row_notes(Path(folder))} record(s) given notes.nominal_sparsity")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
