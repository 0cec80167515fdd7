"""Suite kind ``bert-correlations``: the paper's Figs 3-5, weight correlations inside a one-shot pruned BERT.

One cell per (model, prune rate); no training, so a cell is deterministic and takes seconds. The
per-layer values go in the record's ``artifacts["bert_correlations"]`` and their layer means in
``metrics``. The definitions live in :mod:`benchmarks.bertcorr.statistics`.
"""

from __future__ import annotations

import math

from benchmarks.bertcorr import statistics
from benchmarks.bertcorr.fields import ARTIFACT
from benchmarks.config import Cell, Suite
from benchmarks.errors import UserError
from benchmarks.kinds.base import CellOutcome, RunContext
from benchmarks.models import resolve_model
from benchmarks.registry import register_kind
from methods.select import check_rate

KIND = "bert-correlations"
OPTIONS = ("prune_rate",)
NOTES = {
    "orientation": "torch Linear weights are [out, in]: a row is one output feature, a column one input feature",
    "node_sets": "intermediate: rows of intermediate.dense vs columns of output.dense; attention_output: rows of "
                 "attention.output.dense vs columns of intermediate.dense",
    "means": "mean_abs and mean are over nonzero weights; nodes without any are left out of those correlations",
    "pruning": "each encoder weight matrix pruned independently by magnitude at prune_rate",
}


def prune_rates(suite: Suite) -> list[float]:
    """The suite's ``options.prune_rate`` (a rate or a list of rates), validated."""
    raw = suite.options.get("prune_rate", statistics.DEFAULT_RATE)
    rates = raw if isinstance(raw, (list, tuple)) else [raw]
    if not rates:
        raise UserError(f"suite {suite.name!r}: options.prune_rate is empty; use e.g. --set options.prune_rate=0.5")
    out = []
    for rate in rates:
        try:
            out.append(check_rate(rate))
        except ValueError:
            raise UserError(f"suite {suite.name!r}: options.prune_rate {rate!r} is outside [0, 1); "
                            "use a rate such as 0.5") from None
    if len(set(out)) != len(out):
        raise UserError(f"suite {suite.name!r}: options.prune_rate lists a rate twice; remove the duplicate")
    return out


def layer_means(result: dict) -> dict[str, float | None]:
    """The mean over layers of every correlation series (None when no layer has a value)."""
    out = {}
    for name, values in statistics.series(result).items():
        if name.startswith("fig3_nodes"):
            continue
        finite = [v for v in values if v is not None and math.isfinite(v)]
        out[f"{name}.layer_mean"] = sum(finite) / len(finite) if finite else None
    return out


@register_kind(KIND)
class BertCorrelations:
    """Prune each BERT weight matrix by magnitude, then correlate weights (paper Figs 3, 4 and 5)."""

    loads_pretrained = True  # its model comes from a folder or the hub: the run checks a hub id before the first cell

    def validate(self, suite: Suite) -> None:
        source = f"suite {suite.name!r}"
        if suite.tasks or suite.rows:
            raise UserError(f"{source}: kind {KIND!r} takes no tasks or rows; remove them "
                            "(set the rate with options.prune_rate)")
        if suite.recipe or suite.scales:
            raise UserError(f"{source}: kind {KIND!r} trains nothing, so it takes no recipe or scales; remove them "
                            "(set the rate with options.prune_rate)")
        unknown = sorted(set(suite.options) - set(OPTIONS))
        if unknown:
            raise UserError(f"{source}: unknown option {unknown[0]!r} for kind {KIND!r}; known: {', '.join(OPTIONS)}")
        prune_rates(suite)

    def cells(self, suite: Suite) -> list[Cell]:
        self.validate(suite)
        model = resolve_model(suite.model, suite.model_revision)
        cells = []
        for rate in prune_rates(suite):
            config = {"kind": KIND, "model": model.identity, "prune_rate": rate, "version": statistics.ANALYSIS_VERSION}
            cells.append(Cell(config, f"{suite.model} prune_rate={rate:g}"))
        return cells

    def run(self, cell: Cell, ctx: RunContext) -> CellOutcome:
        model = _load(ctx)
        result = statistics.analyze_model(model, cell.config["prune_rate"])
        per_layer = result["sparsity"]
        sparsity = {"global_after": sum(per_layer) / len(per_layer), "per_layer_after": per_layer}
        metrics = {"num_layers": result["num_layers"], **layer_means(result)}
        return CellOutcome(metrics, sparsity, notes=dict(NOTES), artifacts={ARTIFACT: result})


def _load(ctx: RunContext):
    """The suite's pre-trained encoder, loaded once per run (cells at several rates share it)."""
    from transformers import AutoModel

    ref = ctx.model_ref
    if ref.location not in ctx.cache:
        revision = None if ref.is_local else ref.identity.get("revision")
        try:
            ctx.cache[ref.location] = AutoModel.from_pretrained(ref.location, revision=revision)
        except OSError as exc:
            first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise RuntimeError(f"cannot load model {ref.name!r} ({first}); offline, use --model minilm-l6") from None
    return ctx.cache[ref.location]
