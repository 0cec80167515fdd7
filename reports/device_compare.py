"""The same cells run twice (two machines, two devices, two library versions): how far did the numbers move?

Records of two results folders are paired by cell key. The key hashes the cell's whole config (model and its
weights sha256, method, sparsity, task, recipe, seed) and not the machine, so a pair is one cell computed twice.
For each pair: the headline metric on both sides, their difference with a 95% paired bootstrap interval over
the evaluation examples (both sides resampled with the same indices, ``reports.stats``), and how often the two
runs predict the same thing (classification: the same class; regression: Pearson's r of the two prediction
vectors). The interval says whether the move is larger than re-drawing the dev set would make it; it does not
make the move a method effect. numpy only: no torch (tests/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import predictions, store
from benchmarks.config import canonical_json
from benchmarks.errors import UserError
from reports import stats, toolkit

DIGITS = 3


def check_folder(folder: Path, flag: str) -> Path:
    """``folder`` when it holds a records/ folder; otherwise a one-line UserError naming the fix."""
    folder = Path(folder)
    if not (folder / "records").is_dir():
        raise UserError(f"{flag} {folder} has no records/ folder; name the results folder of a run")
    return folder


def same_cells(a: Path, b: Path, ignoring: tuple[str, ...] = ()) -> list[tuple[dict, dict]]:
    """(record in a, record in b) for every cell finished (status ok) in both folders, sorted by task and row.

    Paired by cell key; with ``ignoring``, by the config without those top-level fields instead (the same grid
    on two models, e.g. a model and its bfloat16-rounded copy: ``ignoring=("model",)``)."""
    ra, rb = (_by_pairing(store.load_records(folder).records, ignoring, flag)
              for folder, flag in ((a, "--results"), (b, "--same-cells")))
    ok = [(ra[k], rb[k]) for k in sorted(set(ra) & set(rb))
          if ra[k].get("status") == "ok" == rb[k].get("status") and ra[k].get("metrics") and rb[k].get("metrics")]
    return sorted(ok, key=lambda p: (p[0]["config"]["task"], p[0]["config"]["label"], p[0]["config"]["seed"]))


def _by_pairing(records: dict[str, dict], ignoring: tuple[str, ...], flag: str) -> dict[str, dict]:
    """Records by key, or by their config's canonical JSON without the ``ignoring`` fields."""
    if not ignoring:
        return records
    known = set().union(*(r["config"] for r in records.values())) if records else set()
    unknown = sorted(set(ignoring) - known)
    if unknown:
        raise UserError(f"--pair-ignoring {unknown[0]}: no record's config has that field; "
                        f"name one of {', '.join(sorted(known))}")
    paired: dict[str, dict] = {}
    for record in records.values():
        reduced = canonical_json({k: v for k, v in record["config"].items() if k not in ignoring})
        if reduced in paired:
            raise UserError(f"--pair-ignoring {','.join(ignoring)}: two records in {flag}'s folder "
                            f"({record['config']['task']} {record['config']['label']}) then have the same config; "
                            "ignore fewer fields")
        paired[reduced] = record
    return paired


def agreement(x: dict, y: dict, regression: bool) -> float:
    """Share of examples given the same class by both runs, or Pearson's r of their predictions (regression)."""
    if predictions.PRED not in x or predictions.PRED not in y:  # a score-only metric (ROC AUC) has no class
        return float("nan")
    px, py = np.asarray(x[predictions.PRED], dtype=float), np.asarray(y[predictions.PRED], dtype=float)
    if regression:
        return float(np.corrcoef(px, py)[0, 1]) if np.ptp(px) > 0 and np.ptp(py) > 0 else float("nan")
    return float(np.mean(px == py))


def device_of(record: dict) -> str:
    """The record's device, with the CPU's model and torch's kernel set where the record names them."""
    prov = record.get("provenance", {})
    cpu = prov.get("cpu") or {}
    if str(prov.get("device", "")).startswith("cpu") and cpu:
        return f"{prov['device']}, {cpu.get('model')}, {cpu.get('torch_capability')}"
    return str(prov.get("device"))


def cell_difference(a: Path, ra: dict, b: Path, rb: dict) -> dict | None:
    """One pair's headline metric on each side, b minus a with its paired interval, and the agreement; None
    when the metric cannot be recomputed from both sides' per-example arrays."""
    metric = ra.get("notes", {}).get("headline")
    parsed = stats.split_metric(metric) if metric else None
    xa = stats.cell_arrays(predictions.load(a, ra), metric) if parsed else None
    xb = stats.cell_arrays(predictions.load(b, rb), metric) if parsed else None
    if xa is None or xb is None or stats.units(xa) != stats.units(xb):
        return None
    va, vb = stats.value(xa, metric), stats.value(xb, metric)
    bounds = stats.paired_interval(stats.replicates([xb], metric), stats.replicates([xa], metric))
    config = ra["config"]
    return {"task": config["task"], "label": config["label"], "seed": config["seed"], "metric": metric,
            "a": va, "b": vb, "diff": vb - va, "bounds": bounds,
            "agreement": agreement(xa, xb, parsed[1].regression), "regression": parsed[1].regression,
            "devices": (device_of(ra), device_of(rb))}


def compare_folders(a: Path, b: Path, ignoring: tuple[str, ...] = ()) -> list[dict]:
    """``cell_difference`` of every cell finished in both folders (cells without arrays left out)."""
    found = (cell_difference(a, ra, b, rb) for ra, rb in same_cells(a, b, ignoring))
    return [item for item in found if item is not None]


def summary(items: list[dict]) -> list[list]:
    """Per task: pairs, median and largest |b - a|, pairs whose interval excludes 0, median agreement."""
    rows = []
    for task in sorted({it["task"] for it in items}):
        sub = [it for it in items if it["task"] == task]
        moves = np.abs([it["diff"] for it in sub])
        rows.append([task, sub[0]["metric"], len(sub), f"{np.median(moves):.{DIGITS}f}", f"{moves.max():.{DIGITS}f}",
                     sum(stats.excludes_zero(it["bounds"]) for it in sub),
                     _agreement_text([it["agreement"] for it in sub])])
    return rows


def _agreement_text(values: list[float]) -> str:
    """The median agreement, or '-' where no pair has one (a score-only metric such as MLM token accuracy)."""
    finite = [v for v in values if np.isfinite(v)]
    return f"{np.median(finite):.{DIGITS}f}" if finite else "-"


def _signed(v: float) -> str:
    return f"{v + 0.0:+.{DIGITS}f}".replace("-0.000", "+0.000")  # no "-0.000" for a move that rounds to nothing


def _devices(items: list[dict], side: int) -> str:
    return ", ".join(sorted({str(it["devices"][side]) for it in items}))


def render(items: list[dict], a: Path, b: Path, ignoring: tuple[str, ...] = ()) -> str:
    """The comparison as Markdown: a per-task summary, then every pair."""
    fields = ", ".join(f"`{field}`" for field in ignoring)
    pairing = (f"Records paired by config, ignoring {fields} (otherwise the same method, sparsity, task, recipe and "
               "seed)" if ignoring else
               "Records paired by cell key (same model weights, method, sparsity, task, recipe and seed)")
    lines = [f"# The same cells in two folders: `{b}` against `{a}`", "",
             pairing + "; b - a with "
             "its 95% paired bootstrap interval over the evaluation examples; agreement is the share of examples "
             "given the same class, or Pearson's r of the two runs' predictions for regression "
             "(reports/device_compare.py).", ""]
    if not items:
        return "\n".join([*lines, "No cell is finished in both folders.", ""])
    lines += [f"- a: `{a}` ({_devices(items, 0)})", f"- b: `{b}` ({_devices(items, 1)})", ""]
    lines += [toolkit.table(summary(items), ["task", "metric", "pairs", "median abs(b - a)", "largest abs(b - a)",
                                             "intervals excluding 0", "median agreement"], "md"), ""]
    rows = [[it["task"], it["label"], it["seed"], it["metric"], f"{it['a']:.{DIGITS}f}", f"{it['b']:.{DIGITS}f}",
             f"{_signed(it['diff'])} [{_signed(it['bounds'][0])}, {_signed(it['bounds'][1])}]"
             + (" *" if stats.excludes_zero(it["bounds"]) else ""),
             _agreement_text([it["agreement"]])] for it in items]
    lines += [toolkit.table(rows, ["task", "row", "seed", "metric", "a", "b", "b - a [95%]", "agreement"], "md"), "",
              "`*`: the interval excludes 0 (the two runs differ by more than the dev set's sampling noise). "
              "Agreement '-': the metric has no per-example class or prediction to compare (e.g. MLM accuracy).", ""]
    return "\n".join(lines)
