"""Report for ``bert-correlations`` suites: Figs 3, 4 and 5 as per-layer tables, line plots and findings."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from benchmarks.bertcorr import fields  # the result's layout, torch-free
from benchmarks.bertcorr.fields import ARTIFACT
from benchmarks.config import Suite
from benchmarks.paths import report_paths, slug
from benchmarks.registry import register_renderer
from reports import toolkit
from reports.html import html_document

STAT_TITLES = {"nonzero_count": "nonzero count", "mean_abs": "mean abs(w)", "positive_count": "positive count",
               "mean": "mean w"}
NODE_SET_TITLES = {"intermediate": "intermediate neurons (intermediate.dense rows → output.dense columns)",
                   "attention_output": "attention-output nodes "
                                       "(attention.output.dense rows → intermediate.dense columns)"}
PLOT_DPI = 90
DOCS = "docs/bert-correlations.md"


def fmt_r(value: float | None) -> str:
    """A correlation as text: +0.123, or an em dash when undefined."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.3f}".replace("-0.000", "+0.000")


def _table(headers: list[str], rows: list[list], fmt: str) -> str:
    return toolkit.table(rows, headers, fmt) if fmt == "md" else toolkit.html_table(rows, headers)


def fig3_tables(result: dict, fmt: str) -> list[tuple[str, str]]:
    """(caption, table) per Fig 3 node set: r(input side, output side) per layer and statistic."""
    out = []
    for node_set in fields.NODE_SETS:
        values, nodes = result["fig3"][node_set], result["fig3_nodes"][node_set]
        rows = [[layer] + [fmt_r(values[s][layer]) for s in fields.STATS] + [nodes["excluded_from_means"][layer]]
                for layer in range(result["num_layers"])]
        headers = ["layer"] + [STAT_TITLES[s] for s in fields.STATS] + ["nodes left out of means"]
        caption = f"Fig 3: {NODE_SET_TITLES.get(node_set, node_set)}, {nodes['nodes']} nodes per layer"
        out.append((caption, _table(headers, rows, fmt)))
    return out


def fig4_table(result: dict, fmt: str) -> tuple[str, str]:
    """Fig 4: element-wise r between W_Q, W_K, W_V per layer, of |w| and of keep-masks."""
    fig = result["fig4"]
    headers = ["layer"] + [f"{kind} {pair}" for kind in ("abs(w)", "mask") for pair in fields.PAIRS]
    rows = [[layer] + [fmt_r(fig[kind][pair][layer]) for kind in ("abs", "mask") for pair in fields.PAIRS]
            for layer in range(result["num_layers"])]
    title = "Fig 4: self-attention, element by element (pruned abs(w), and kept/pruned masks)"
    return title, _table(headers, rows, fmt)


def fig5_tables(result: dict, fmt: str) -> list[tuple[str, str]]:
    """Fig 5: per statistic, r between the per-row and per-column statistics of two attention matrices."""
    out = []
    for stat in fields.STATS:
        headers = ["layer"] + [f"{axis} {pair}" for axis in fields.AXES for pair in fields.PAIRS]
        rows = [[layer] + [fmt_r(result["fig5"][axis][stat][pair][layer]) for axis in fields.AXES
                           for pair in fields.PAIRS] for layer in range(result["num_layers"])]
        out.append((f"Fig 5: {STAT_TITLES[stat]} of each row / column of W_Q, W_K, W_V", _table(headers, rows, fmt)))
    return out


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _depth_trend(values: list) -> str:
    """'falls'/'rises'/'no clear trend' from the Spearman correlation of a series with layer index."""
    from scipy.stats import spearmanr

    pts = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(pts) < 3:
        return "too few layers for a trend"
    rho = float(spearmanr([i for i, _ in pts], [v for _, v in pts]).statistic)
    word = "falls" if rho <= -0.5 else "rises" if rho >= 0.5 else "shows no monotone trend"
    return f"{word} with depth (Spearman ρ = {rho:+.2f})"


def findings(result: dict) -> list[str]:
    """Plain sentences stating what this result shows, next to the paper's bert-base claims."""
    lines = []
    for node_set in fields.NODE_SETS:
        values, parts = result["fig3"][node_set], []
        for stat in ("nonzero_count", "mean_abs"):
            v = values[stat]
            peak = max((i for i, x in enumerate(v) if x is not None), key=lambda i: v[i], default=None)
            top = f", highest {fmt_r(v[peak])} at layer {peak}" if peak is not None else ""
            parts.append(f"{STAT_TITLES[stat]} r goes {fmt_r(v[0])} (layer 0) → {fmt_r(v[-1])} (last){top}, "
                         f"{_depth_trend(v)}")
        other = ", ".join(f"{STAT_TITLES[s]} mean r {fmt_r(_mean(values[s]))}" for s in ("positive_count", "mean"))
        lines.append(f"Fig 3, {node_set} nodes: " + "; ".join(parts) + f"; {other}. Paper (bert-base): count and "
                     "abs(w) strongly positive early, mildly negative by the last layer; positive count and mean "
                     "uncorrelated.")
    for kind, what in (("abs", "abs(w)"), ("mask", "masks")):
        means = {pair: _mean(result["fig4"][kind][pair]) for pair in fields.PAIRS}
        best = max((p for p in means if means[p] is not None), key=lambda p: means[p], default=None)
        listed = ", ".join(f"{pair} {fmt_r(m)}" for pair, m in means.items())
        trends = "; ".join(f"{pair} {_depth_trend(result['fig4'][kind][pair])}" for pair in fields.PAIRS)
        lines.append(f"Fig 4, element-wise {what}: layer-mean r {listed}; the most correlated pair is {best}; "
                     f"{trends}.")
    lines.append("Fig 4 in the paper (bert-base): r from -0.05 to nearly 0.2, generally rising with depth; its text "
                 "says query and value correlate and value correlates with neither query nor key "
                 "(self-contradictory), while its hypothesis and Fig 5 concern query and key. All three pairs are "
                 "reported here, so the pair the data favours can be read directly.")
    for axis in fields.AXES:
        means = {(s, p): _mean(result["fig5"][axis][s][p]) for s in fields.STATS for p in fields.PAIRS}
        per_pair = {p: _mean([means[(s, p)] for s in fields.STATS]) for p in fields.PAIRS}
        listed = ", ".join(f"{p} {fmt_r(m)}" for p, m in per_pair.items())
        lines.append(f"Fig 5, {axis}: layer- and statistic-mean r {listed}.")
    lines.append("Paper Fig 5 (bert-base): strong query-key correlations of the row statistics, weaker for columns.")
    return lines


# ---------------------------------------------------------------- plots

def _figures(result: dict) -> dict[str, "object"]:
    """Matplotlib figures in the manner of the paper's Figs 3, 4 and 5: r against layer."""
    with toolkit.style():
        return _draw_figures(result)


def _draw_figures(result: dict) -> dict[str, "object"]:
    layers = list(range(result["num_layers"]))

    def panel(ax, title: str, lines: dict) -> None:
        for label, values in lines.items():
            ax.plot(layers, [math.nan if v is None else v for v in values], marker="o", label=label)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set(title=title, xlabel="encoder layer", ylabel="Pearson r", xticks=layers)
        ax.legend(fontsize="small")

    figs = {}
    fig = toolkit.new_figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, node_set in zip(axes, fields.NODE_SETS):
        values = result["fig3"][node_set]
        panel(ax, f"{node_set} nodes: input vs output", {STAT_TITLES[s]: values[s] for s in fields.STATS})
    fig.suptitle("Fig 3: input/output correlations in the feed-forward block")
    figs["fig3"] = fig
    fig = toolkit.new_figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ax, (kind, title) in zip(axes, (("abs", "pruned |w|"), ("mask", "kept/pruned mask"))):
        panel(ax, f"element-wise {title}", {p: result["fig4"][kind][p] for p in fields.PAIRS})
    fig.suptitle("Fig 4: self-attention W_Q, W_K, W_V element-wise correlations")
    figs["fig4"] = fig
    fig = toolkit.new_figure(figsize=(18, 8))
    axes = fig.subplots(2, 4, sharey=True)
    for row, axis in enumerate(fields.AXES):
        for col, stat in enumerate(fields.STATS):
            panel(axes[row][col], f"{axis}: {STAT_TITLES[stat]}",
                  {p: result["fig5"][axis][stat][p] for p in fields.PAIRS})
    fig.suptitle("Fig 5: self-attention row and column statistics")
    figs["fig5"] = fig
    for fig in figs.values():
        fig.tight_layout()
    return figs


def write_plots(result: dict, stem: str, out: Path | None) -> dict[str, dict[str, bytes | Path]]:
    """Render the three figures; write ``<stem>_<fig>`` PNG and SVG beside ``out`` when given.

    Returns {fig: {"png": PNG bytes, "paths": {format: path} or {}}}."""
    plots = {}
    for name, fig in _figures(result).items():
        if out is None:
            plots[name] = {"png": toolkit.figure_bytes(fig, "png", PLOT_DPI), "paths": {}}
            continue
        paths = toolkit.write_figure(fig, report_paths(out)["plots"] / f"{stem}_{name}", PLOT_DPI)
        plots[name] = {"png": paths["png"].read_bytes(), "paths": paths}
    return plots


# ---------------------------------------------------------------- the page

def _relative(path: Path, out: Path) -> str:
    return Path(path).relative_to(Path(out).parent).as_posix()


def _run_command(suite: Suite, name: str) -> str:
    """The command that (re)runs the suite; a local model folder stays a placeholder (reports print no paths)."""
    model = suite.model if name == suite.model else "MODEL_FOLDER"
    return f"python -m benchmarks run --suite {suite.name} --model {model}"


def _not_ok_text(suite: Suite, name: str, record: dict | None, fmt: str) -> str:
    """Why a cell has no figures, and the command that fills it (user strings escaped for ``fmt`` 'md')."""
    md = fmt == "md"
    command = toolkit.md_code(_run_command(suite, name)) if md else _run_command(suite, name)
    where = "" if name == suite.model else f" (MODEL_FOLDER: the folder of {name})"
    where = toolkit.md_text(where) if md else where
    if record is None:
        return f"not run yet; run {command}{where}"
    why = f"{record['status']}: {record.get('error')}"
    return f"{toolkit.md_text(why, block=True) if md else why} (after fixing it, rerun {command}{where})"


def _cell_section(suite: Suite, cell, record: dict | None, fmt: str, out: Path | None) -> str:
    name = toolkit.model_name(suite.model, cell.config.get("model") if isinstance(cell.config.get("model"), dict)
                              else None)
    heading = f"{name}, prune rate {cell.config['prune_rate']:g}"
    if record is None or record["status"] != "ok":
        text = _not_ok_text(suite, name, record, fmt)
        if fmt == "md":
            return f"## {toolkit.md_text(heading)}\n\n{text}\n"
        return Markup("\n").join([toolkit.html_blocks().heading(heading), toolkit.html_blocks().para(text)]) + "\n"
    result = record["artifacts"][ARTIFACT]
    sparsity = record.get("sparsity", {}).get("global_after")
    meta = (f"{result['num_layers']} encoder layers, achieved sparsity {sparsity:.4f} of the encoder matrices, "
            f"git {str(record.get('provenance', {}).get('git_sha'))[:10]}")
    tables = fig3_tables(result, fmt) + [fig4_table(result, fmt)] + fig5_tables(result, fmt)
    plots = write_plots(result, slug(f"{name}-{cell.config['prune_rate']:g}"), out)
    if fmt == "md":
        parts = [f"## {toolkit.md_text(heading)}", toolkit.md_text(meta, block=True), "### Findings",
                 "\n".join(f"- {toolkit.md_text(line)}" for line in findings(result))]
        for fig in ("fig3", "fig4", "fig5"):
            paths = plots[fig]["paths"]
            if paths:
                png, svg = (toolkit.md_link_target(_relative(paths[f], out)) for f in ("png", "svg"))
                parts.append(f"![{fig}]({png}) ([SVG]({svg}))")
        parts.append("### Tables (Pearson r per encoder layer)")
        for caption, table in tables:
            parts += [f"**{toolkit.md_text(caption)}**", table]
        if not any(plots[n]["paths"] for n in plots):
            parts.append("_Plots are written beside the report when `--out FILE` is given._")
        return "\n\n".join(parts) + "\n"
    blocks = toolkit.html_blocks()
    parts = [blocks.heading(heading), blocks.para(meta),
             blocks.heading("Findings", 3), blocks.bullets(findings(result))]
    for fig in ("fig3", "fig4", "fig5"):
        src = "data:image/png;base64," + base64.b64encode(plots[fig]["png"]).decode("ascii")
        paths = plots[fig]["paths"]
        parts.append(blocks.figure(src, fig, svg=_relative(paths["svg"], out) if paths else None))
    parts.append(blocks.heading("Tables (Pearson r per encoder layer)", 3))
    for caption, table in tables:
        parts += [blocks.heading(caption, 4), table]
    return Markup("\n").join(parts) + "\n"


def _intro(suite: Suite) -> str:
    return (f"Weight correlations after one-shot magnitude pruning of each encoder matrix on its own "
            f"(paper §3.2.1/§4.2.1, Figs 3-5). Weights are torch Linear [out, in]: a row is one output feature, "
            f"a column one input feature. Means are over nonzero weights. Definitions: {DOCS}.")


@register_renderer("bert-correlations")
def render_bert_correlations(suite: Suite, frame: pd.DataFrame, fmt: str, out: Path | None = None) -> str:
    """Figs 3-5 for every (model, rate) cell of a bert-correlations suite, as Markdown or a full HTML page."""
    records = frame.attrs.get("records", {})
    sections = [_cell_section(suite, cell, records.get(cell.key), fmt, out) for cell in frame.attrs["cells"]]
    title = f"{suite.name}: {suite.description}"
    if fmt == "md":
        return f"# {toolkit.md_text(title)}\n\n{_intro(suite)}\n\n" + "\n".join(sections)
    blocks = toolkit.html_blocks()
    return html_document(title, Markup("\n").join([blocks.heading(title, 1), blocks.para(_intro(suite)), *sections]))
