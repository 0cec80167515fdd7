"""Bring records written by older code up to what the code now reads and how it now keys cells.

- ``notes.nominal_sparsity`` for prune-finetune records: reports never ask a method (they stay torch-free),
  so the overall sparsity a row aims at comes from the method's spec into the record's notes at run time.
  Nothing that decides a cell (config, key, metrics) changes, so every record stays done.
- MNIST records re-keyed without the run settings: ``chunk`` and ``threads`` change how fast a cell runs,
  not its numbers, so they left the cell key (``benchmarks.kinds.mnist.RUN_SETTINGS``). They move from
  ``config.recipe`` into ``notes.run_settings``; ``key`` and ``config_canonical`` are recomputed and the file
  renamed to the new key, so the record is found done under the key its cell now has. Metrics,
  artifacts and provenance are untouched.

Both steps are idempotent (a migrated record is left alone); run them on any results folder:

    python -m benchmarks.migrate published/mnist-cpu/correlations docs/examples/smoke/results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import paths, predictions, store
from benchmarks.config import canonical_json, config_key

MNIST_KINDS = ("mnist-correlations", "mnist-recipes", "mnist-init")


def add_row_notes(results_dir: Path) -> int:
    """Add ``notes.nominal_sparsity`` to every prune-finetune record under ``results_dir``; return how many changed."""
    from benchmarks.kinds.prune_finetune import Row
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


def rekey_run_settings(results_dir: Path) -> tuple[int, list[str]]:
    """Move the run settings out of every MNIST record's config and re-key it; return how many were
    re-keyed and the files left as they were because a record already holds their new key."""
    from benchmarks.kinds.mnist import RUN_SETTINGS

    moved, left = 0, []
    for path in sorted(paths.records_dir(results_dir).glob("*.json")):
        record = json.loads(path.read_text())
        cfg = record.get("config") or {}
        recipe = cfg.get("recipe")
        if cfg.get("kind") not in MNIST_KINDS or not isinstance(recipe, dict) or not set(RUN_SETTINGS) & set(recipe):
            continue
        settings = {k: recipe.pop(k) for k in RUN_SETTINGS if k in recipe}
        key = config_key(cfg)
        target = paths.record_path(results_dir, key)
        if target.exists():  # the same cell run again with other run settings: keep both files, say so
            left.append(path.name)
            continue
        record.update(key=key, config_canonical=canonical_json(cfg),
                      notes={**(record.get("notes") or {}), "run_settings": settings})
        if record.get("predictions"):  # arrays first: a record never names a missing file
            arrays = paths.records_dir(results_dir) / record["predictions"]
            record["predictions"] = predictions.predictions_path(results_dir, key).name
            arrays.rename(predictions.predictions_path(results_dir, key))
        store.write_json_atomic(target, record)
        path.unlink()
        moved += 1
    return moved, left


def main(argv: list[str]) -> int:
    """Migrate each results folder named on the command line."""
    for folder in argv:
        print(f"{folder}: {add_row_notes(Path(folder))} record(s) given notes.nominal_sparsity")
        moved, left = rekey_run_settings(Path(folder))
        print(f"{folder}: {moved} MNIST record(s) re-keyed without the run settings (chunk, threads)"
              + (f"; left as they were, their new key being taken: {', '.join(left)}" if left else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
