"""probe: a scikit-learn linear model on the pruned encoder's frozen pooled embeddings (docs/protocols.md)."""

from __future__ import annotations

from benchmarks.protocols.base import ProtocolOutput
from benchmarks.protocols.embed import probe_predict
from benchmarks.protocols.embedding import embedding_protocol
from benchmarks.registry import register_protocol

PROBE_NOTE = ("standardised features, LogisticRegression (C=1) or Ridge (alpha=1) fitted on the fit subset "
              "(seed 1234 + the cell seed)")


@register_protocol("probe", pooling=True)
def probe(task, train, evals, model_ref, pruner, recipe, seed, ctx) -> ProtocolOutput:
    """A linear head (logistic or ridge regression) fitted on the frozen pooled embeddings of the fit subset."""

    def head(fit: tuple, evaluate: tuple) -> tuple:
        return probe_predict(fit, evaluate, task.regression, seed)

    out = embedding_protocol(task, train, evals, model_ref, pruner, recipe, ctx, head)
    out.notes["probe_model"] = PROBE_NOTE
    return out
