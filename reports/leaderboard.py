"""The Fig 6 / Fig 7 leaderboard as data: rows are method labels grouped by sparsity bucket, columns metrics.

``build_board`` is a pure function from a suite's expected cells and their records to a ``Board``;
``reports.tables`` turns a board into Markdown or HTML and ``reports.plots`` into figures;
``reports.prune_finetune`` is the renderer that puts them together (this module imports neither).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from benchmarks.config import Cell, Suite
from benchmarks.errors import UserError
from benchmarks.predictions import LABEL as P_LABEL
from benchmarks.registry import TASKS
from reports import paper, stats

# Leaderboard column order: the paper's, then anything else in the suite's task order.
TASK_ORDER = ("mrpc", "stsb", "qnli", "mnli", "sst2", "mlm")
# Columns of tasks that may not be registered in this checkout (the MLM task is a separate module);
# a registered task's own ``columns`` attribute wins.
KNOWN_COLUMNS = {
    "mlm": {"MLM Accuracy": ("mlm_accuracy", True), "MLM ppl.": ("mlm_ppl", False)},
}
# Record notes that make numbers incomparable: cells with a different value go to a separate column.
# note key -> {note value: column title suffix}; a value not listed keeps the plain title.
VARIANT_NOTES = {"mlm_head": {"fitted": "fitted head"}, "data_split": None}
VARIANT_SUFFIX_DEFAULT = {"data_split": "dev split"}
STATUS_WORD = {"missing": "missing", "skipped": "skipped", "failed": "failed", "corrupt": "unreadable", "na": "n/a"}
DENSE = "dense"
BUCKET_DIGITS = 6  # nominal rates equal to 1e-6 share a bucket
DEFAULT_PROTOCOL = "finetune"  # records made before the protocol field existed were fine-tuned
COLLAPSE_NOTE = ("collapsed: no better than a predictor that ignores its input (the 95% interval of balanced "
                 "accuracy contains 1/classes, or that of the ROC AUC / correlation contains 0.5 / 0; or constant "
                 "outputs); never bold, never marked like dense")
COLLAPSE_FLAG_NOTE = "collapsed: the record says so (no per-example arrays to judge it); never bold, never ✓"
EQUIV_SHARE = 0.2  # ≈: equivalent to dense within this share of the column's dense-minus-baseline gap
ALL_COLLAPSED_NOTE = "every row collapsed in this column: it cannot tell the methods apart"
ARRAYS_NOTE = ("no interval: {why}, so the value stands without its bootstrap interval and is never bold; "
               "rerun the suite to redo the cell")


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a metric of a task, in one comparable variant (e.g. fitted MLM head)."""

    title: str
    task: str
    metric: str
    higher_is_better: bool
    variant: tuple = ()  # sorted (note key, value) pairs shared by every record in the column
    note: str | None = None  # footnote text for the column header (dev split, fitted head)

    @property
    def paper_comparable(self) -> bool:
        """Published values apply unless the head was fitted here (the paper used BERT's own MLM head)."""
        return dict(self.variant).get("mlm_head") != "fitted"


@dataclass
class Entry:
    """One table cell: the values over seeds, or why there are none."""

    status: str  # ok | partial | missing | skipped | failed | corrupt
    values: list = field(default_factory=list)
    metric: str = ""  # the record metric behind the cell
    expected: int = 0  # seeds the suite asks for
    notes: list = field(default_factory=list)  # footnote numbers
    best: bool = False
    matching: bool = False  # lottery-ticket criterion over seeds (cells without per-example arrays)
    paper: float | None = None
    seeds: list = field(default_factory=list)  # seed of each value
    arrays: list = field(default_factory=list)  # per value: the metric's arrays (reports.stats) or None
    flagged: bool = False  # a record says its predictions collapsed
    collapsed: bool = False
    reps: object = None  # bootstrap replicates (np.ndarray) when every seed has arrays
    ci: tuple | None = None  # 95% percentile interval
    indistinct: bool = False  # n.d.: paired interval of (row - dense) contains 0, equivalence not shown
    equivalent: bool = False  # ≈: the paired interval of (row - dense) lies within ± the column's margin (TOST)
    lead: tuple | None = None  # bold cells: (runner-up label, lo, hi) of the paired difference

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (n-1), None with fewer than two seeds."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    @property
    def complete(self) -> bool:
        return self.status == "ok"

    @property
    def diff(self) -> float | None:
        return None if self.paper is None or self.mean is None else self.mean - self.paper


@dataclass
class Row:
    """One method label: its bucket, achieved sparsity and one entry per column."""

    label: str
    method: str
    bucket: float
    nominal: float
    sparsity: list = field(default_factory=list)  # achieved global sparsity of each ok record
    entries: dict = field(default_factory=dict)  # Column -> Entry
    title: str = ""  # the method's name in plots (its spec's title, carried by the cell; default: method)
    color: str | None = None  # its plot colour from the spec, or None
    pattern: str | None = None  # an N:M pattern option: its own plot line (2:4 and 50% sit at the same x)

    @property
    def series(self) -> str:
        """The plot line this row belongs to: its method, split by N:M pattern."""
        return f"{self.method} {self.pattern}" if self.pattern else self.method

    @property
    def achieved(self) -> float | None:
        return statistics.fmean(self.sparsity) if self.sparsity else None

    @property
    def dense(self) -> bool:
        return self.method == DENSE


@dataclass
class Board:
    """Everything a leaderboard shows, in display order."""

    title: str
    description: str
    model: str
    model_identity: dict
    scale: str
    seeds: list
    columns: list
    buckets: list  # [(bucket value, [Row, ...])], dense bucket first
    footnotes: list  # texts; footnote n is footnotes[n - 1]
    paper_inline: bool  # published values sit beside ours (same model as the paper)
    paper_apart: list  # published rows listed separately (other models): [dict from paper.paper_rows]
    counts: dict  # status -> number of cells
    protocol: str = DEFAULT_PROTOCOL
    collapsed_columns: list = field(default_factory=list)  # columns where every row with a value collapsed
    chance_notes: dict = field(default_factory=dict)  # Column -> footnote number: not admissible, and why
    baselines: tuple = ()  # methods the comparison section holds rows against (empty: reports.compare's default)
    eval_sizes: dict = field(default_factory=dict)  # task -> sorted evaluated-example counts of its records
    eval_limit: int | None = None  # recipe.eval_limit when the cells evaluated a subset of each dev set
    column_baselines: dict = field(default_factory=dict)  # Column -> Baseline: its trivial baseline, admissibility

    @property
    def rows(self) -> list:
        return [row for _, rows in self.buckets for row in rows]


@dataclass(eq=False)
class Baseline:
    """A column's strongest trivial baseline on the same units, and whether the column can rank methods."""

    name: str | None  # None: the metric has no baseline (drift)
    value: float | None = None
    ci: tuple | None = None
    reps: object = None  # bootstrap replicates, paired with the rows'
    gap: tuple | None = None  # (lo, hi, point) of dense minus baseline, 95% paired, oriented (+: dense better)
    admissible: bool = False
    why: str = ""  # why not admissible

    @property
    def margin(self) -> float | None:
        """The ≈ margin: EQUIV_SHARE of dense's point gap above the baseline."""
        return None if self.gap is None else EQUIV_SHARE * self.gap[2]



# -- columns ---------------------------------------------------------------------------------------

def task_columns(task: str, saved: dict | None = None) -> dict[str, tuple[str, bool]]:
    """Title -> (metric, higher_is_better) for a task: as saved with the grid (benchmarks.grid, no task
    import), else its registered ``columns`` attribute or headline (imports the tasks, and torch)."""
    if saved and task in saved:
        return dict(saved[task])
    if task in TASKS:
        spec = TASKS.get(task)
        columns = getattr(spec, "columns", None)
        if columns:
            return dict(columns)
        if task not in KNOWN_COLUMNS:
            return {task.upper(): (spec.headline, spec.higher_is_better)}
    if task in KNOWN_COLUMNS:
        return KNOWN_COLUMNS[task]
    raise UserError(f"task {task!r} in the records is not registered; install the plugin that provides it "
                    f"(python -m benchmarks list tasks)")


def variant_of(record: dict | None) -> tuple:
    """The notes of a record that decide which column variant its numbers belong to."""
    notes = (record or {}).get("notes") or {}
    return tuple(sorted((k, str(notes[k])) for k in VARIANT_NOTES if k in notes))


def _variant_suffix(variant: tuple) -> str:
    parts = []
    for key, value in variant:
        names = VARIANT_NOTES.get(key)
        suffix = names.get(value) if names else VARIANT_SUFFIX_DEFAULT.get(key)
        if suffix:
            parts.append(suffix)
    return f" ({', '.join(parts)})" if parts else ""


# What the fit half of a dev split is used for, by protocol (records made before protocols said "fine-tuned").
FIT_USE = {"finetune": "the model is fine-tuned on it", "zeroshot": "the zero-shot rule's class centroids are "
           "averaged on its fit subset", "probe": "the linear probe is fitted on its fit subset"}


def _variant_note(task: str, variant: tuple, protocol: str = DEFAULT_PROTOCOL, units: int | None = None) -> str | None:
    notes = dict(variant)
    texts = []
    if notes.get("mlm_head") == "fitted":
        texts.append(f"{task}: the model has no pre-trained MLM head; the head was fitted here, so these numbers "
                     "are not ranked against pre-trained-head numbers nor compared with the paper")
    if "data_split" in notes:
        texts.append(_split_note(task, notes["data_split"], protocol, units))
    return "; ".join(texts) or None


def _split_note(task: str, recorded: str, protocol: str, units: int | None) -> str:
    """The dev-split footnote from what the records show: the protocol's use of the fit half and the number of
    evaluated examples in the per-example arrays (the records' own note says "fine-tuned" under every protocol)."""
    if "dev" not in recorded or protocol not in FIT_USE:
        return f"{task}: {recorded}"
    source = "a 1,000-example sample of MNLI dev matched" if "MNLI" in recorded else "dev"
    evaluated = f"{units:,} examples of the other half are evaluated" if units else "the other half is evaluated"
    shown = "; the mismatched sample is evaluated alike but not shown" if "MNLI" in recorded else ""
    return (f"{task}: the offline mirror has no train split, so a fixed half of {source} (seed 1234) is the fit "
            f"part ({FIT_USE[protocol]}) and {evaluated}{shown}")


def build_columns(cells: list[Cell], records: dict, saved_columns: dict | None = None,
                  predictions: dict | None = None) -> list[Column]:
    """Columns for the suite's tasks in paper order, one per (title, variant) present in the records."""
    protocol = protocol_of(cells)
    grid = list(dict.fromkeys(c.config["task"] for c in cells))
    tasks = sorted(grid, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), grid.index(t)))
    columns = []
    for task in tasks:
        variants = list(dict.fromkeys(variant_of(records.get(c.key)) for c in cells
                                      if c.config["task"] == task and c.key in records))
        for title, (metric, higher) in task_columns(task, saved_columns).items():
            for variant in variants or [()]:
                units = _evaluated_units(cells, task, predictions or {})
                columns.append(Column(title + _variant_suffix(variant), task, metric, higher, variant,
                                      _variant_note(title, variant, protocol, units)))
    drift = drift_column(cells, records)
    return columns + ([drift] if drift else [])


def _evaluated_units(cells: list[Cell], task: str, predictions: dict) -> int | None:
    """How many examples a task's per-example arrays hold (its first cell with arrays), or None."""
    for cell in cells:
        arrays = predictions.get(cell.key) if cell.config["task"] == task else None
        if arrays and P_LABEL in arrays:
            return len(arrays[P_LABEL])
    return None


# Drift to dense (mean cosine of each example's pruned and dense embedding) gets one column per board, from
# the first task in this order that recorded it: single sentences first, the plainest text to compare on.
DRIFT_METRIC = "drift_cosine"
DRIFT_TASK_ORDER = ("sst2", "stsb", "mrpc", "qnli", "mnli", "mlm")
DRIFT_NOTE = ("drift to dense: mean cosine between each example's pruned and dense embedding on {task}'s "
              "evaluation text (1 = unchanged); independent of any task head, so comparable across protocols")


def drift_column(cells: list[Cell], records: dict) -> Column | None:
    """The board's drift-to-dense column, or None when no record of the suite's tasks carries the metric."""
    tasks = dict.fromkeys(c.config["task"] for c in cells)
    for task in sorted(tasks, key=lambda t: DRIFT_TASK_ORDER.index(t) if t in DRIFT_TASK_ORDER else 99):
        if any(DRIFT_METRIC in ((records.get(c.key) or {}).get("metrics") or {})
               for c in cells if c.config["task"] == task):
            return Column(f"drift · {task.upper()}", task, DRIFT_METRIC, True, (), DRIFT_NOTE.format(task=task.upper()))
    return None


def cell_metrics(task: str, columns: list[Column]) -> list[str]:
    """The record metrics of one task that fill board columns: its task columns, plus drift where it has one."""
    return list(dict.fromkeys(c.metric for c in columns if c.task == task))


def column_for(columns: list[Column], task: str, metric: str, record: dict | None) -> Column:
    """The column a record's metric lands in (records without notes, e.g. missing ones, go to the first)."""
    candidates = [c for c in columns if c.task == task and c.metric == metric]
    variant = variant_of(record) if record else None
    return next((c for c in candidates if c.variant == variant), candidates[0])


# -- rows and buckets ------------------------------------------------------------------------------

def nominal_sparsity(cell: Cell, record: dict | None = None) -> float:
    """The overall sparsity a row aims at, as the method's spec says: carried by the cell (``info``, set when
    the suite expands) or the record's notes; a row that carries neither is taken at its rate (0 for dense)."""
    value = cell.info.get("nominal_sparsity")
    if value is None and isinstance(record, dict) and isinstance(record.get("notes"), dict):
        value = record["notes"].get("nominal_sparsity")
    return float(value if value is not None else cell.config.get("sparsity") or 0.0)


def _footnote(footnotes: list[str], text: str) -> int:
    """The number of ``text``'s footnote, adding it when new (numbers follow first use)."""
    if text not in footnotes:
        footnotes.append(text)
    return footnotes.index(text) + 1


def _problem(cell: Cell, record: dict | None, corrupt: dict) -> tuple[str, str]:
    """(status, reason) for a cell without usable numbers."""
    name = f"{cell.key}.json"
    if record is None and name in corrupt:
        return "corrupt", f"record {name} is unreadable ({corrupt[name]}); rerun the suite to redo the cell"
    if record is None:
        return "missing", "not run yet (no record); run the suite to fill it"
    reason = (record.get("error") or "no reason recorded").strip().splitlines()[0]
    return record["status"], reason[:240]


def protocol_of(cells: list[Cell]) -> str:
    """The protocol the cells ran under ('finetune' when the config predates the field)."""
    names = sorted({str(c.config.get("protocol") or DEFAULT_PROTOCOL) for c in cells}) or [DEFAULT_PROTOCOL]
    return ", ".join(names)


def build_board(title: str, cells: list[Cell], records: dict, corrupt: dict | None = None, *,
                description: str = "", model: str = "", scale: str = "", seeds: list | None = None,
                predictions: dict | None = None, task_columns: dict | None = None, baselines: tuple = (),
                array_problems: dict | None = None) -> Board:
    """Group the cells' records into the leaderboard: entries, intervals, bold bests, marks, paper values.

    ``predictions`` maps a record key to its per-example arrays (benchmarks.predictions.load); cells
    without them show plain values and are never bold. ``task_columns`` are the columns saved with the
    grid (``reports.render.suite_frame``); without them the registered tasks say. ``array_problems`` maps
    a record key to why the arrays its record names cannot be used (missing, unreadable): a footnote says so."""
    corrupt = corrupt or {}
    columns = build_columns(cells, records, task_columns, predictions)
    footnotes: list[str] = [c.note for c in columns if c.note]
    rows = _fill_rows(cells, records, corrupt, columns, footnotes, predictions or {}, array_problems or {})
    _attach_intervals(rows.values(), footnotes)
    buckets = _bucketize(list(rows.values()))
    dense = next((r for r in rows.values() if r.dense), None)
    trivial = {c: column_baseline(c, dense) for c in columns}
    _mark_best(buckets, columns, trivial)
    _mark_matching(buckets, columns, trivial)
    identity = next((c.config.get("model") for c in cells if isinstance(c.config.get("model"), dict)), {}) or {}
    protocol = protocol_of(cells)
    # published values are fine-tuned: beside ours only for the paper's model under the paper's protocol
    inline = paper.paper_applies(identity) and protocol == DEFAULT_PROTOCOL
    if inline:
        _attach_paper(rows.values())
    apart = [] if inline else _paper_rows_for(list(rows))
    collapsed = _collapsed_columns(list(rows.values()), columns)
    for _ in collapsed:
        _footnote(footnotes, ALL_COLLAPSED_NOTE)
    chance = _admissibility_notes(columns, trivial, footnotes)
    return Board(title, description, model, identity, scale, list(seeds or []), columns, buckets, footnotes,
                 inline, apart, _count(cells, records), protocol, collapsed, chance, tuple(baselines),
                 evaluation_sizes(cells, records, predictions or {}), evaluation_limit(cells), trivial)


def evaluation_sizes(cells: list[Cell], records: dict, predictions: dict | None = None) -> dict[str, list[int]]:
    """Task -> the distinct numbers of evaluated examples of its ok records: the length of the per-example arrays
    the intervals resample (GLUE tasks; MNLI's matched half only), else ``metrics.eval_examples`` (an MLM record's
    arrays count blocks, not examples)."""
    out: dict[str, set] = {}
    for cell in cells:
        record = records.get(cell.key) or {}
        if record.get("status") != "ok":
            continue
        size = (record.get("metrics") or {}).get("eval_examples")
        arrays = (predictions or {}).get(cell.key)
        if arrays is not None and cell.config["task"] != "mlm" and P_LABEL in arrays:
            # MNLI records count matched + mismatched in eval_examples; the board shows the matched arrays only
            size = len(arrays[P_LABEL])
        if isinstance(size, (int, float)) and not isinstance(size, bool):
            out.setdefault(cell.config["task"], set()).add(int(size))
    return {task: sorted(sizes) for task, sizes in out.items()}


def evaluation_limit(cells: list[Cell]) -> int | None:
    """The recipe's ``eval_limit`` when a cell was evaluated on a subset of its dev set, else None."""
    limits = {(c.config.get("recipe") or {}).get("eval_limit") for c in cells}
    limits.discard(None)
    return max(limits) if limits else None


def _fill_rows(cells: list[Cell], records: dict, corrupt: dict, columns: list[Column],
               footnotes: list[str], predictions: dict, array_problems: dict) -> dict[str, Row]:
    """One Row per label with an Entry per column: the seeds' values, or marks with footnoted reasons."""
    rows: dict[str, Row] = {}
    problems: dict[tuple, list] = {}
    for cell in cells:
        cfg = cell.config
        record = records.get(cell.key)
        row = rows.setdefault(cfg["label"], Row(cfg["label"], cfg["method"], 0.0, nominal_sparsity(cell, record),
                                                title=cell.info.get("method_title") or cfg["method"],
                                                color=cell.info.get("method_color"),
                                                pattern=(cfg.get("options") or {}).get("pattern")))
        ok = record is not None and record["status"] == "ok"
        for metric in cell_metrics(cfg["task"], columns):
            column = column_for(columns, cfg["task"], metric, record)
            entry = row.entries.setdefault(column, Entry("ok", metric=metric))
            entry.expected += 1
            value = record["metrics"].get(metric) if ok else None
            if isinstance(value, (int, float)) and math.isfinite(value):
                entry.values.append(float(value))
                entry.seeds.append(cfg.get("seed"))
                entry.arrays.append(stats.cell_arrays(predictions.get(cell.key), metric))
                entry.flagged |= flagged_collapsed(record, metric)
                _mark_stale(entry, record, footnotes)
                if cell.key in array_problems:
                    _note_once(entry, _footnote(footnotes, ARRAYS_NOTE.format(why=array_problems[cell.key])))
                continue
            why = ("failed", f"metric {metric!r} is missing or not finite in the record") if ok \
                else _problem(cell, record, corrupt)
            problems.setdefault((row.label, column), []).append((cfg.get("seed"), *why))
        if ok and (record.get("sparsity") or {}).get("global_after") is not None:
            row.sparsity.append(record["sparsity"]["global_after"])
    for (label, column), items in problems.items():
        _mark_problems(rows[label].entries[column], items, footnotes)
    # a row whose records all went to a task's other variant column gets a mark there, not a blank
    for row in rows.values():
        for column in columns:
            if column not in row.entries:
                row.entries[column] = Entry("na", notes=[_footnote(
                    footnotes, "not applicable: this row's results for the task are in its other column "
                               "(the column notes say why the columns are kept apart)")])
    return rows


def _mark_stale(entry: Entry, record: dict, footnotes: list[str]) -> None:
    """Footnote a value whose record was computed by other code and kept with ``run --keep-stale``."""
    if record.get("stale"):
        n = _footnote(footnotes, f"stale: computed by other code than today's ({record['stale']}); kept with "
                                 f"--keep-stale, rerun without it to replace")
        if n not in entry.notes:
            entry.notes.append(n)


def _note_once(entry: Entry, number: int) -> None:
    if number not in entry.notes:
        entry.notes.append(number)


def flagged_collapsed(record: dict, metric: str) -> bool:
    """True when a record itself says its predictions collapsed: a truthy ``collapsed`` or
    ``constant_predictions`` (optionally split-prefixed, or a dict keyed by prefix or metric) in its
    metrics, notes or top level."""
    parsed = stats.split_metric(metric)
    prefix = parsed[0] if parsed else ""
    keys = ("collapsed", f"{prefix}collapsed", "constant_predictions", f"{prefix}constant_predictions")
    for source in (record.get("metrics") or {}, record.get("notes") or {}, record):
        for key in keys:
            flag = source.get(key)
            if isinstance(flag, dict):
                flag = flag.get(prefix) or flag.get(metric)
            if flag is True or (isinstance(flag, (int, float)) and flag == 1):
                return True
    return False


def _attach_intervals(rows: Iterable[Row], footnotes: list[str]) -> None:
    """Collapse marks, and bootstrap replicates and intervals for complete cells whose every seed has arrays."""
    for row in rows:
        for entry in row.entries.values():
            have = [a for a in entry.arrays if a is not None]
            metric = entry.metric
            judged = bool(have) and len(have) == len(entry.values)
            # with every seed's arrays, collapse is judged against the label distribution; else the record says
            entry.collapsed = stats.label_blind(have, metric) if judged else (
                entry.flagged or any(stats.is_collapsed(a, metric) for a in have))
            if entry.collapsed:
                entry.notes.append(_footnote(footnotes, COLLAPSE_NOTE if judged else COLLAPSE_FLAG_NOTE))
            if entry.complete and judged:
                try:
                    entry.reps = stats.replicates(have, metric)
                except ValueError:  # seeds evaluated on different units: no interval rather than a wrong one
                    continue
                entry.ci = stats.interval(entry.reps)


def _attach_paper(rows: Iterable[Row]) -> None:
    """Published values beside ours, where the column is comparable with the paper."""
    for row in rows:
        for column, entry in row.entries.items():
            if column.paper_comparable:
                entry.paper = paper.paper_value(row.label, column.task, column.metric)


def _mark_problems(entry: Entry, items: list, footnotes: list[str]) -> None:
    """Set a cell's status from its failed/missing seeds; one footnote per distinct (status, reason)."""
    statuses = {status for _, status, _ in items}
    if entry.values:
        entry.status = "partial"
        entry.notes.append(_footnote(footnotes, f"mean over {len(entry.values)} of {entry.expected} seeds; "
                                                "not ranked and not marked as matching"))
    else:
        # the most serious status names the cell: failed > corrupt > skipped > missing
        entry.status = next(s for s in ("failed", "corrupt", "skipped", "missing") if s in statuses)
    grouped: dict[tuple, list] = {}
    for seed, status, reason in items:
        grouped.setdefault((status, reason), []).append(seed)
    for (status, reason), seeds in grouped.items():
        every = len(seeds) == entry.expected  # the same reason for every seed needs no seed list
        who = ("" if every or entry.expected < 2
               else f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: ")
        n = _footnote(footnotes, f"{STATUS_WORD[status]}: {who}{reason}")
        if n not in entry.notes:
            entry.notes.append(n)


def _bucketize(rows: list[Row]) -> list[tuple[float, list[Row]]]:
    """Group rows by nominal global sparsity (dense first), keeping the grid's order inside a bucket."""
    for row in rows:
        row.bucket = round(row.nominal, BUCKET_DIGITS)
    groups: dict[float, list[Row]] = {}
    for row in sorted(rows, key=lambda r: (not r.dense, r.bucket)):
        groups.setdefault(row.bucket, []).append(row)
    return list(groups.items())


def paired_bounds(first: Entry, second: Entry, higher_is_better: bool) -> tuple[float, float] | None:
    """95% paired bootstrap interval of (first - second), oriented so positive favours ``first``.

    None when the two cells cannot be paired: either lacks replicates, or they differ in seeds."""
    if first.reps is None or second.reps is None or first.seeds != second.seeds \
            or first.reps.shape != second.reps.shape:
        return None
    sign = 1 if higher_is_better else -1
    return stats.paired_interval(sign * first.reps, sign * second.reps)


def _mark_best(buckets: list, columns: list[Column], baselines: dict) -> None:
    """Bold the best complete cell per bucket and admissible column only when its paired interval to the
    runner-up excludes zero; a collapsed cell is never bold, and cells without arrays are never bold."""
    for _, rows in buckets:
        for column in columns:
            if not baselines[column].admissible:
                continue
            sign = 1 if column.higher_is_better else -1
            ranked = sorted(((r.label, r.entries[column]) for r in rows if r.entries[column].complete),
                            key=lambda item: -sign * item[1].mean)
            if len(ranked) < 2 or ranked[0][1].collapsed:
                continue
            (_, top), (runner, second) = ranked[:2]
            bounds = paired_bounds(top, second, column.higher_is_better)
            if bounds is not None and bounds[0] > 0:
                top.best, top.lead = True, (runner, *bounds)


def is_matching(entry: Entry, dense: Entry, higher_is_better: bool) -> bool:
    """Lottery-ticket criterion: the row's mean is no worse than dense's mean minus one dense std (over seeds)."""
    if not (entry.complete and dense.complete) or dense.std is None:
        return False
    if higher_is_better:
        return entry.mean >= dense.mean - dense.std
    return entry.mean <= dense.mean + dense.std


def likeness(entry: Entry, dense: Entry, margin: float | None) -> str:
    """'equivalent' (≈) when the 95% paired interval of (row - dense) lies within ± margin (two one-sided
    tests at 2.5% each), 'indistinct' (n.d.) when it only contains 0, else ''; never for a collapsed cell."""
    if not (entry.complete and dense.complete) or entry.collapsed or dense.collapsed:
        return ""
    bounds = paired_bounds(entry, dense, True)
    if bounds is None:
        return ""
    if margin is not None and -margin < bounds[0] and bounds[1] < margin:
        return "equivalent"
    return "indistinct" if not stats.excludes_zero(bounds) else ""


def _mark_matching(buckets: list, columns: list[Column], baselines: dict) -> None:
    """Mark entries like dense on admissible columns: ≈ / n.d. where both have arrays, else (columns without
    arrays, where admissibility cannot be judged) the seed criterion ✓ (``is_matching``)."""
    dense = next((r for _, rows in buckets for r in rows if r.dense), None)
    if dense is None:
        return
    for _, rows in buckets:
        for row in rows:
            if row.dense:
                continue
            for column in columns:
                entry, base, baseline = row.entries[column], dense.entries[column], baselines[column]
                if entry.reps is not None and baseline.admissible:
                    found = likeness(entry, base, baseline.margin)
                    entry.equivalent, entry.indistinct = found == "equivalent", found == "indistinct"
                elif base.reps is None and not entry.collapsed:
                    entry.matching = is_matching(entry, base, column.higher_is_better)


def column_baseline(column: Column, dense: Row | None) -> Baseline:
    """The column's trivial baseline on dense's units (paired with dense's replicates) and its admissibility:
    dense beats the baseline with the 95% paired interval of the gap above 0."""
    name = stats.baseline_name(column.metric)
    if name is None:
        return Baseline(None, admissible=True)
    entry = dense.entries.get(column) if dense is not None else None
    if entry is None or entry.reps is None:
        return Baseline(name, why=f"dense has no per-example arrays here, so it cannot be shown to beat the {name} "
                                  "baseline; no bold, ≈ or claim on this column")
    have = [a for a in entry.arrays if a is not None]
    reps = stats.baseline_replicates(have, entry.metric)
    if reps is None:
        return Baseline(name, why=f"no {name} baseline can be computed: the records lack its per-unit inputs "
                                  f"({stats.MFT_CORRECT}, {stats.UNIGRAM_LOGP}), so the column is not shown to "
                                  "beat a trivial predictor; no bold, ≈ or claim on this column")
    value = stats.baseline_value(have, entry.metric)
    sign = 1 if column.higher_is_better else -1
    lo, hi = stats.interval(sign * (entry.reps - reps))
    out = Baseline(name, value, stats.interval(reps), reps, (lo, hi, sign * (entry.mean - value)))
    if entry.collapsed:
        out.why = "dense itself is no better than a predictor that ignores its input"
    elif lo <= 0:
        # An interval wholly below 0 says more than "not shown better": dense is shown worse than the baseline.
        verdict, where = ("is worse than", "lies below 0") if hi < 0 else ("does not beat", "reaches 0")
        out.why = (f"dense {entry.mean:.3f} {verdict} the {name} baseline {value:.3f} (95% paired interval of "
                   f"the gap [{lo:+.3f}, {hi:+.3f}] {where}), so this column cannot rank the methods")
    out.admissible = not out.why
    return out


def _admissibility_notes(columns: list[Column], baselines: dict, footnotes: list[str]) -> dict:
    """A header footnote for each column that is not admissible for ranking, saying why."""
    return {c: _footnote(footnotes, f"{c.title}: not ranked: {baselines[c].why}") for c in columns
            if not baselines[c].admissible}


def _collapsed_columns(rows: list[Row], columns: list[Column]) -> list[Column]:
    """Columns where every row with a value collapsed."""
    out = []
    for column in columns:
        valued = [r.entries[column] for r in rows if r.entries[column].values]
        if valued and all(e.collapsed for e in valued):
            out.append(column)
    return out


def _paper_rows_for(labels: list[str]) -> list[dict]:
    """Published rows whose labels occur in the suite (dense always), one per label, in our order."""
    by_label = {}
    for row in paper.paper_rows():
        by_label.setdefault(row["label"], row)
    wanted = [label for label in labels if label in by_label]
    return [by_label[label] for label in (wanted or ["full-base"])]


def _count(cells: list[Cell], records: dict) -> dict:
    """Cells per status ('missing' = no readable record)."""
    counts = {"cells": len(cells), "ok": 0, "failed": 0, "skipped": 0, "missing": 0}
    for cell in cells:
        record = records.get(cell.key)
        status = record["status"] if record else "missing"
        counts[status] = counts.get(status, 0) + 1
    return counts


def board_from_frame(suite: Suite, frame: pd.DataFrame) -> Board:
    """The board of a suite from ``reports.render.suite_frame``'s DataFrame (cells and records in ``attrs``)."""
    records = frame.attrs.get("records", {})
    # a bare records_frame has no expected cells: then the records themselves define the grid
    cells = frame.attrs.get("cells") or [Cell(r["config"], r.get("label", "")) for r in records.values()]
    return build_board(suite.name, cells, records, frame.attrs.get("corrupt"),
                       description=describe_rows(suite, cells), model=suite.model, scale=suite.scale,
                       seeds=list(suite.seeds), predictions=frame.attrs.get("predictions"),
                       task_columns=frame.attrs.get("task_columns"),
                       baselines=tuple(frame.attrs.get("baselines") or ()),
                       array_problems=frame.attrs.get("array_problems"))


def describe_rows(suite: Suite, cells: list[Cell]) -> str:
    """The suite's description, unless its rows were replaced (``--set rows=...``): then the rows that ran."""
    from benchmarks.config import builtin_suite_names, canonical_json, load_suite

    if suite.name not in builtin_suite_names() or \
            canonical_json(list(load_suite(suite.name).rows)) == canonical_json(list(suite.rows)):
        return suite.description
    labels = ", ".join(dict.fromkeys(str(c.config.get("label")) for c in cells))
    return f"Suite {suite.name}'s grid with its rows replaced: {labels}."
