"""Does one protocol's board predict another's? Rank correlations of the rows' scores under two protocols.

For each task of a prune-finetune suite, the rows (method at a rate) present under both protocols are scored
by the task's headline metric (``notes.headline``) under each. Spearman's rho and Kendall's tau (scipy)
between the two columns of scores come with a bootstrap interval that resamples both the evaluation
examples (each row's score recomputed on the same resamples, ``reports.stats.replicates``) and the rows
(drawn with replacement). The first protocol's drift to dense (``drift_cosine``) is compared with the
second protocol's scores the same way. numpy/scipy/matplotlib only: no torch (tests/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import predictions, store
from benchmarks.errors import UserError
from reports import stats, toolkit

DRIFT = "drift_cosine"
# MLM ignores the protocol (the same pass under all of them): comparing it would report a trivial rho of 1.
SKIP_TASKS = ("mlm",)
ROW_SEED = 20222  # the rows' bootstrap draws (fixed: the same records give the same intervals)
WORST = 3  # rows listed where the protocols disagree most


@dataclass
class Scores:
    """One protocol's per-row score of one task: the point value and bootstrap replicates (examples resampled)."""

    value: dict  # row label -> metric on all examples, mean over seeds
    replicates: dict  # row label -> (RESAMPLES,) replicates
    metric: str


def parse_compare(items: list[str]) -> list[tuple[str, Path]]:
    """``PROTOCOL=RESULTS`` pairs from the command line (at least two, names distinct, folders existing)."""
    pairs = []
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--compare {item!r} is not PROTOCOL=RESULTS; e.g. --compare "
                            f"zeroshot=published/minilm-l6-bert-lowsparsity-zeroshot")
        if not (Path(folder) / "records").is_dir():
            raise UserError(f"--compare {item!r}: {folder} has no records/ folder; name a results folder of a run")
        pairs.append((name, Path(folder)))
    names = [n for n, _ in pairs]
    if len(pairs) < 2 or len(set(names)) != len(names):
        raise UserError("--compare needs two or more distinct PROTOCOL=RESULTS pairs; e.g. --compare zeroshot=A "
                        "probe=B")
    return pairs


def protocol_scores(results: Path, protocol: str, tasks: list[str]) -> dict[str, dict[str, Scores]]:
    """{task: {"headline": Scores, "drift": Scores or None}} of the records of ``protocol`` under ``results``."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for record in store.load_records(results).records.values():
        config, notes = record.get("config", {}), record.get("notes", {})
        if notes.get("protocol", "finetune") != protocol or config.get("task") not in tasks:
            continue
        if record.get("status", "ok") != "ok" or not record.get("metrics"):
            continue
        grouped.setdefault((config["task"], config["label"]), []).append(record)
    out: dict[str, dict] = {}
    for (task, label), records in sorted(grouped.items()):
        records.sort(key=lambda r: r["config"]["seed"])
        arrays = [predictions.load(results, r) for r in records]
        headline = records[0]["notes"].get("headline")
        for name, metric in (("headline", headline), ("drift", DRIFT)):
            per_seed = [stats.cell_arrays(a, metric) for a in arrays]
            if metric is None or any(a is None for a in per_seed):
                continue
            scores = out.setdefault(task, {}).setdefault(name, Scores({}, {}, metric))
            scores.value[label] = float(np.mean([stats.value(a, metric) for a in per_seed]))
            scores.replicates[label] = stats.replicates(per_seed, metric)
    return out


def rank_correlation(a: Scores, b: Scores) -> dict | None:
    """Spearman and Kendall between two score columns over their common rows, with bootstrap intervals."""
    from scipy.stats import kendalltau, spearmanr

    rows = sorted(set(a.value) & set(b.value))
    if len(rows) < 3:
        return None
    x, y = np.array([a.value[r] for r in rows]), np.array([b.value[r] for r in rows])
    reps_x = np.stack([a.replicates[r] for r in rows])  # (rows, resamples)
    reps_y = np.stack([b.replicates[r] for r in rows])
    resamples = reps_x.shape[1]
    picks = np.random.default_rng([ROW_SEED, len(rows)]).integers(0, len(rows), size=(resamples, len(rows)))
    columns = np.arange(resamples)[:, None]
    xs, ys = reps_x[picks, columns], reps_y[picks, columns]  # (resamples, rows drawn)
    rho, tau = spearman_rows(xs, ys), kendall_rows(xs, ys)
    rank_x, rank_y = _ranks(x), _ranks(y)
    gaps = sorted(zip(np.abs(rank_x - rank_y), rows, rank_x, rank_y), key=lambda t: (-t[0], t[1]))
    return {"rows": rows, "x": x, "y": y, "spearman": float(spearmanr(x, y)[0]), "kendall": float(kendalltau(x, y)[0]),
            "spearman_ci": stats.interval(rho), "kendall_ci": stats.interval(tau),
            "disagree": [(label, int(rx), int(ry)) for gap, label, rx, ry in gaps[:WORST] if gap > 0]}


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of two (resamples, n) matrices (average ranks for ties, as scipy); nan where
    a row is constant."""
    from scipy.stats import rankdata

    return _pearson_rows(rankdata(x, axis=1), rankdata(y, axis=1))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of two (resamples, n) matrices (as scipy.stats.kendalltau); nan where a row
    is constant."""
    i, j = np.triu_indices(x.shape[1], k=1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    denom = np.sqrt(np.sum(sx != 0, axis=1) * np.sum(sy != 0, axis=1).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.sum(sx * sy, axis=1) / denom, np.nan)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.sum(x * y, axis=1) / denom, np.nan)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = best (highest score); ties share the mean rank."""
    from scipy.stats import rankdata

    return rankdata(-values)


def compare(pairs: list[tuple[str, Path]], tasks: list[str]) -> list[dict]:
    """Every comparison: for each task and each later protocol, the first protocol's headline and drift against it."""
    tasks = [t for t in tasks if t not in SKIP_TASKS]
    (base_name, base_dir), others = pairs[0], pairs[1:]
    base = protocol_scores(base_dir, base_name, tasks)
    found = []
    for name, folder in others:
        other = protocol_scores(folder, name, tasks)
        for task in tasks:
            if "headline" not in base.get(task, {}) or "headline" not in other.get(task, {}):
                continue
            target = other[task]["headline"]
            for what, scores in ((f"{base_name} {base[task]['headline'].metric}", base[task]["headline"]),
                                 (f"{base_name} drift to dense", base[task].get("drift"))):
                result = rank_correlation(scores, target) if scores is not None else None
                if result is not None:
                    found.append({"task": task, "x_name": what, "y_name": f"{name} {target.metric}", **result})
    return found


def _interval_text(value: float, bounds: tuple[float, float]) -> str:
    return f"{value:.2f} [{bounds[0]:.2f}, {bounds[1]:.2f}]"


def scatter(item: dict, stem: Path) -> Path:
    """A scatter of the rows' two scores (labelled), written as PNG and SVG; returns the PNG."""
    with toolkit.style():
        fig = toolkit.new_figure(figsize=(4.8, 4.0))
        ax = fig.add_subplot()
        ax.scatter(item["x"], item["y"], s=14)
        for label, x, y in zip(item["rows"], item["x"], item["y"]):
            ax.annotate(label, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(item["x_name"])
        ax.set_ylabel(item["y_name"])
        ax.set_title(f"{item['task']}: Spearman {item['spearman']:.2f}, Kendall {item['kendall']:.2f}")
        return toolkit.write_figure(fig, stem)["png"]


def render(suite_name: str, pairs: list[tuple[str, Path]], items: list[dict], out: Path | None) -> str:
    """The comparison as Markdown: one table of correlations, the disagreeing rows, a scatter per comparison."""
    names = " vs ".join(name for name, _ in pairs)
    lines = [f"# {suite_name}: protocols compared ({names})", "",
             "Rank correlation between the rows' scores under two protocols, per task (95% bootstrap intervals "
             "over evaluation examples and rows; reports/protocol_compare.py). Sources: "
             + ", ".join(f"{name} = `{folder}`" for name, folder in pairs) + ".", ""]
    if not items:
        return "\n".join([*lines, "No task has three or more rows under both protocols.", ""])
    rows = [[it["task"], it["x_name"], it["y_name"], len(it["rows"]), _interval_text(it["spearman"], it["spearman_ci"]),
             _interval_text(it["kendall"], it["kendall_ci"]),
             "; ".join(f"{label} ({rx} vs {ry})" for label, rx, ry in it["disagree"]) or "-"] for it in items]
    lines += [toolkit.table(rows, ["task", "x", "y", "rows", "Spearman", "Kendall",
                                   "rows ranked most differently (rank under x vs y)"], "md"), ""]
    if out is not None:
        folder = out.parent / f"{out.stem}_plots"
        folder.mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(items):
            png = scatter(item, folder / f"{item['task']}-{i}")
            lines += [f"![{item['task']}: {item['x_name']} vs {item['y_name']}]({png.relative_to(out.parent)})", ""]
    return "\n".join(lines)
