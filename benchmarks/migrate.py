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

Every folder is checked and every record read and planned before the first file is written: a missing
folder is bad input (exit 2, one line, nothing written); a record that cannot be read or migrated is left
as it was, named on a ``note:`` line; a fault while writing (disk full) is one line and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import paths, predictions, store
from benchmarks.config import canonical_json, config_key
from benchmarks.errors import UserError
from benchmarks.registry import UnknownName

MNIST_KINDS = ("mnist-correlations", "mnist-recipes", "mnist-init")
# What a malformed record raises while it is planned (a field of the wrong type or missing, an unknown method).
_MALFORMED = (ValueError, KeyError, TypeError, AttributeError, UnknownName, UserError)


@dataclass
class Change:
    """One record's migration: write ``record`` to ``target``, after moving its arrays; remove ``source``."""

    source: Path
    target: Path
    record: dict
    arrays: tuple[Path, Path] | None = None  # (old .npz, new .npz) when the key changes


@dataclass
class Plan:
    """Everything a folder's migration will do, decided before anything is written."""

    folder: Path
    notes_added: list[Change] = field(default_factory=list)
    rekeyed: list[Change] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # re-keys whose new key a record already holds
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> why it cannot be migrated


def _read(path: Path) -> dict:
    """A record file as a dict with a config dict; ValueError naming what is wrong otherwise."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not readable JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config", {}), dict):
        raise ValueError("not a record (a JSON object with a config object)")
    return record


def _with_row_notes(record: dict) -> dict | None:
    """The record with ``notes.nominal_sparsity`` added, or None when it needs none."""
    from benchmarks.kinds.prune_finetune import Row

    cfg = record.get("config") or {}
    notes = record.get("notes")
    if cfg.get("kind") != "prune-finetune" or not isinstance(notes, dict) or "nominal_sparsity" in notes:
        return None
    row = Row(cfg["method"], cfg.get("sparsity"), tuple(sorted((cfg.get("options") or {}).items())))
    return {**record, "notes": {**notes, "nominal_sparsity": row.nominal}}


def _rekeyed(record: dict) -> tuple[dict, dict] | None:
    """(the record re-keyed without its run settings, the settings), or None when it has none to move."""
    from benchmarks.kinds.mnist import RUN_SETTINGS

    cfg = record.get("config") or {}
    recipe = cfg.get("recipe")
    if cfg.get("kind") not in MNIST_KINDS or not isinstance(recipe, dict) or not set(RUN_SETTINGS) & set(recipe):
        return None
    settings = {k: recipe[k] for k in RUN_SETTINGS if k in recipe}
    new_cfg = {**cfg, "recipe": {k: v for k, v in recipe.items() if k not in RUN_SETTINGS}}
    key = config_key(new_cfg)
    moved = {**record, "config": new_cfg, "key": key, "config_canonical": canonical_json(new_cfg),
             "notes": {**(record.get("notes") or {}), "run_settings": settings}}
    return moved, settings


def _plan_one(plan: Plan, path: Path, taken: set[str]) -> None:
    """Add one record file's migration to ``plan`` (or its reason to be left alone)."""
    results = plan.folder
    record = _read(path)
    noted = _with_row_notes(record)
    if noted is not None:
        plan.notes_added.append(Change(path, path, noted))
        return
    moved = _rekeyed(record)
    if moved is None:
        return
    new, _ = moved
    target = paths.record_path(results, new["key"])
    if target.exists() or new["key"] in taken:  # the same cell run again with other run settings: keep both
        plan.left.append(path.name)
        return
    arrays = None
    if record.get("predictions"):  # arrays move with the record: a record never names a missing file
        old_arrays = paths.records_dir(results) / str(record["predictions"])
        if not old_arrays.is_file():
            raise ValueError(f"names per-example arrays {record['predictions']} that do not exist")
        new_arrays = predictions.predictions_path(results, new["key"])
        new["predictions"] = new_arrays.name
        arrays = (old_arrays, new_arrays)
    taken.add(new["key"])
    plan.rekeyed.append(Change(path, target, new, arrays))


def plan_folder(results_dir: Path) -> Plan:
    """Read every record under ``results_dir`` and decide its migration; writes nothing."""
    from benchmarks.registry import load_builtins

    load_builtins()  # method specs give the nominal sparsity
    plan, taken = Plan(Path(results_dir)), set()
    for path in sorted(paths.records_dir(results_dir).glob("*.json")):
        try:
            _plan_one(plan, path, taken)
        except _MALFORMED as exc:
            plan.skipped[path.name] = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        except OSError as exc:  # unreadable file (permissions, a folder named *.json)
            plan.skipped[path.name] = f"cannot be read ({exc.strerror or exc})"
    return plan


def apply(plan: Plan) -> None:
    """Write a planned migration: each record atomically, arrays moved before the record that names them."""
    for change in plan.notes_added:
        store.write_json_atomic(change.target, change.record)
    for change in plan.rekeyed:
        if change.arrays:
            change.arrays[0].rename(change.arrays[1])
        store.write_json_atomic(change.target, change.record)
        change.source.unlink()


def add_row_notes(results_dir: Path) -> int:
    """Add ``notes.nominal_sparsity`` to every prune-finetune record under ``results_dir``; return how many changed."""
    plan = plan_folder(results_dir)
    apply(Plan(plan.folder, notes_added=plan.notes_added))
    return len(plan.notes_added)


def rekey_run_settings(results_dir: Path) -> tuple[int, list[str]]:
    """Move the run settings out of every MNIST record's config and re-key it; return how many were
    re-keyed and the files left as they were because a record already holds their new key."""
    plan = plan_folder(results_dir)
    apply(Plan(plan.folder, rekeyed=plan.rekeyed))
    return len(plan.rekeyed), plan.left


def check_folder(folder: Path) -> None:
    """A results folder to migrate must exist and hold records/ (bad input otherwise)."""
    if not folder.exists():
        raise UserError(f"results folder {folder} does not exist; pass a folder that `python -m benchmarks run` "
                        "wrote (it holds records/)")
    if not folder.is_dir():
        raise UserError(f"{folder} is a file, not a results folder; pass the folder that holds records/")
    if not paths.records_dir(folder).is_dir():
        raise UserError(f"{folder} holds no records/ folder; pass a results folder (the one holding records/), "
                        f"e.g. {folder / 'results'}")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        raise UserError(f"{message}; name one or more results folders, e.g. python -m benchmarks.migrate results")


def main(argv: list[str]) -> int:
    """Migrate each results folder named on the command line; 0 done, 1 a write failed, 2 bad input."""
    parser = _Parser(prog="python -m benchmarks.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="RESULTS_DIR")
    try:
        folders = parser.parse_args(argv).folders
        for folder in folders:
            check_folder(folder)
        plans = [plan_folder(folder) for folder in folders]  # every folder read before any is written
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for plan in plans:
        try:
            apply(plan)
        except OSError as exc:
            print(f"error: migrating {plan.folder} failed ({exc.strerror or exc}); the records written so far are "
                  "whole and a rerun finishes the rest: free some space or fix the folder's permissions, then "
                  "rerun", file=sys.stderr)
            return 1
        _summary(plan)
    return 0


def _summary(plan: Plan) -> None:
    """What a folder's migration did, and a note per record it left alone."""
    print(f"{plan.folder}: {len(plan.notes_added)} record(s) given notes.nominal_sparsity")
    print(f"{plan.folder}: {len(plan.rekeyed)} MNIST record(s) re-keyed without the run settings (chunk, threads)"
          + (f"; left as they were, their new key being taken: {', '.join(plan.left)}" if plan.left else ""))
    for name, why in plan.skipped.items():
        print(f"note: {plan.folder / 'records' / name}: left as it was, it cannot be migrated ({why})",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
