"""The Fig 6 / Fig 7 leaderboard: rows are method labels grouped by sparsity bucket, columns tasks."""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from benchmarks.config import Suite
from benchmarks.registry import TASKS
from reports.render import register_renderer

# Column titles in the paper's order.
TASK_TITLES = {"mrpc": "MRPC", "stsb": "STSB", "qnli": "QNLI", "mnli": "MNLI", "sst2": "SST2",
               "mlm_accuracy": "MLM Accuracy", "mlm_ppl": "MLM ppl."}
STATUS_MARK = {"missing": "—", "skipped": "n/a", "failed": "✗"}


def nominal_sparsity(cfg: dict) -> float:
    """The global sparsity a row aims at (upper/lower rates cover half the layers)."""
    method, rate, opts = cfg["method"], cfg.get("sparsity"), cfg.get("options") or {}
    if method == "dense":
        return 0.0
    if method == "mixed":
        return (opts["upper"] + opts["lower"]) / 2
    if method in ("upper", "lower") and not opts.get("global_target"):
        return rate / 2
    return rate


def bucket_of(value: float, buckets: list[float]) -> float:
    """The nearest bucket (the suite's global/random rates) to a row's nominal sparsity."""
    return min(buckets, key=lambda b: (abs(b - value), b)) if buckets else value


def leaderboard_rows(suite: Suite, frame: pd.DataFrame) -> tuple[list[dict], list[str], list[str]]:
    """Rows (label, bucket, sparsity, per-task cell values) in grid order, the task columns, footnotes."""
    cells = frame.attrs["cells"]
    records = frame.attrs.get("records", {})
    tasks = list(dict.fromkeys(c.config["task"] for c in cells))
    rows: dict[str, dict] = {}
    footnotes: list[str] = []
    for cell in cells:
        cfg = cell.config
        row = rows.setdefault(cfg["label"], {"label": cfg["label"], "cfg": cfg, "values": {}, "sparsity": []})
        record = records.get(cell.key)
        values = row["values"].setdefault(cfg["task"], [])
        if record is None:
            values.append(("missing", "not run yet"))
        elif record["status"] != "ok":
            values.append((record["status"], record.get("error") or ""))
        else:
            task = TASKS.get(cfg["task"])
            values.append(("ok", record["metrics"].get(task.headline)))
            if record.get("sparsity", {}).get("global_after") is not None:
                row["sparsity"].append(record["sparsity"]["global_after"])
    buckets = sorted({nominal_sparsity(r["cfg"]) for r in rows.values() if r["cfg"]["method"] in ("global", "random")})
    for row in rows.values():
        row["bucket"] = 0.0 if row["cfg"]["method"] == "dense" else bucket_of(nominal_sparsity(row["cfg"]), buckets)
    ordered = sorted(rows.values(), key=lambda r: r["bucket"])  # stable: grid order inside a bucket
    return ordered, tasks, footnotes


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def fig_table(suite: Suite, frame: pd.DataFrame, fmt: str) -> str:
    """The leaderboard as GitHub Markdown (fmt='md') or an HTML table fragment."""
    rows, tasks, _ = leaderboard_rows(suite, frame)
    notes: dict[str, int] = {}
    body = []
    best: dict[tuple, float] = {}
    for row in rows:
        for task, values in row["values"].items():
            oks = [v for status, v in values if status == "ok" and v is not None]
            if oks and len(oks) == len(values):
                mean = _mean_std(oks)[0]
                sign = 1 if TASKS.get(task).higher_is_better else -1
                key = (row["bucket"], task)
                best[key] = max(best.get(key, -math.inf), sign * mean)
    bold = (lambda s: f"**{s}**") if fmt == "md" else (lambda s: f"<b>{s}</b>")
    for row in rows:
        line = [row["label"]]
        for task in tasks:
            values = row["values"].get(task, [("missing", "not in grid")])
            bad = [(s, why) for s, why in values if s != "ok" or why is None]
            if bad:
                status, why = bad[0]
                n = notes.setdefault(f"{status}: {why}", len(notes) + 1)
                line.append(f"{STATUS_MARK.get(status, '?')}[{n}]")
                continue
            mean, std = _mean_std([v for _, v in values])
            text = f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
            sign = 1 if TASKS.get(task).higher_is_better else -1
            line.append(bold(text) if math.isclose(sign * mean, best[(row["bucket"], task)]) else text)
        spars = row["sparsity"]
        line.append(f"{sum(spars) / len(spars):.4f}" if spars else "—")
        body.append(line)
    headers = ["method"] + [TASK_TITLES.get(t, t) for t in tasks] + ["achieved sparsity"]
    table = tabulate(body, headers=headers, tablefmt="github" if fmt == "md" else "html", disable_numparse=True)
    foot = [f"[{n}] {text}" for text, n in notes.items()]
    return table + ("\n\n" + "\n".join(foot) if foot else "")


@register_renderer("prune-finetune")
def render_prune_finetune(suite: Suite, frame: pd.DataFrame, fmt: str, out=None) -> str:
    """Render the Fig 6/7 style leaderboard for a prune-finetune suite."""
    title = f"# {suite.name}: {suite.description}\n\nmodel `{suite.model}`, scale `{suite.scale}`, seeds {list(suite.seeds)}\n\n"
    return title + fig_table(suite, frame, fmt) + "\n"
