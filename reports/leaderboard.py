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


def task_columns(task_name: str) -> list[tuple[str, str, bool]]:
    """(title, metric, higher is better) of each column a task fills; a task may declare several (MLM)."""
    task = TASKS.get(task_name)
    declared = getattr(task, "columns", None)
    if declared:
        return [tuple(c) for c in declared]
    return [(TASK_TITLES.get(task_name, task_name), task.headline, task.higher_is_better)]


def record_note(record: dict) -> str | None:
    """A footnote for an ok record whose numbers need a caveat (QNLI dev split, fitted MLM head)."""
    notes = record.get("notes") or {}
    task = record["config"]["task"]
    if notes.get("data_split"):
        return f"{task}: {notes['data_split']}"
    if notes.get("mlm_head") == "fitted":
        return ("MLM head fitted on the dense model with the encoder frozen (the checkpoint has none): a "
                "relative-degradation check, not comparable with pretrained-head MLM numbers")
    return None


def leaderboard_rows(suite: Suite, frame: pd.DataFrame) -> tuple[list[dict], list[tuple], list[str]]:
    """Rows (label, bucket, sparsity, per-column cell values) in grid order, the columns
    (title, task, metric, higher is better), footnotes."""
    cells = frame.attrs["cells"]
    records = frame.attrs.get("records", {})
    tasks = list(dict.fromkeys(c.config["task"] for c in cells))
    columns = [(title, task, metric, higher) for task in tasks for title, metric, higher in task_columns(task)]
    rows: dict[str, dict] = {}
    footnotes: list[str] = []
    for cell in cells:
        cfg = cell.config
        row = rows.setdefault(cfg["label"], {"label": cfg["label"], "cfg": cfg, "values": {}, "sparsity": []})
        record = records.get(cell.key)
        for title, task, metric, _ in columns:
            if task != cfg["task"]:
                continue
            values = row["values"].setdefault(title, [])
            if record is None:
                values.append(("missing", "not run yet", None))
            elif record["status"] != "ok":
                values.append((record["status"], record.get("error") or "", None))
            else:
                values.append(("ok", record["metrics"].get(metric), record_note(record)))
        if record and record["status"] == "ok" and record.get("sparsity", {}).get("global_after") is not None:
            row["sparsity"].append(record["sparsity"]["global_after"])
    buckets = sorted({nominal_sparsity(r["cfg"]) for r in rows.values() if r["cfg"]["method"] in ("global", "random")})
    for row in rows.values():
        row["bucket"] = 0.0 if row["cfg"]["method"] == "dense" else bucket_of(nominal_sparsity(row["cfg"]), buckets)
    ordered = sorted(rows.values(), key=lambda r: r["bucket"])  # stable: grid order inside a bucket
    return ordered, columns, footnotes


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def fig_table(suite: Suite, frame: pd.DataFrame, fmt: str) -> str:
    """The leaderboard as GitHub Markdown (fmt='md') or an HTML table fragment."""
    rows, columns, _ = leaderboard_rows(suite, frame)
    higher = {title: h for title, _, _, h in columns}
    notes: dict[str, int] = {}
    body = []
    best: dict[tuple, float] = {}
    for row in rows:
        for title, values in row["values"].items():
            oks = [v for status, v, _ in values if status == "ok" and v is not None]
            if oks and len(oks) == len(values):
                mean = _mean_std(oks)[0]
                sign = 1 if higher[title] else -1
                key = (row["bucket"], title)
                best[key] = max(best.get(key, -math.inf), sign * mean)
    bold = (lambda s: f"**{s}**") if fmt == "md" else (lambda s: f"<b>{s}</b>")
    for row in rows:
        line = [row["label"]]
        for title, *_ in columns:
            values = row["values"].get(title, [("missing", "not in grid", None)])
            bad = [(s, why) for s, why, _ in values if s != "ok" or why is None]
            if bad:
                status, why = bad[0]
                n = notes.setdefault(f"{status}: {why}", len(notes) + 1)
                line.append(f"{STATUS_MARK.get(status, '?')}[{n}]")
                continue
            mean, std = _mean_std([v for _, v, _ in values])
            text = f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
            sign = 1 if higher[title] else -1
            text = bold(text) if math.isclose(sign * mean, best[(row["bucket"], title)]) else text
            caveat = next((note for _, _, note in values if note), None)
            if caveat:
                text += f"[{notes.setdefault(caveat, len(notes) + 1)}]"
            line.append(text)
        spars = row["sparsity"]
        line.append(f"{sum(spars) / len(spars):.4f}" if spars else "—")
        body.append(line)
    headers = ["method"] + [title for title, *_ in columns] + ["achieved sparsity"]
    table = tabulate(body, headers=headers, tablefmt="github" if fmt == "md" else "html", disable_numparse=True)
    foot = [f"[{n}] {text}" for text, n in notes.items()]
    return table + ("\n\n" + "\n".join(foot) if foot else "")


@register_renderer("prune-finetune")
def render_prune_finetune(suite: Suite, frame: pd.DataFrame, fmt: str, out=None) -> str:
    """Render the Fig 6/7 style leaderboard for a prune-finetune suite."""
    title = f"# {suite.name}: {suite.description}\n\nmodel `{suite.model}`, scale `{suite.scale}`, seeds {list(suite.seeds)}\n\n"
    return title + fig_table(suite, frame, fmt) + "\n"
