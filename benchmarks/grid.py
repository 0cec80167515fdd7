"""A suite's expected grid, saved beside its records, so that a report needs no suite kind (nor torch).

The runner writes ``<results>/grids/<suite name>-<suite hash>.json`` whenever it expands a suite:
the cells (config, label and the ``info`` reports read, e.g. a row's nominal sparsity and colour)
and the leaderboard columns of each task. ``reports.render`` reads it back; the suite hash covers
every field that decides the grid (not the description), so a suite changed with ``--set``
finds no stale grid. The grid also holds the suite's fields, so ``report --results DIR`` alone
renders the grid the run saved (``saved_grids``, ``saved_suite``). A results folder written before
grids existed gets them from ``python -m benchmarks report`` with the run's suite flags once (it expands
the suite through its kind, then saves the grid) or from ``python -m benchmarks.migrate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.atomic import write_json_atomic
from benchmarks.config import Cell, Suite, canonical_json, suite_from_mapping
from benchmarks.errors import UserError

GRID_VERSION = 1


def suite_hash(suite: Suite) -> str:
    """A short sha256 of the suite fields that decide its grid (everything but the description)."""
    fields = dataclasses.asdict(suite)
    fields.pop("description", None)
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()[:12]


def grid_path(results_dir: Path, suite: Suite) -> Path:
    """Where the grid of ``suite`` lives in a results folder."""
    return Path(results_dir) / "grids" / f"{suite.name}-{suite_hash(suite)}.json"


def write_grid(results_dir: Path, suite: Suite, cells: list[Cell], columns: dict) -> Path:
    """Save the expanded cells and the task columns ({task: {title: [metric, higher is better]}})."""
    payload = {"grid_version": GRID_VERSION, "suite": suite.name, "suite_hash": suite_hash(suite),
               "suite_fields": json.loads(canonical_json(dataclasses.asdict(suite))),
               "cells": [{"key": c.key, "config": c.config, "label": c.label, "info": c.info} for c in cells],
               "columns": {task: {title: list(pair) for title, pair in cols.items()} for task, cols in columns.items()}}
    path = grid_path(results_dir, suite)
    write_json_atomic(path, payload, compact=True)  # read by reports only; committed grids travel to the GPU call
    return path


def read_grid(results_dir: Path, suite: Suite) -> tuple[list[Cell], dict] | None:
    """(cells, task columns) saved for ``suite``, or None when there is no (readable) grid for it."""
    path = grid_path(results_dir, suite)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if payload.get("grid_version") != GRID_VERSION:
        return None
    cells = [Cell(c["config"], c["label"], dict(c.get("info") or {})) for c in payload["cells"]]
    if any(c.key != saved["key"] for c, saved in zip(cells, payload["cells"])):
        return None  # a hand-edited grid: do not trust it
    columns = {task: {title: tuple(pair) for title, pair in cols.items()} for task, cols in payload["columns"].items()}
    return cells, columns


@dataclass(frozen=True)
class SavedGrid:
    """A grid file found in a results folder: its suite's name and hash, the suite's fields (None in grids
    saved before they held them) and how many cells it has."""

    path: Path
    name: str
    hash: str
    fields: dict | None
    cells: int

    def describe(self) -> str:
        return f"{self.name} ({self.cells} cells, {self.path.name})"


def saved_grids(results_dir: Path) -> list[SavedGrid]:
    """Every readable grid under ``<results_dir>/grids/``, sorted by file name."""
    out = []
    for path in sorted((Path(results_dir) / "grids").glob("*.json")):
        try:
            payload = json.loads(path.read_text())
            out.append(SavedGrid(path, payload["suite"], payload["suite_hash"], payload.get("suite_fields"),
                                 len(payload["cells"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable or not a grid: as if absent
    return out


def saved_suite(grid: SavedGrid) -> Suite:
    """The suite a saved grid was expanded from (UserError when the grid predates saved suite fields)."""
    if not isinstance(grid.fields, dict):
        raise UserError(f"grid {grid.path} was saved before grids held their suite; name the suite as the run "
                        f"did (--suite {grid.name} with the run's --model/--set flags) once, which saves it anew")
    suite = suite_from_mapping(dict(grid.fields), str(grid.path))
    if suite_hash(suite) != grid.hash:
        raise UserError(f"grid {grid.path}: its suite fields do not hash to {grid.hash} (edited by hand?); "
                        f"delete it and name the suite as the run did (--suite NAME --model ... --set ...)")
    return suite
