"""Reports for the MNIST suite kinds: Tables 1 and 2 with Fig 2, recipes side by side, and Table 3."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from benchmarks.paths import report_paths, slug
from benchmarks.registry import register_renderer
from reports import toolkit
from reports.html import html_document

PAPER_FILE = Path(__file__).resolve().parent / "data" / "paper_mnist.json"
T1_LABELS = {
    "fc1_share_output": ("Weights that share an output node", "FC1"),
    "fc2_share_output": ("Weights that share an output node", "FC2"),
    "fc2_share_input": ("Weights that share an input node", "FC2"),
    "fc3_share_input": ("Weights that share an input node", "FC3"),
    "hidden1_node_io": ("Node input/output", "Hidden 1"),
    "hidden2_node_io": ("Node input/output", "Hidden 2"),
}
T2_LABELS = {
    "count": "# of nonzero input vs output weights",
    "count_excl_dead": "# of nonzero input vs output weights (excl. nodes w/ all 0s)",
    "mean": "Magnitude of nonzero input vs output weights",
    "abs_mean": "Absolute magnitude of nonzero input vs output weights",
    "frac_positive": "Fraction of nonzero weights > 0 in input vs output",
}
FIG_PROPS = (("count", "# nonzero weights"), ("mean", "mean of nonzero weights"),
             ("abs_mean", "mean |w| of nonzero weights"), ("frac_positive", "fraction of nonzero > 0"))


@functools.lru_cache(maxsize=1)
def load_paper() -> dict:
    """The paper's Tables 1-3 values (reports/data/paper_mnist.json)."""
    return json.loads(PAPER_FILE.read_text())


def paper_distance(table1: dict, table2: dict, dead_hidden1: float) -> float:
    """Distance to the paper: mean |ours - paper| over the 6 Table 1 and 10 Table 2 values and the
    fraction of hidden-1 nodes fully pruned (dead/300 vs 113/300): 17 terms, each on a [-1, 1]-ish scale."""
    paper = load_paper()
    diffs = [abs(table1[k] - v) for k, v in paper["table1"].items()]
    for layer, props in paper["table2"].items():
        diffs += [abs(table2[layer][k] - v) for k, v in props.items()]
    diffs.append(abs(dead_hidden1 - paper["dead_nodes"]["hidden1"]) / paper["dead_nodes"]["hidden1_of"])
    diffs = [d if math.isfinite(d) else 1.0 for d in diffs]  # an undefined value counts as far away
    return sum(diffs) / len(diffs)


def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _p(p) -> str:
    """A p-value: three decimals, or scientific notation below 0.001."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


# In HTML every piece is escaped Markup from reports/templates/blocks.html.j2, so pieces join with + safely.

def _table(rows: list, headers: list, fmt: str) -> str:
    if fmt == "md":
        return f"\n{toolkit.table(rows, headers, fmt)}\n\n"  # Markdown tables need blank lines around them
    return toolkit.html_table(rows, headers)


def _heading(text: str, fmt: str, level: int = 2) -> str:
    return f"{'#' * level} {toolkit.md_text(text)}\n" if fmt == "md" else toolkit.html_blocks().heading(text, level)


def _para(text: str, fmt: str) -> str:
    return f"{toolkit.md_text(text, block=True)}\n" if fmt == "md" else toolkit.html_blocks().para(text)


def _ok_records(frame) -> list[dict]:
    records = frame.attrs.get("records", {})
    out = []
    for cell in frame.attrs.get("cells", []):
        rec = records.get(cell.key)
        if rec and rec["status"] == "ok":
            out.append(rec)
    return out


def _nanmean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def _nanstd(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return float("nan")
    mean = sum(vals) / len(vals)
    return (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5


def pool_records(recs: list[dict]) -> list[dict]:
    """Merge ok records with the same label (seeds of one recipe) into one: Table 1 over all their models,
    Table 2 model 0 from the first seed, Table 2 means weighted by models, timings summed."""
    groups: dict[str, list[dict]] = {}
    for rec in recs:
        groups.setdefault(rec["label"].rsplit(" seed=", 1)[0], []).append(rec)
    pooled = []
    for label, group in groups.items():
        first = group[0]
        per_model = [t for r in group for t in r["artifacts"]["table1_per_model"]]
        dead = [d for r in group for d in r["artifacts"]["dead_nodes_per_model"]]
        weights = [len(r["artifacts"]["table1_per_model"]) for r in group]
        total = sum(weights)

        def wmean(get, group=group, weights=weights):
            vals = [(get(r), w) for r, w in zip(group, weights) if get(r) is not None and math.isfinite(get(r))]
            return sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else float("nan")

        t2_mean = {layer: {k: wmean(lambda r, layer=layer, k=k: r["artifacts"]["table2_mean"][layer][k])
                           for k in first["artifacts"]["table2_mean"][layer]} for layer in ("hidden1", "hidden2")}
        keys = list(first["artifacts"]["table1"])
        timing = {k: sum(r["notes"].get("train_timing", {}).get(k, 0.0) for r in group) for k in ("wall_s", "cpu_s")}
        pooled.append({
            "label": label,
            "config": {**first["config"], "models": total, "seeds": [r["config"]["seed"] for r in group]},
            "metrics": {"accuracy_dense": wmean(lambda r: r["metrics"]["accuracy_dense"]),
                        "accuracy_pruned": wmean(lambda r: r["metrics"]["accuracy_pruned"])},
            "notes": {"train_timing": timing, "threads": first["notes"].get("threads"), "cells": len(group)},
            "artifacts": {
                "table1": {k: _nanmean([t[k] for t in per_model]) for k in keys},
                "table1_std": {k: _nanstd([t[k] for t in per_model]) for k in keys},
                "table1_per_model": per_model,
                "table2": first["artifacts"]["table2"],
                "table2_mean": t2_mean,
                "nodes_model0": first["artifacts"]["nodes_model0"],
                "dead_nodes_per_model": dead,
            },
        })
    return pooled


def _missing(frame, fmt: str) -> str:
    records = frame.attrs.get("records", {})
    missing = [c.label for c in frame.attrs.get("cells", [])
               if c.key not in records or records[c.key]["status"] != "ok"]
    return _para(f"Cells without an ok record (run the suite): {', '.join(missing)}", fmt) if missing else ""


def table1_section(rec: dict, fmt: str) -> str:
    """Table 1: ours (mean and std over models) beside the paper."""
    art, paper = rec["artifacts"], load_paper()["table1"]
    rows = [[metric, layer, _f(art["table1"][k]), _f(art["table1_std"][k]), _f(paper[k]),
             _f(art["table1"][k] - paper[k], 3)] for k, (metric, layer) in T1_LABELS.items()]
    n = len(art["table1_per_model"])
    return (_heading("Table 1. MNIST pairwise correlations", fmt, 3)
            + _para("Pearson r of |w| over all ordered pairs (both orders, i != j) of unpruned weights; "
                    f"mean over {n} models.", fmt)
            + _table(rows, ["Metric", "Layer", "ours (mean)", "ours (std)", "paper", "ours - paper"], fmt))


def table2_section(rec: dict, fmt: str) -> str:
    """Table 2: model 0 (the paper reports one uncurated model) and the mean over models, paper beside."""
    art, paper = rec["artifacts"], load_paper()["table2"]
    rows = []
    for k, label in T2_LABELS.items():
        row = [label]
        for layer in ("hidden1", "hidden2"):
            row += [_f(art["table2"][layer][k]), _f(art["table2_mean"][layer][k]), _f(paper[layer][k])]
        rows.append(row)
    dead0 = art["table2"]["hidden1"]["dead_nodes"]
    dead_mean = art["table2_mean"]["hidden1"]["dead_nodes"]
    pd = load_paper()["dead_nodes"]
    headers = ["Metric", "Hidden 1 model 0", "Hidden 1 mean", "Hidden 1 paper",
               "Hidden 2 model 0", "Hidden 2 mean", "Hidden 2 paper"]
    return (_heading("Table 2. MNIST node correlations", fmt, 3) + _table(rows, headers, fmt)
            + _para(f"Hidden-1 nodes whose inputs and outputs are all pruned: {dead0} of 300 in model 0, "
                    f"{dead_mean:.1f} on average over models (paper: {pd['hidden1']} of {pd['hidden1_of']}). "
                    f"Hidden 2: {art['table2']['hidden2']['dead_nodes']} of 100 in model 0.", fmt))


def _recipe_text(recipe: dict) -> str:
    momentum = f" momentum={recipe['momentum']:g}" if recipe.get("momentum") else ""
    return (f"{recipe['optimizer']} lr={recipe['lr']:g}" + momentum
            + f", batch {recipe['batch_size']}, {recipe['epochs']:g} epochs, init {recipe['init']}, "
            f"inputs {recipe['input_scaling']}, {recipe['activation']}, data order {recipe['data_order']}")


def _run_text(rec: dict) -> str:
    cfg, notes, m = rec["config"], rec["notes"], rec["metrics"]
    timing = notes.get("train_timing", {})
    cells = notes.get("cells", 1)
    return (f"Recipe: {_recipe_text(cfg['recipe'])}. Pruned FC1/FC2/FC3: {cfg['prune']['fc1']:g}/"
            f"{cfg['prune']['fc2']:g}/{cfg['prune']['fc3']:g}. Test accuracy dense {m['accuracy_dense']:.4f}, "
            f"pruned {m['accuracy_pruned']:.4f} (mean over {cfg['models']} models in {cells} cell(s)). Training wall "
            f"{timing.get('wall_s', float('nan')):.0f} s, CPU {timing.get('cpu_s', float('nan')):.0f} s "
            f"(summed over cells) with {notes.get('threads')} thread(s) per process"
            + (f", trained on {notes['device']}." if notes.get("device", "cpu") != "cpu" else "."))


def fig2(rec: dict, out: Path | None, title: str) -> list[Path]:
    """Fig 2 scatterplots (input-side vs output-side node properties, model 0) as PNG and SVG beside ``out``."""
    if out is None:
        return []
    nodes = rec["artifacts"]["nodes_model0"]
    with toolkit.style():
        fig = toolkit.new_figure(figsize=(16, 7.5), dpi=110)
        axes = fig.subplots(2, 4)
        for row, layer in enumerate(("hidden1", "hidden2")):
            for col, (prop, label) in enumerate(FIG_PROPS):
                ax = axes[row, col]
                # thousands of points: drawn as an image inside the SVG (300 KB of vector circles otherwise)
                ax.scatter(nodes[layer][f"in_{prop}"], nodes[layer][f"out_{prop}"], s=8, alpha=0.6, rasterized=True)
                ax.set_xlabel(f"inputs: {label}")
                ax.set_ylabel(f"outputs: {label}")
                ax.set_title(f"{'Hidden 1' if layer == 'hidden1' else 'Hidden 2'}", fontsize=10)
        fig.suptitle(title)
        fig.tight_layout()
    files = toolkit.write_figure(fig, report_paths(out)["plots"] / f"fig2_{slug(rec['label'])}")
    return [files["png"], files["svg"]]


def _figure(paths: list[Path], out: Path | None, fmt: str) -> str:
    if not paths:
        return _para("(Fig 2 is written only with --out; the scatterplots go beside the report.)", fmt)
    rel = paths[0].relative_to(Path(out).parent).as_posix()
    caption = "Fig 2. MNIST node property scatterplots (model 0)"
    if fmt == "md":
        rel2 = paths[1].relative_to(Path(out).parent).as_posix()
        return (f"![{caption}]({toolkit.md_link_target(rel)})\n\n{caption} (also "
                f"[{toolkit.md_text(paths[1].name)}]({toolkit.md_link_target(rel2)})).\n")
    return toolkit.html_blocks().figure(rel, caption, caption=caption)


def _finish(title: str, parts: list[str], fmt: str) -> str:
    if fmt == "md":
        return f"# {toolkit.md_text(title)}\n\n" + "\n\n".join(p.strip() for p in parts if p)
    from markupsafe import Markup

    return html_document(title, Markup("\n").join([toolkit.html_blocks().heading(title, 1)]
                                                   + [p.strip() for p in parts if p]))


@register_renderer("mnist-correlations")
def render_correlations(suite, frame, fmt: str, out: Path | None) -> str:
    """Tables 1 and 2 (paper beside ours) and Fig 2 for each cell of an mnist-correlations suite."""
    parts = [_para(f"Suite {suite.name}: {suite.description}", fmt),
             _para(f"Paper values: {load_paper()['citation']}", fmt)]
    for rec in pool_records(_ok_records(frame)):
        parts += [_heading(f"{rec['label']}", fmt), _para(_run_text(rec), fmt), table1_section(rec, fmt),
                  table2_section(rec, fmt), _figure(fig2(rec, out, f"{suite.name}: {rec['label']}"), out, fmt)]
    parts.append(_missing(frame, fmt))
    return _finish(f"MNIST correlations ({suite.name})", parts, fmt)


@register_renderer("mnist-recipes")
def render_recipes(suite, frame, fmt: str, out: Path | None) -> str:
    """Recipes side by side: Table 1 and Table 2 values per recipe, the paper's row, and the distance."""
    paper = load_paper()
    t1_keys, t2_keys = list(T1_LABELS), list(T2_LABELS)
    headers = (["recipe", "distance", "dead h1 (mean)", "acc dense", "acc pruned"]
               + [f"T1 {T1_LABELS[k][1]} {k.split('_', 1)[1]}" for k in t1_keys]
               + [f"T2 h{n} {k}" for n in (1, 2) for k in t2_keys])
    paper_row = (["paper", "0", str(paper["dead_nodes"]["hidden1"]), "", ""]
                 + [_f(paper["table1"][k]) for k in t1_keys]
                 + [_f(paper["table2"][layer][k]) for layer in ("hidden1", "hidden2") for k in t2_keys])
    rows, scored = [paper_row], []
    pooled = pool_records(_ok_records(frame))
    for rec in pooled:
        art, m = rec["artifacts"], rec["metrics"]
        dist = paper_distance(art["table1"], art["table2_mean"], art["table2_mean"]["hidden1"]["dead_nodes"])
        scored.append((dist, rec["label"]))
        rows.append([rec["label"], _f(dist), f"{art['table2_mean']['hidden1']['dead_nodes']:.1f}",
                     _f(m["accuracy_dense"], 4), _f(m["accuracy_pruned"], 4)]
                    + [_f(art["table1"][k]) for k in t1_keys]
                    + [_f(art["table2_mean"][layer][k]) for layer in ("hidden1", "hidden2") for k in t2_keys])
    parts = [_para(f"Suite {suite.name}: {suite.description}", fmt),
             _para("distance = mean |ours - paper| over the 6 Table 1 values, the 10 Table 2 values (mean over models) "
                   "and the fraction of hidden-1 nodes fully pruned (dead/300 vs 113/300).", fmt),
             _table(rows, headers, fmt)]
    if scored:
        best = min(scored)
        parts.append(_para(f"Closest to the paper: {best[1]} (distance {best[0]:.3f}).", fmt))
    recipes = [[rec["label"], _recipe_text(rec["config"]["recipe"]),
                f"{rec['notes'].get('train_timing', {}).get('wall_s', float('nan')):.0f}"] for rec in pooled]
    parts += [_heading("Recipes", fmt, 3), _table(recipes, ["recipe", "settings", "train wall s"], fmt),
              _missing(frame, fmt)]
    return _finish(f"MNIST recipe sensitivity ({suite.name})", parts, fmt)


def _table3(recs: list[dict], paper: dict, fmt: str) -> str:
    """One Table 3 block: rows f, per variant its mean accuracy, one-sided p-value and the paper's value."""
    factors = sorted({row["f"] for rec in recs for row in rec["artifacts"]["rows"]})
    headers = ["f"]
    for rec in recs:
        headers += [f"{rec['config']['label']}: mean acc", "p (f > 1.0)", "paper"]
    rows = []
    for f in factors:
        row = [f"{f:g}" + (" (baseline)" if f == 1.0 else "")]
        for rec in recs:
            hit = next((r for r in rec["artifacts"]["rows"] if r["f"] == f), None)
            col = paper["columns"].get(rec["config"]["label"])
            pv = col[paper["factors"].index(f)] if col and f in paper["factors"] else None
            row += [_f(hit["mean"]) if hit else "-", _p(hit.get("p_value")) if hit and "p_value" in hit else "-",
                    _f(pv) if pv is not None else "-"]
        rows.append(row)
    return _table(rows, headers, fmt)


@register_renderer("mnist-init")
def render_init(suite, frame, fmt: str, out: Path | None) -> str:
    """Table 3: mean test accuracy per f for every variant with one-sided p-values, paper beside;
    uncontrolled (Welch t) and controlled (paired t) variants in separate tables."""
    paper = load_paper()["table3"]
    recs = _ok_records(frame)
    details = [[rec["config"]["label"],
                "paired t (ttest_rel)" if rec["config"]["controlled"] else "Welch t (ttest_ind)",
                rec["config"]["models"], _recipe_text(rec["config"]["recipe"]),
                f"{rec['notes'].get('timing', {}).get('wall_s', float('nan')):.0f}"] for rec in recs]
    parts = [_para(f"Suite {suite.name}: {suite.description}", fmt),
             _para(f"Paper values: {load_paper()['citation']} The paper states p-values only in the text: "
                   + "; ".join(f"{k}: f={f} p={p}" for k, d in paper["p_values_text"].items()
                               for f, p in d.items()), fmt)]
    for controlled, title in ((False, "uncontrolled: a fresh training subset and order per f, Welch t-test"),
                              (True, "controlled: the same subset and order for every f of a model, paired t-test")):
        group = [rec for rec in recs if bool(rec["config"]["controlled"]) == controlled]
        if group:
            heading = f"Table 3. MNIST initialization with correlations (mean test accuracy), {title}"
            parts += [_heading(heading, fmt, 3),
                      _table3(group, paper, fmt)]
    parts += [_heading("Variants", fmt, 3),
              _table(details, ["variant", "one-sided test", "models", "recipe", "wall s"], fmt), _missing(frame, fmt)]
    return _finish(f"MNIST correlated initialization ({suite.name})", parts, fmt)
