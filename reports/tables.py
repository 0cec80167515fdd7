"""A leaderboard ``Board`` as text: GitHub Markdown (reports.toolkit.table) or an HTML fragment (jinja2 template)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports import claims, compare, paper, stats
from reports.html import template
from reports.leaderboard import ALL_COLLAPSED_NOTE, EQUIV_SHARE, STATUS_WORD, Board, Column, Entry, Row, _footnote
from reports.toolkit import md_code, md_link_target, md_text, model_name, table

DIGITS = 3  # metrics, as the paper prints them
SPARSITY_DIGITS = 4
MATCH_MARK = "✓"
SAME_MARK = "≈"  # equivalent to dense within the column's margin (two one-sided tests on the paired bootstrap)
UNCLEAR_MARK = "n.d."  # not distinguishable from dense, equivalence not shown either
UNRANKED = "not ranked"  # header of a column that is not admissible
COLLAPSE_MARK = "⊘"
# How each record metric is named in a column header (the column title names the task).
METRIC_NAMES = {"accuracy": "accuracy", "pearson": "Pearson r", "spearman": "Spearman ρ", "f1": "F1",
                "roc_auc": "ROC AUC", "mlm_accuracy": "accuracy", "mlm_ppl": "perplexity", "drift_cosine": "cosine",
                "matthews": "MCC"}
DENSE_LABEL = "dense"
DENSE_NOTE = "dense: the unpruned model (the paper labels it full-base)"
SPARSITY_NOTE = ("achieved sparsity: the measured fraction of exact zeros among the weights of the encoder's "
                 "prunable linear layers (embeddings, pooler and task heads are never pruned and not counted)")
COMPARE_HEADING = "Compared with dense and the baselines"
CLAIMS_SKIPPED = ("The paper's claims are not checked here: this table has none of the rows they speak about "
                  "(global, random, upper and lower rows at shared sparsities).")
APART_HEADING = "Published values (not ranked; the paper's finetune protocol on bert-base-uncased)"


@dataclass(frozen=True)
class Figure:
    """A plot to show under the table: ``src`` is a relative path (Markdown) or a data: URI (HTML)."""

    caption: str
    src: str
    width: int = 640
    height: int = 400


def _num(value: float, digits: int = DIGITS) -> str:
    return f"{value:.{digits}f}"


def _diff(value: float) -> str:
    return f"{value:+.{DIGITS}f}"


def _bounds(ci: tuple, value: float) -> str:
    """'[0.790, 0.830]': the value's digits, so an interval never seems to exclude its own value."""
    return f"[{ci[0]:.{DIGITS}f}, {ci[1]:.{DIGITS}f}]"


def title(board: Board) -> str:
    """The board's title, naming its protocol."""
    return f"{board.title} · {board.protocol} protocol"


def bucket_name(bucket: float, rows: list[Row]) -> str:
    """How a bucket is titled: 'dense' or the nominal global sparsity."""
    return "dense" if all(r.dense for r in rows) else f"sparsity {bucket:g}"


def legend(board: Board, escape: Callable[[str], str] = str) -> str:
    """One paragraph explaining intervals, bold, marks and the matching criteria (``escape``: for the protocol,
    the one user string in it)."""
    entries = [e for r in board.rows for e in r.entries.values()]
    parts = [f"Protocol: {escape(board.protocol)}. Rows grouped by nominal global sparsity (upper/lower rates prune "
             "half the layers, so upper-0.6 sits with full-0.3)."]
    if any(e.ci for e in entries):
        parts.append(f"[lo, hi]: 95% percentile bootstrap interval ({stats.RESAMPLES:,} resamples of the evaluation "
                     "examples, MLM blocks for MLM, and of seeds when there are several; docs/statistics.md).")
    parts.append("baseline row: each column's strongest trivial predictor on the same evaluation units (majority "
                 "class; always positive for F1; 0 for correlations; 0.5 for ROC AUC; for MLM the most frequent "
                 "token and a unigram model), with its interval. A column is ranked only when dense beats it (95% "
                 f"paired interval of the gap above 0); a column marked '{UNRANKED}' keeps its numbers but has no "
                 "bold, ≈ or n.d. and no claim comparisons (its footnote says why).")
    parts.append("Bold: best in its bucket and ranked column (lowest for perplexity) only where the 95% paired "
                 "bootstrap interval of its difference to the runner-up excludes zero; cells without per-example "
                 "arrays, collapsed cells and partial cells are never bold.")
    if any(len(e.values) > 1 for e in entries):
        parts.append("Cells show mean ± sample std over seeds.")
    if any(e.reps is not None for e in entries):
        parts.append(f"{SAME_MARK}: equivalent to dense within the column's margin ({EQUIV_SHARE:g} of dense's gap "
                     "above the baseline): the 95% paired interval of the row minus dense lies inside ± the margin "
                     f"(two one-sided tests). {UNCLEAR_MARK}: not distinguishable from dense (that interval contains "
                     "0) but not shown equivalent either: the data cannot tell.")
    if any(e.collapsed for e in entries):
        parts.append(f"{COLLAPSE_MARK}: collapsed, no better than a predictor that ignores its input (judged "
                     "against the label distribution: balanced accuracy, ROC AUC or correlation whose 95% interval "
                     "contains its label-blind level); never bold and never like dense.")
    if len(board.seeds) > 1 and any(e.reps is None and e.values for e in entries):
        parts.append(f"{MATCH_MARK} matching (lottery-ticket criterion, cells without arrays): the row's mean is no "
                     "worse than the dense row's mean minus one standard deviation of the dense row over seeds.")
    na = any(e.status == "na" for e in entries)
    parts.append("Marks: missing (no record yet), skipped (data unavailable), failed (the cell raised), "
                 "unreadable (corrupt record)" + (", n/a (results in the task's other column)" if na else "")
                 + "; see the numbered notes.")
    if board.paper_inline:
        parts.append(f"paper: published value ({paper.PAPER_CITATION}); Δ = ours minus paper; never ranked with ours.")
    return " ".join(parts)


def counts_text(board: Board) -> str:
    """'18 cells: 16 ok, 1 failed, 1 missing'."""
    c = board.counts
    rest = [f"{c[k]} {k}" for k in ("ok", "failed", "skipped", "missing") if c.get(k)]
    return f"{c['cells']} cells: " + ", ".join(rest or ["none"])


def display_model(board: Board) -> str:
    """The board's model as reports name it: a local folder by its name, never its path."""
    return model_name(board.model, board.model_identity)


def model_id(board: Board) -> str:
    """A short identity: the weights' sha256 prefix (local) or the hub revision."""
    ident = board.model_identity
    if ident.get("weights_sha256"):
        return f"weights sha256 {ident['weights_sha256'][:12]}"
    if ident.get("revision"):
        return f"revision {ident['revision']}"
    return ""


def metric_name(metric: str) -> str:
    """The name of a record metric as a header shows it ('pearson' -> 'Pearson r'; split prefixes kept apart)."""
    parsed = stats.split_metric(metric)
    base = metric[len(parsed[0]):] if parsed and metric.startswith(parsed[0]) else metric
    return METRIC_NAMES.get(base, METRIC_NAMES.get(metric, base.replace("_", " ")))


def column_text(column: Column, protocol: str) -> str:
    """'STSB · Pearson r · zeroshot': task, metric (unless the title names it already), protocol."""
    name = metric_name(column.metric)
    text = column.title if name.lower() in column.title.lower() else f"{column.title} · {name}"
    return f"{text} · {protocol}"



def evaluation_text(board: Board) -> str:
    """'evaluated examples: MRPC 408 · STS-B 1,500 …', plus the subset the recipe asked for, if any."""
    titles: dict[str, str] = {}
    for column in board.columns:  # the task's first column names it (the drift column comes last)
        titles.setdefault(column.task, column.title.split(" (")[0])
    parts = [f"{titles.get(task, task)} {'/'.join(f'{n:,}' for n in sizes)}"
             for task, sizes in board.eval_sizes.items()]
    text = f"evaluated examples: {' · '.join(parts)}" if parts else ""
    if board.eval_limit is not None:
        text += (" · " if text else "") + (f"**subset**: at most {board.eval_limit:,} examples of each dev set "
                                           f"(recipe.eval_limit), not the whole dev sets")
    return text


def headers(board: Board) -> list[dict]:
    """Header cells: method, one per column (metric named, with its footnote), achieved sparsity."""
    out = [{"text": "method", "notes": [], "title": None}]
    for column in board.columns:
        notes = [board.footnotes.index(column.note) + 1] if column.note else []
        text = column_text(column, board.protocol)
        if column in board.collapsed_columns:
            notes.append(board.footnotes.index(ALL_COLLAPSED_NOTE) + 1)
            text += f" {COLLAPSE_MARK}"
        if column in board.chance_notes:
            notes.append(board.chance_notes[column])
            text += f" ({UNRANKED})"
        arrow = "higher is better" if column.higher_is_better else "lower is better"
        out.append({"text": text, "notes": notes,
                    "title": f"{column.task}: {column.metric}, {arrow}, {board.protocol} protocol"})
    out.append({"text": "achieved sparsity", "notes": [_footnote(board.footnotes, SPARSITY_NOTE)],
                "title": "mean measured global sparsity of the row's records"})
    return out


def cell_view(entry: Entry, column: Column) -> dict:
    """What one cell shows: value, std, marks, notes and the paper's value, as strings."""
    view = {"value": None, "sd": None, "ci": None, "matching": entry.matching, "same": entry.equivalent,
            "unclear": entry.indistinct,
            "collapsed": entry.collapsed, "lead": None, "word": STATUS_WORD.get(entry.status, entry.status),
            "notes": list(entry.notes), "paper": None, "diff": None, "diff_class": "", "sort": ""}
    if entry.values:
        view["value"] = _num(entry.mean)
        view["sd"] = _num(entry.std) if entry.std is not None else None
        view["ci"] = _bounds(entry.ci, entry.mean) if entry.ci else None
        view["sort"] = repr(round(entry.mean, 12))
    if entry.lead:
        runner, lo, hi = entry.lead
        view["lead"] = (f"better than {runner}: paired 95% interval of the difference "
                        f"[{lo:+.{DIGITS}f}, {hi:+.{DIGITS}f}]")
    if entry.paper is not None:
        view["paper"] = _num(entry.paper)
        if entry.diff is not None:
            better = entry.diff >= 0 if column.higher_is_better else entry.diff <= 0
            view["diff"] = _diff(entry.diff)
            view["diff_class"] = "pos" if better else "neg"
    classes = ["best"] if entry.best else []
    classes += ["collapsed"] if entry.collapsed else []
    if not entry.values:
        classes += ["status", entry.status]
    elif entry.status == "partial":
        classes.append("partial")
    view["classes"] = " ".join(classes)
    return view


def baseline_view(board: Board) -> list[str] | None:
    """The baseline row's cells ('majority class 0.684 [0.640, 0.728]'), or None when no column has one."""
    cells = []
    for column in board.columns:
        base = board.column_baselines.get(column)
        if base is None or base.name is None:
            cells.append("")
        elif base.value is None:
            cells.append(f"{base.name}: none")
        else:
            ci = f" {_bounds(base.ci, base.value)}" if base.ci and base.ci[0] != base.ci[1] else ""
            cells.append(f"{base.name} {_num(base.value)}{ci}")
    return cells if any(cells) else None


def shown_label(row: Row) -> str:
    """The label a board shows for ``row``: dense as "dense" (the paper's full-base), every other row as itself."""
    return DENSE_LABEL if row.dense else row.label


def row_view(row: Row, board: Board) -> dict:
    """One table row's cells in column order."""
    achieved = row.achieved
    return {
        "label": shown_label(row),
        "label_notes": [_footnote(board.footnotes, DENSE_NOTE)] if row.dense else [],
        "cells": [cell_view(row.entries[c], c) for c in board.columns],
        "sparsity": _num(achieved, SPARSITY_DIGITS) if achieved is not None else "missing",
        "sparsity_sort": repr(round(achieved, 12)) if achieved is not None else "",
    }


def paper_apart_view(board: Board) -> dict | None:
    """The paper's rows for another model's suite: a separate, unranked table."""
    if not board.paper_apart:
        return None
    titles = list(paper.PAPER_COLUMNS)
    rows = [[row["label"], f"Fig {row['figure']}"] + [_num(row[paper.PAPER_COLUMNS[t]]) for t in titles]
            for row in board.paper_apart]
    return {"headers": ["method", "figure"] + titles, "rows": rows}


def paper_apart_note(board: Board) -> str:
    """Why the published values sit apart."""
    return (f"{paper.PAPER_CITATION}, on bert-base-uncased. This suite ran on {display_model(board)}, so the published "
            "values are listed for orientation only, not compared or ranked; rows whose labels occur in this suite.")


def claims_apply(board: Board) -> bool:
    """True when the paper's claims speak about some rows of this board (admissible columns or not: the section
    then says which columns were left out and why)."""
    return claims.speaks_about(board)


def board_view(board: Board, figures: list[Figure] = ()) -> dict:
    """Everything the templates need, as strings."""
    heads = headers(board)  # first: header and row footnotes are numbered before the notes list is read
    buckets = [{"key": f"{b:g}", "name": bucket_name(b, rows), "rows": [row_view(r, board) for r in rows]}
               for b, rows in board.buckets]
    comparison = compare.section_view(board, board.baselines or None)
    return {
        "title": title(board),
        "protocol": board.protocol,
        "description": board.description,
        "model": display_model(board),
        "model_id": model_id(board),
        "scale": board.scale,
        "seeds": ", ".join(str(s) for s in board.seeds),
        "counts": counts_text(board),
        "evaluation": evaluation_text(board),
        "headers": heads,
        "buckets": buckets,
        "comparison": comparison,
        "comparison_note": compare.section_note(comparison) if comparison else "",
        "compare_heading": COMPARE_HEADING,
        "baseline": baseline_view(board),
        "legend": legend(board),
        "footnotes": board.footnotes,
        "paper_apart": paper_apart_view(board),
        "paper_apart_note": paper_apart_note(board),
        "apart_heading": APART_HEADING,
        "claims": claims.section_view(board) if claims_apply(board) else None,
        "claims_skipped": CLAIMS_SKIPPED,
        "figures": [{"src": f.src, "alt": f.caption, "caption": f.caption, "width": f.width, "height": f.height}
                    for f in figures],
    }


# -- Markdown -----------------------------------------------------------------------------------------

def _md_notes(notes: list[int]) -> str:
    return "".join(f"[{n}]" for n in notes)


def md_cell(c: dict) -> str:
    """A cell as Markdown text: '**0.853 ± 0.004** [0.84, 0.86] ≈[2] · paper 0.857 (Δ -0.004)'."""
    if c["value"] is None:
        text = c["word"]
    else:
        text = c["value"] + (f" ± {c['sd']}" if c["sd"] else "")
        text = f"**{text}**" if "best" in c["classes"].split() else text
        text += f" {c['ci']}" if c["ci"] else ""
        text += f" {MATCH_MARK}" if c["matching"] else ""
        text += f" {SAME_MARK}" if c["same"] else ""
        text += f" {UNCLEAR_MARK}" if c["unclear"] else ""
        text += f" {COLLAPSE_MARK}" if c["collapsed"] else ""
    text += _md_notes(c["notes"])
    if c["paper"] is not None:
        text += f" · paper {c['paper']}" + (f" (Δ {c['diff']})" if c["diff"] is not None else "")
    return text


def board_markdown(board: Board, figures: list[Figure] = ()) -> str:
    """The leaderboard as GitHub-flavoured Markdown (aligned, so it also reads in a terminal)."""
    v = board_view(board, figures)
    head = ["bucket"] + [md_text(h["text"]) + _md_notes(h["notes"]) for h in v["headers"]]
    body = [[b["name"], md_text(r["label"]) + _md_notes(r["label_notes"])] + [md_cell(c) for c in r["cells"]]
            + [r["sparsity"]] for b in v["buckets"] for r in b["rows"]]
    if v["baseline"]:
        body.insert(0, ["baseline", "trivial baseline"] + v["baseline"] + [""])
    meta = f"model {md_code(v['model'])}" + (f" ({v['model_id']})" if v["model_id"] else "")
    meta += f" · scale {md_code(v['scale'])} · seeds {md_text(v['seeds'])} · {v['counts']}"
    parts = [f"# {md_text(v['title'])}", md_text(v["description"], block=True), meta, v["evaluation"],
             table(body, head, "md", escape=False), legend(board, md_text)]
    if v["footnotes"]:
        parts.append("Notes:\n\n" + "\n".join(f"{i}. {md_text(text)}" for i, text in enumerate(v["footnotes"], 1)))
    if v["comparison"]:
        parts.append(f"## {v['compare_heading']}\n\n{v['comparison_note']}\n\n"
                     + table([[md_text(r[0]), md_text(r[1]), *r[2:]] for r in v["comparison"]["rows"]],
                             [md_text(h) for h in v["comparison"]["headers"]], "md", escape=False))
    parts.append(claims_markdown(v["claims"]) if v["claims"] else v["claims_skipped"])
    if v["paper_apart"]:
        apart = v["paper_apart"]
        parts.append(f"## {APART_HEADING}\n\n" + md_text(v["paper_apart_note"], block=True) + "\n\n"
                     + table(apart["rows"], apart["headers"], "md"))
    if figures:
        parts.append(f"## Metric against achieved sparsity ({md_text(v['protocol'])} protocol)\n\n"
                     + "\n".join(f"![{md_text(f.caption)}]({md_link_target(f.src)})" for f in figures))
    return "\n\n".join(p for p in parts if p) + "\n"


def claims_markdown(view: dict) -> str:
    """The claims sections (our records, then the paper's table) as Markdown."""
    parts = [f"## The paper's claims, checked on these records ({md_text(view['protocol'])} protocol)",
             view["rule"], view["legend"], f"**{view['ours_summary']}**"]
    parts += _claims_md(view["ours"])
    parts += ["## The paper's claims, checked on the paper's own table (finetune protocol, bert-base-uncased)",
              view["paper_note"], f"**{view['paper_summary']}**"]
    parts += _claims_md(view["paper"])
    return "\n\n".join(parts)


def _claims_md(results: list[dict]) -> list[str]:
    parts = []
    for i, c in enumerate(results, 1):
        parts.append(f"### {i}. {c['text']}\n\nTested: {c['how']}\n\nVerdict: **{c['verdict']}** · {c['count']}")
        if c["excluded"]:
            parts.append(f"Columns left out (not admissible): {c['excluded']}")
        if c["tasks"]:
            parts.append(table(c["tasks"], c["task_headers"], "md"))
        if c["rows"]:
            # user strings (row labels, column titles) escaped; the effects' intervals are ours
            rows = [[row[0], md_text(row[1]), *row[2:]] for row in c["rows"]]
            parts.append(table(rows, [md_text(h) for h in c["headers"]], "md", escape=False))
    return parts


def board_html(board: Board, figures: list[Figure] = ()) -> str:
    """The leaderboard as an HTML fragment (put it in a page with ``reports.render.html_document``)."""
    return template("leaderboard.html.j2").render(v=board_view(board, figures))
