"""The cost section of a leaderboard: parameters, FLOPs and measured speed-up per row, and Pareto plots.

Reads the ``cost`` note of each record (``benchmarks.cost``; torch-free here). A row's measured speed-up
is the ratio of medians dense/pruned over alternating same-process timings; its interval is a percentile
bootstrap over the timing rounds (each round's dense and pruned timings resampled together), pooled over
the row's measurements (one per worker process that ran the row). N:M rows also show the theoretical
speed-up of their non-zero FLOPs, marked theoretical: no sparse kernel ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.paths import slug
from reports import stats, toolkit
from reports.leaderboard import Board, Column

RESAMPLES = 2000
SEED = 20231


@dataclass
class RowCost:
    """One row's cost: sizes from its first measurement, timing rounds pooled over its measurements."""

    label: str
    size: dict
    structure: dict | None
    rounds: dict = field(default_factory=dict)  # batch -> [(dense s, pruned s), ...]
    threads: set = field(default_factory=set)
    loads: list = field(default_factory=list)

    def speedup(self, batch: int) -> tuple[float, tuple[float, float]] | None:
        """Measured speed-up at ``batch`` (dense median / pruned median) and its 95% bootstrap interval."""
        pairs = np.asarray(self.rounds.get(batch, []), dtype=np.float64)
        if not len(pairs):
            return None
        point = float(np.median(pairs[:, 0]) / np.median(pairs[:, 1]))
        idx = np.random.default_rng([SEED, len(pairs)]).integers(0, len(pairs), size=(RESAMPLES, len(pairs)))
        reps = np.median(pairs[idx, 0], axis=1) / np.median(pairs[idx, 1], axis=1)
        return point, stats.interval(reps)

    def median_ms(self, batch: int) -> float | None:
        pairs = self.rounds.get(batch)
        return None if not pairs else 1000 * float(np.median([p for _, p in pairs]))


def row_costs(cells: list, records: dict) -> dict[str, RowCost]:
    """label -> RowCost from the records' cost notes (each distinct measurement counted once)."""
    out: dict[str, RowCost] = {}
    seen: set = set()
    for cell in cells:
        record = records.get(cell.key) or {}
        cost = (record.get("notes") or {}).get("cost")
        if record.get("status") != "ok" or not cost:
            continue
        label = cell.config["label"]
        row = out.setdefault(label, RowCost(label, cost, (record.get("notes") or {}).get("structure")))
        identity = (label, repr(cost.get("timings")))
        if identity in seen:  # other tasks of the row in the same process reuse its one measurement
            continue
        seen.add(identity)
        for timing in cost.get("timings", []):
            row.rounds.setdefault(timing["batch"], []).extend(zip(timing["dense_s"], timing["pruned_s"]))
        row.threads.add(cost.get("threads"))
        row.loads.append(cost.get("load_average", [None])[0])
    return out


def _removed(cost: RowCost) -> str:
    s = cost.structure
    if not s:
        pruned = cost.size["flops_per_token_nonzero"] < 0.99 * cost.size["flops_per_token"]  # dense has ~no zeros
        return "zeros (dense-shaped)" if pruned else "-"
    parts = [f"{s['heads_removed']} heads" if s.get("heads_removed") else "",
             f"{s['neurons_removed']} neurons" if s.get("neurons_removed") else "",
             f"layers {','.join(map(str, s['layers_removed']))}" if s.get("layers_removed") else ""]
    return ", ".join(p for p in parts if p) or "nothing"


def _speed(cost: RowCost, batch: int) -> str:
    found = cost.speedup(batch)
    return "-" if found is None else f"{found[0]:.2f}x [{found[1][0]:.2f}, {found[1][1]:.2f}]"


def cost_rows(board: Board, costs: dict[str, RowCost], batches: list[int]) -> list[list[str]]:
    """Table rows in board order: removed, parameters, FLOPs, measured speed-ups, theoretical N:M speed-up."""
    rows = []
    for row in board.rows:
        cost = costs.get(row.label)
        if cost is None:
            continue
        size = cost.size
        theoretical = size.get("speedup_theoretical")
        rows.append([row.label, _removed(cost), f"{size['params'] / 1e6:.2f}", f"{size['params_nonzero'] / 1e6:.2f}",
                     f"{size['flops_per_token'] / 1e6:.1f}", f"{size['flops_ratio']:.3f}",
                     *(f"{cost.median_ms(b):.1f}" if cost.median_ms(b) is not None else "-" for b in batches),
                     *(_speed(cost, b) for b in batches),
                     f"{theoretical:.2f}x (theoretical)" if theoretical else "-"])
    return rows


def batches_of(costs: dict[str, RowCost]) -> list[int]:
    return sorted({b for c in costs.values() for b in c.rounds})


def cost_headers(batches: list[int]) -> list[str]:
    return ["row", "removed", "params (M)", "non-zero params (M)", "FLOPs/token (M)", "FLOPs / dense",
            *(f"latency b{b} (ms)" for b in batches), *(f"speed-up b{b}" for b in batches), "N:M speed-up"]


def legend(costs: dict[str, RowCost]) -> str:
    """What the cost table's numbers are and how they were measured."""
    any_cost = next(iter(costs.values()))
    threads = sorted({t for c in costs.values() for t in c.threads if t is not None})
    loads = [x for c in costs.values() for x in c.loads if x is not None]
    load = f" (1-minute load average {min(loads):.1f}-{max(loads):.1f}: the machine was shared)" if loads else ""
    return (f"Cost of the evaluated encoder at {any_cost.size['seq_len']} tokens. Params: all encoder parameters "
            "(embeddings included); FLOPs/token: the encoder's matrix products and attention scores as they run "
            "(biases, LayerNorm, softmax and embeddings omitted); structured rows are physically smaller, "
            "unstructured and N:M rows stay dense-shaped (same FLOPs and latency as dense, zeros in them). "
            "Latency: median seconds per forward pass on CPU with "
            f"{', '.join(map(str, threads))} thread(s){load}; speed-up: dense median / row median, "
            "dense timed alternately in the same process; [lo, hi]: 95% bootstrap interval over timing rounds. "
            "N:M speed-up: dense FLOPs over the row's non-zero FLOPs, theoretical (no sparse kernel ran).")


def cost_markdown(board: Board, cells: list, records: dict, plots_dir: Path | None) -> str:
    """The cost section (table, legend, Pareto plots written into ``plots_dir``) or '' without cost notes."""
    costs = row_costs(cells, records)
    if not costs:
        return ""
    batches = batches_of(costs)
    lines = ["", "## Cost: parameters, FLOPs and measured CPU speed-up", "", legend(costs), "",
             toolkit.table(cost_rows(board, costs, batches), cost_headers(batches), "md"), ""]
    if plots_dir is not None and batches:
        for column, path in write_pareto_plots(board, costs, max(batches), plots_dir):
            lines += [f"![{column.title}: score vs measured speed-up (batch {max(batches)})]"
                      f"({path.parent.name}/{path.name})", ""]
    return "\n".join(lines)


def cost_html(board: Board, cells: list, records: dict) -> str:
    """The cost table as an HTML fragment ('' without cost notes)."""
    costs = row_costs(cells, records)
    if not costs:
        return ""
    batches = batches_of(costs)
    blocks = toolkit.html_blocks()
    return str(blocks.heading("Cost: parameters, FLOPs and measured CPU speed-up") + blocks.para(legend(costs))
               + toolkit.html_table(cost_rows(board, costs, batches), cost_headers(batches)))


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats on both speed-up and score (means), by increasing speed-up."""
    sign = 1 if higher_is_better else -1
    front = [i for i, (x, y) in enumerate(points)
             if not any(x2 >= x and sign * y2 >= sign * y and (x2, y2) != (x, y) for x2, y2 in points)]
    return sorted(front, key=lambda i: points[i][0])


def pareto_figure(board: Board, costs: dict[str, RowCost], column: Column, batch: int):
    """One task column: score (with its interval) against measured speed-up (with its interval), per row."""
    from reports.plots import band, method_styles

    styles = method_styles(board)
    fig = toolkit.new_figure(figsize=(6.4, 4.4), dpi=100)
    with toolkit.style():
        ax = fig.add_subplot()
        points, labels = [], []
        for row in board.rows:
            entry, cost = row.entries.get(column), costs.get(row.label)
            found = cost.speedup(batch) if cost else None
            if entry is None or not entry.values or found is None:
                continue
            (x, (xlo, xhi)), y = found, entry.mean
            yband = band(entry) or (y, y)
            title, color = styles.get(row.series, (row.title or row.method, row.color))
            ax.errorbar([x], [y], xerr=[[x - xlo], [xhi - x]], yerr=[[y - yband[0]], [yband[1] - y]], fmt="o",
                        color="black" if row.dense else color, ms=4, capsize=2, label=title)
            ax.annotate(row.label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
            points.append((x, y))
            labels.append(row.label)
        if not points:
            return None
        front = pareto_front(points, column.higher_is_better)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="grey", lw=0.8,
                label="Pareto front (means)")
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=6, loc="best")
        ax.set_xlabel(f"measured speed-up over dense (CPU, batch {batch})")
        ax.set_ylabel(column.title)
        ax.set_title(f"{board.title}: {column.title} vs speed-up", fontsize=9)
        fig.tight_layout()
    return fig


def write_pareto_plots(board: Board, costs: dict[str, RowCost], batch: int, folder: Path) -> list[tuple]:
    """One Pareto plot (PNG + SVG) per column with scores; [(column, png path)]."""
    written = []
    for column in board.columns:
        fig = pareto_figure(board, costs, column, batch)
        if fig is not None:
            files = toolkit.write_figure(fig, Path(folder) / f"pareto-{slug(column.title, default='column')}")
            written.append((column, files["png"]))
    return written
