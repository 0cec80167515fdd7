"""The paper's BERT grid: rows (method, rate) x tasks x seeds, each cell prune -> fine-tune -> evaluate."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from benchmarks.allocator import keep_freed_memory
from benchmarks.calibration import cell_calibration
from benchmarks.config import FULL_SCALE, Cell, Suite, canonical_json
from benchmarks.cost import cost_config, measure_cost
from benchmarks.errors import UserError
from benchmarks.identity import identity, key_fields
from benchmarks.iterative import Train, iterative_prune
from benchmarks.kinds.base import CellOutcome, RunContext
from benchmarks.masking import apply_pruning, apply_result, prune_with_method
from benchmarks.models import resolve_model
from benchmarks.protocols.base import FINETUNE
from benchmarks.protocols.embed import DENSE_IDENTITY, POOLINGS
from benchmarks.recipes import FAMILIES, check_recipe
from benchmarks.registry import (
    METHODS,
    PROTOCOLS,
    TASKS,
    method_spec,
    protocol_spec,
    register_kind,
    trains_between_rounds,
)
from methods import method_label, method_nominal
from methods.patterns import canonical_pattern
from methods.select import check_rate
from methods.structured import StructuredResult

DENSE = "dense"


@dataclass(frozen=True)
class Row:
    """One leaderboard row: a method with its rate and options, or the dense model."""

    method: str
    sparsity: float | None
    options: tuple = ()  # sorted (key, value) pairs

    @property
    def label(self) -> str:
        if self.method == DENSE:
            return "full-base"
        return method_label(self.method, self.sparsity, dict(self.options))  # the method's spec decides

    def info(self) -> dict:
        """What reports need about the row and cannot ask the method (they stay torch-free): spec facts."""
        if self.method == DENSE:
            return {"nominal_sparsity": 0.0}
        spec = method_spec(self.method)
        return {"nominal_sparsity": self.nominal, "method_title": spec.title or self.method, "method_color": spec.color}

    @property
    def nominal(self) -> float:
        """The overall sparsity the row aims at (the method's spec; 0 for dense): the leaderboard's bucket."""
        return 0.0 if self.method == DENSE else method_nominal(self.method, self.sparsity, dict(self.options))

    def as_config(self) -> dict:
        """The row's part of the cell config; a bumped or plug-in method adds its identity (old keys stay)."""
        code = {} if self.method == DENSE else key_fields(METHODS, self.method)
        return {"method": self.method, "sparsity": self.sparsity, "options": dict(self.options), "label": self.label,
                **code}


def parse_rows(spec: list, source: str) -> list[Row]:
    """Expand the suite's ``rows`` field: 'dense', or {method, sparsity: x | [x, ...], **options}.

    Each method's ``MethodSpec`` checks its options (closed), rates and sparsity; two rows with one
    label are bad input (the leaderboard keys rows by label).
    """
    rows: list[Row] = []
    for item in spec:
        if item == DENSE:
            rows.append(Row(DENSE, None))
            continue
        if not isinstance(item, dict) or "method" not in item:
            raise UserError(f"{source}: row {item!r} must be 'dense' or a mapping with a 'method' key")
        item = dict(item)
        method = item.pop("method")
        if not isinstance(method, str):
            raise UserError(f"{source}: row {item!r}: 'method' must be a method name, e.g. global")
        METHODS.get(method)  # unknown method -> one-line error with close names
        info = method_spec(method)
        rates = item.pop("sparsity", None)
        rates = rates if isinstance(rates, list) else [rates]
        for key in info.rate_options:
            if item.get(key) is not None:
                _rate(item[key], f"{source}: {method} {key} rate")
        for rate in rates:
            try:
                if isinstance(item.get("pattern"), str) or getattr(item.get("pattern"), "yaml_text", None):
                    item["pattern"] = canonical_pattern(item["pattern"])  # one spelling: "02:04" is "2:4"
                info.check(rate, item)
            except ValueError as exc:
                raise UserError(f"{source}: {exc}") from None
            if rate is not None:
                _rate(rate, f"{source}: {method} sparsity")
            if info.validate is not None:  # e.g. a sparsity that conflicts with the pattern's N/M
                try:
                    info.validate(rate, dict(item))
                except ValueError as exc:
                    raise UserError(f"{source}: {exc}") from None
            rows.append(Row(method, None if rate is None else float(rate), tuple(sorted(item.items()))))
    _check_labels(rows, source)
    return rows


def _check_labels(rows: list[Row], source: str) -> None:
    """Two different rows with one label would be averaged into one leaderboard row: bad input."""
    seen: dict[str, Row] = {}
    for row in rows:
        other = seen.setdefault(row.label, row)
        if other != row:
            raise UserError(f"{source}: two rows have the label {row.label!r} ({_row_text(other)} and "
                            f"{_row_text(row)}); remove one or give them different options")


def _row_text(row: Row) -> str:
    parts = [f"method: {row.method}", *([f"sparsity: {row.sparsity:g}"] if row.sparsity is not None else []),
             *(f"{k}: {v}" for k, v in row.options)]
    return "{" + ", ".join(parts) + "}"


def _rate(value, what: str) -> float:
    try:
        return check_rate(value)
    except ValueError:
        raise UserError(f"{what} {value!r} is outside [0, 1); use a rate such as 0.5") from None


def make_pruner(row_config: dict, seed: int, ctx: RunContext | None = None) -> "CellPruner":
    """A function that prunes a freshly loaded model in place and returns its masks (None when dense)."""
    return CellPruner(row_config, seed, ctx)


class CellPruner:
    """The cell's pruning step; after the call ``notes``/``data`` hold what the record must add
    (``weights_updated`` when the method changed kept weights; the calibration files' sha256)."""

    # A protocol that fine-tunes passes its fine-tuning as ``train=``: an iterative method needs it between rounds.
    accepts_training = True

    def __init__(self, row_config: dict, seed: int, ctx: RunContext | None) -> None:
        self.config, self.seed, self.ctx = row_config, seed, ctx
        self.notes: dict = {}
        self.data: dict = {}

    def __call__(self, model: torch.nn.Module, train: Train | None = None):
        dense = copy.deepcopy(model) if self.config.get("cost") else None  # the same-process latency baseline
        masks = self._prune(model, train)
        if dense is not None:
            self.notes = {**self.notes, "cost": self._cost(dense, model)}
        return masks

    def _prune(self, model: torch.nn.Module, train: Train | None = None):
        if self.config["method"] == DENSE:
            return None
        # a ticket depends on the task it was fine-tuned on: never cached across tasks
        if trains_between_rounds(self.config["method"]):
            if train is None:
                raise RuntimeError(f"method {self.config['method']!r} fine-tunes between its pruning rounds, and "
                                   "this task's protocol does not fine-tune")
            masks, self.notes, self.data = iterative_prune(model, self.config, self.seed, self.ctx, train)
            return masks
        cache = _pruned_cache(self.ctx)
        key = self._key(model)
        if cache is not None and key in cache:  # another task of this row pruned the same model: reuse it
            masks, weights, self.notes, self.data = cache[key]
            if isinstance(weights, StructuredResult):  # re-applied: the model shrinks again
                return apply_result(model, weights)[0]
            apply_pruning(model, masks, weights)
            return dict(masks)
        masks, self.notes, self.data, result = prune_with_method(model, self.config, self.seed, self.ctx,
                                                                 with_result=True)
        if cache is not None:
            params = dict(model.named_parameters())
            kept = result if isinstance(result, StructuredResult) else {
                name: params[name].detach().clone() for name in masks}
            cache[key] = (masks, kept, self.notes, self.data)
            # Cells run row by row: the oldest rows are done. A stack of K cells prunes K rows before any trains.
            while len(cache) > max(PRUNED_CACHE_SIZE, getattr(getattr(self.ctx, "stack", None), "size", 1)):
                cache.pop(next(iter(cache)))
        return masks

    def _cost(self, dense: torch.nn.Module, pruned: torch.nn.Module) -> dict:
        """The row's cost note, measured once per process and row (every task of the row prunes the same model)."""
        cache = None if self.ctx is None or getattr(self.ctx, "cache", None) is None else self.ctx.cache
        key = ("cost", self._key(dense))
        if cache is not None and key in cache:
            return cache[key]
        pattern = (self.config.get("options") or {}).get("pattern")
        cost = measure_cost(dense, pruned, self.config["cost"], pattern)
        if cache is not None:
            cache[key] = cost
        return cost

    def _key(self, model: torch.nn.Module) -> tuple:
        """What decides the pruned weights: the model (identity, class, parameter names and shapes) and the
        row (method, rate, options, calibration config) with the seed."""
        identity = getattr(getattr(self.ctx, "model_ref", None), "identity", None)
        shapes = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
        row = {k: self.config.get(k) for k in ("method", "sparsity", "options", "calibration", "cost")}
        return (canonical_json(identity), type(model).__name__, shapes, canonical_json(row), self.seed)


# Pruned models kept per process (masks + the masked matrices' final values, ~50 MB for MiniLM-L6 each):
# a GLUE task prunes the bare encoder, the MLM task the masked-LM model, so one row needs two entries.
PRUNED_CACHE_SIZE = 2


def _pruned_cache(ctx: RunContext | None) -> dict | None:
    """The run's cache of pruned models (insertion-ordered, oldest evicted first); None without a context."""
    if ctx is None or getattr(ctx, "cache", None) is None:
        return None
    return ctx.cache.setdefault(("pruned-models",), {})


@register_kind("prune-finetune")
class PruneFinetune:
    """Prune a pre-trained model one-shot, fine-tune with the mask fixed (or not, for MLM), evaluate."""

    loads_pretrained = True  # its model comes from a folder or the hub: the run checks a hub id before the first cell

    def validate(self, suite: Suite) -> None:
        source = f"suite {suite.name!r}"
        if not suite.tasks:
            raise UserError(f"{source}: no tasks; add e.g. 'tasks: [sst2, mrpc]'")
        for task in suite.tasks:
            TASKS.get(task)
        if not suite.rows:
            raise UserError(f"{source}: no rows; add e.g. 'rows: [dense, {{method: global, sparsity: [0.5]}}]'")
        parse_rows(list(suite.rows), source)
        suite_cost(suite)
        suite.resolved_recipe()
        check_recipes(suite)
        check_protocol(suite)
        check_training_rows(suite)

    def cells(self, suite: Suite) -> list[Cell]:
        self.validate(suite)
        model = resolve_model(suite.model, suite.model_revision)
        recipe = suite.resolved_recipe()
        cells = []
        for row in parse_rows(list(suite.rows), f"suite {suite.name!r}"):
            for task in suite.tasks:
                for seed in suite.seeds:
                    config = {
                        "kind": "prune-finetune",
                        "model": model.identity,
                        **row.as_config(),
                        **cell_calibration(row.method, suite.calibration, f"suite {suite.name!r}"),
                        **suite_cost(suite),
                        "task": task,
                        "task_version": TASKS.get(task).version,
                        **key_fields(TASKS, task),  # a plug-in task's origin
                        "recipe": cell_key_recipe(recipe),
                        "scale": suite.scale,
                        "seed": seed,
                        **protocol_fields(suite),
                    }
                    cells.append(Cell(config, f"{row.label} {task} seed={seed}", row.info()))
        return cells

    def run(self, cell: Cell, ctx: RunContext) -> CellOutcome:
        keep_freed_memory()  # once per process: training steps reuse their freed buffers (benchmarks/allocator.py)
        cfg = cell.config
        task = TASKS.get(cfg["task"])
        protocol = cfg.get("protocol", FINETUNE)
        # Tasks learn the protocol, and what decides the pruned weights; a training-free protocol's embedding
        # cache is on when it is set, and is keyed by the pruned weights' digest (benchmarks/protocols/embedding.py).
        pruned_as = (DENSE_IDENTITY if cfg["method"] == DENSE
                     else {**{k: cfg.get(k) for k in ("method", "sparsity", "options", "seed", "calibration")},
                           "method_code": identity(METHODS, cfg["method"])})
        trains = protocol_spec(protocol).trains  # a trained model's embeddings are not worth caching
        cell_fields = {"protocol": protocol, "pooling": cfg.get("pooling", "mean"),
                       "pruned_as": None if trains else pruned_as}
        recipe = cell_recipe(task, cfg["recipe"], cell_fields, cell.label)
        pruner = make_pruner(cfg, cfg["seed"], ctx)
        result = task.run(ctx.model_ref, pruner, recipe, cfg["seed"], ctx)
        sparsity = {
            "global_before": result.sparsity_before["global"],
            "global_after": result.sparsity_after["global"],
            "zeros_before": result.sparsity_before["zeros"],
            "zeros_after": result.sparsity_after["zeros"],
            "prunable_total": result.sparsity_before["total"],
            "per_layer_before": result.sparsity_before["per_layer"],
            "per_layer_after": result.sparsity_after["per_layer"],
        }
        # What the reports need about the row, so they read records and never ask a method (docs/harness.md).
        row = Row(cfg["method"], cfg.get("sparsity"), tuple(sorted((cfg.get("options") or {}).items())))
        notes = {"protocol": protocol, **result.notes, **pruner.notes, "nominal_sparsity": row.nominal}
        return CellOutcome(result.metrics, sparsity, {**result.data, **pruner.data}, notes,
                           arrays=getattr(result, "arrays", {}) or {})


def suite_cost(suite: Suite) -> dict:
    """``{"cost": config}`` when the suite measures cost (``options: {cost: {...}}``), else {} (keys unchanged)."""
    source = f"suite {suite.name!r}"
    unknown = sorted(set(suite.options) - {"cost"})
    if unknown:
        raise UserError(f"{source}: unknown option(s) {unknown} for a prune-finetune suite; the only one is "
                        f"'cost', e.g. options: {{cost: {{seq_len: 128}}}}")
    return {"cost": cost_config(suite.options["cost"], source)} if "cost" in suite.options else {}


def _families(suite: Suite) -> tuple[list, bool]:
    """The recipe families of the suite's tasks, and whether all declare one (else unknown keys may be a plug-in's)."""
    families, closed = [], True
    for name in suite.tasks:
        family = getattr(TASKS.get(name), "recipe_type", None)
        closed = closed and family is not None
        if family is not None and family not in families:
            families.append(family)
    return families, closed


def check_recipes(suite: Suite) -> None:
    """The recipe in every scale of the suite is one its tasks' recipe families accept (bad input: exit 2)."""
    families, closed = _families(suite)
    # Every built-in family checks its keys, used or not by these tasks: a bad value stays bad under --set tasks=...
    families = [*FAMILIES, *(f for f in families if f not in FAMILIES)]
    for scale, recipe in suite.scale_recipes().items():
        source = f"suite {suite.name!r}" + ("" if scale == FULL_SCALE else f" scale {scale!r}")
        check_recipe(recipe, families, source, closed)


def cell_recipe(task, recipe: dict, cell_fields: dict, label: str):
    """The task's typed recipe for one cell (built once, passed down); a plug-in task without one gets the mapping."""
    family = getattr(task, "recipe_type", None)
    if family is None:
        return recipe if cell_fields["protocol"] == FINETUNE else {**recipe, **cell_fields}
    return family.from_mapping(recipe, f"cell {label}", ignore=set(recipe) - set(family.keys()), **cell_fields)


def cell_key_recipe(recipe: dict) -> dict:
    """The recipe as the cell key holds it: ``precision: fp32`` (the default) left out, so keys made before the
    option existed stay the keys of the same cells."""
    return {k: v for k, v in recipe.items() if not (k == "precision" and v == "fp32")}


def protocol_fields(suite: Suite) -> dict:
    """What the cell key adds for the suite's protocol: nothing for finetune (its cells keep the keys they always
    had); ``protocol`` and ``pooling`` otherwise, and ``protocol_version`` once a protocol's version is not "1"."""
    if suite.protocol == FINETUNE:
        return {}
    version = protocol_spec(suite.protocol).version
    return {"protocol": suite.protocol, "pooling": suite.pooling,
            **({"protocol_version": version} if version != "1" else {})}


def check_training_rows(suite: Suite) -> None:
    """Rows of an iterative method (one that fine-tunes between its pruning rounds, such as imp) need a protocol
    that fine-tunes and tasks that are fine-tuned (bad input: exit 2)."""
    source = f"suite {suite.name!r}"
    iterative = sorted({row.method for row in parse_rows(list(suite.rows), source)
                        if trains_between_rounds(row.method)})
    if not iterative:
        return
    names = " and ".join(iterative)
    if not protocol_spec(suite.protocol).trains:
        raise UserError(f"{source}: method {names} fine-tunes between its pruning rounds, and protocol "
                        f"{suite.protocol!r} fine-tunes nothing; use --set protocol=finetune or drop its rows")
    static = [task for task in suite.tasks if not getattr(TASKS.get(task), "fine_tunes", False)]
    if static:
        raise UserError(f"{source}: method {names} fine-tunes between its pruning rounds, and task(s) "
                        f"{', '.join(static)} are not fine-tuned; run its rows on tasks that are, e.g. "
                        f"--set tasks=[sst2,mrpc]")


def check_protocol(suite: Suite) -> None:
    """The suite's protocol and pooling are known, and every task supports the protocol (bad input: exit 2)."""
    source = f"suite {suite.name!r}"
    if suite.protocol not in PROTOCOLS:
        raise UserError(f"{source}: unknown protocol {suite.protocol!r}; use one of {', '.join(PROTOCOLS.names())} "
                        f"(--set protocol=zeroshot)")
    if suite.pooling not in POOLINGS:
        raise UserError(f"{source}: unknown pooling {suite.pooling!r}; use one of {', '.join(POOLINGS)}")
    if not protocol_spec(suite.protocol).pooling and suite.pooling != "mean":
        raise UserError(f"{source}: pooling applies to the protocols on pooled embeddings such as zeroshot and probe "
                        f"({suite.protocol} does not pool); drop --set pooling or add --set protocol=zeroshot")
    if suite.scale in PROTOCOLS and suite.scale != suite.protocol:
        raise UserError(f"{source}: scale {suite.scale!r} is sized for protocol {suite.scale!r}, not "
                        f"{suite.protocol!r}; add --set protocol={suite.scale} or choose another scale")
    same = {getattr(TASKS.get(task), "same_as", {}).get(suite.protocol) for task in suite.tasks}
    if len(same) == 1 and None not in same:  # every task would measure exactly what another protocol does
        raise UserError(f"{source}: task(s) {', '.join(suite.tasks)} measure under protocol {suite.protocol!r} "
                        f"exactly what protocol {same.pop()!r} measures (nothing is fitted); use that protocol, or "
                        f"add a task the protocol changes")
    for task in suite.tasks:
        supported = getattr(TASKS.get(task), "protocols", (FINETUNE,))
        if suite.protocol not in supported:
            raise UserError(f"{source}: task {task!r} does not support protocol {suite.protocol!r} "
                            f"(it supports {', '.join(supported)}); remove it from tasks or change the protocol")
