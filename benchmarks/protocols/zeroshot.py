"""zeroshot: fixed training-free rules on the pruned encoder's pooled embeddings (docs/protocols.md)."""

from __future__ import annotations

from benchmarks.protocols.base import ProtocolOutput
from benchmarks.protocols.embed import CENTROID, COSINE, THRESHOLD, zeroshot_predict
from benchmarks.protocols.embedding import embedding_protocol
from benchmarks.registry import register_protocol

# The rule each task chooses (its ``zeroshot_rule``), as the record's notes name it.
RULE_NOTE = {
    CENTROID: ("nearest class centroid by cosine (pairs: of [|u-v|, u*v]); centroids from the fit subset "
               "(seed 1234 + the cell seed)"),
    THRESHOLD: ("cosine of the two sentences against one threshold chosen for accuracy on the fit subset "
                "(seed 1234 + the cell seed)"),
    COSINE: "cosine of the two sentences' embeddings as the predicted similarity; nothing fitted",
}


@register_protocol("zeroshot", pooling=True)
def zeroshot(task, train, evals, model_ref, pruner, recipe, seed, ctx) -> ProtocolOutput:
    """Training-free rules on the pruned encoder's pooled embeddings: class centroids, one threshold, cosine."""
    rule = task.zeroshot_rule

    def head(fit: tuple, evaluate: tuple) -> tuple:
        return zeroshot_predict(rule, fit, evaluate, task.num_labels)

    out = embedding_protocol(task, train, evals, model_ref, pruner, recipe, ctx, head, fits=rule != COSINE)
    out.notes["zeroshot_rule"] = RULE_NOTE[rule]
    return out
