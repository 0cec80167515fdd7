"""Training-free (zeroshot) and linear-probe protocols on pooled embeddings, and drift to the dense model.

Everything past ``embed`` is plain numpy (plus scikit-learn for the probe), so tests can recompute
each number directly. See docs/protocols.md for what each protocol can and cannot say.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

POOLINGS = ("mean", "cls")
# Zero-shot rules (GlueTask.zeroshot_rule): nearest class centroid by cosine (of the sentence, or of
# [|u-v|, u*v] for pairs); one cosine threshold on the pair's cosine; the pair's cosine as the score.
CENTROID, THRESHOLD, COSINE = "centroid", "threshold", "cosine"
# The dense model's identity in the embedding cache (what a pruned row's method, rate, options, seed are).
DENSE_IDENTITY = {"method": "dense", "sparsity": None, "options": {}, "seed": None}


# -- embeddings ---------------------------------------------------------------------------------------
@torch.inference_mode()
def embed(encoder: torch.nn.Module, tokenized: dict, pooling: str, batch_size: int, device=None) -> np.ndarray:
    """Pooled last hidden states (float32, one row per text, input order) of an already tokenized list.

    ``mean`` is the attention-masked mean over tokens (all-MiniLM-L6-v2's own pooling), ``cls`` the
    first token's state. Texts run in order of length (less padding) and are put back in input order.
    """
    ids = tokenized["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = None
    encoder.eval()
    for start in range(0, len(ids), batch_size):
        idx = order[start:start + batch_size]
        batch = _pad([{k: tokenized[k][i] for k in tokenized} for i in idx], device)
        hidden = encoder(**batch)[0].float()
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if out is None:
            out = np.zeros((len(ids), pooled.shape[1]), np.float32)
        out[idx] = pooled.cpu().numpy()
    return out if out is not None else np.zeros((0, 0), np.float32)


def _pad(items: list[dict], device) -> dict:
    """Right-pad a batch of tokenized items (ids 0, mask 0) into tensors."""
    width = max(len(it["input_ids"]) for it in items)
    batch = {}
    for key in items[0]:
        rows = [list(it[key]) + [0] * (width - len(it[key])) for it in items]
        batch[key] = torch.tensor(rows, dtype=torch.long, device=device)
    if "attention_mask" not in batch:
        batch["attention_mask"] = torch.tensor([[1] * len(it["input_ids"]) + [0] * (width - len(it["input_ids"]))
                                                for it in items], dtype=torch.long, device=device)
    return batch


def pristine(ctx, loader, key: tuple) -> torch.nn.Module:
    """A pre-trained model loaded once per run (``loader()``), kept unpruned in ``ctx.cache``; callers copy it."""
    cache = getattr(ctx, "cache", None)
    if cache is None:
        return loader()
    if key not in cache:
        model = loader()
        model.eval()
        cache[key] = model
    return cache[key]


def fresh_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An independent copy of a cached pre-trained model (pruning and training never touch the cache)."""
    return copy.deepcopy(model)


# -- geometry -----------------------------------------------------------------------------------------
def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), in float64."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (float64, clipped to [-1, 1])."""
    return np.clip(np.sum(normalize(a) * normalize(b), axis=1), -1.0, 1.0)


def pair_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[|u-v|, u*v] of the unit-length sentence embeddings: the zero-shot pair representation."""
    u, v = normalize(u), normalize(v)
    return np.concatenate([np.abs(u - v), u * v], axis=1)


def probe_features(u: np.ndarray, v: np.ndarray | None) -> np.ndarray:
    """The probe's input: u for one sentence, [u, v, |u-v|, u*v] for a pair (raw embeddings)."""
    if v is None:
        return np.asarray(u, np.float64)
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


def centroids(features: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Unit-length mean of the unit-length features of each class (a class without examples: zeros)."""
    unit = normalize(features)
    out = np.zeros((num_labels, unit.shape[1]))
    for c in range(num_labels):
        if np.any(labels == c):
            out[c] = unit[labels == c].mean(0)
    return normalize(out)


def nearest_centroid(features: np.ndarray, cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, cosine to every centroid) by the largest cosine; ties go to the lower class."""
    sims = normalize(features) @ cents.T
    return sims.argmax(1), sims


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t that maximises accuracy of ``score >= t -> 1`` on (scores, labels).

    Candidates are the midpoints between consecutive distinct scores plus both ends; ties go to the
    lowest candidate, so the choice is deterministic.
    """
    s = np.unique(np.asarray(scores, np.float64))
    candidates = np.concatenate([[s[0] - 1.0], (s[:-1] + s[1:]) / 2, [s[-1] + 1.0]])
    acc = [np.mean((scores >= t) == (labels == 1)) for t in candidates]
    return float(candidates[int(np.argmax(acc))])


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) between two sets of representations of the same examples."""
    x = np.asarray(x, np.float64) - np.mean(x, 0)
    y = np.asarray(y, np.float64) - np.mean(y, 0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denom) if denom > 0 else 0.0


def drift(pruned: list[np.ndarray], dense: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-example cosine of pruned to dense embeddings (mean over a pair's two sentences) and linear CKA
    of all embedded sentences stacked."""
    cos = np.mean([row_cosine(p, d) for p, d in zip(pruned, dense)], axis=0)
    return cos, linear_cka(np.concatenate(pruned), np.concatenate(dense))


# -- the two training-light protocols -------------------------------------------------------------------
def zeroshot_predict(rule: str, fit: tuple, evaluate: tuple, num_labels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, binary score or None) of a zero-shot rule.

    ``fit`` and ``evaluate`` are (u, v or None, labels); ``fit`` is unused by the cosine rule.
    """
    (fu, fv, fy), (eu, ev, _) = fit, evaluate
    if rule == COSINE:
        cos = row_cosine(eu, ev)
        return cos, None
    if rule == THRESHOLD:
        t = best_threshold(row_cosine(fu, fv), fy)
        cos = row_cosine(eu, ev)
        return (cos >= t).astype(np.int64), cos
    if rule == CENTROID:
        ffeat = fu if fv is None else pair_features(fu, fv)
        efeat = eu if ev is None else pair_features(eu, ev)
        pred, sims = nearest_centroid(efeat, centroids(ffeat, fy, num_labels))
        return pred, (sims[:, 1] - sims[:, 0]) if num_labels == 2 else None
    raise ValueError(f"unknown zero-shot rule {rule!r}; use one of {CENTROID}, {THRESHOLD}, {COSINE}")


def probe_predict(fit: tuple, evaluate: tuple, regression: bool, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, binary score or None) of a linear probe fitted on frozen features.

    Standardised features, then LogisticRegression (L2, C=1, lbfgs) for classes or Ridge (alpha=1) for
    scores; deterministic for given inputs.
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (fu, fv, fy), (eu, ev, _) = fit, evaluate
    x_fit, x_eval = probe_features(fu, fv), probe_features(eu, ev)
    if regression:
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x_fit, fy)
        return model.predict(x_eval).astype(np.float64), None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
    model.fit(x_fit, fy)
    pred = model.predict(x_eval)
    score = model.decision_function(x_eval) if len(np.unique(fy)) == 2 else None
    return pred.astype(np.int64), score


def roc_auc(score: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` for class 1 (ties count half), as sklearn's roc_auc_score;
    None (undefined, a null metric) when the labels hold one class only."""
    from scipy.stats import rankdata

    labels = np.asarray(labels)
    pos, neg = labels == 1, labels != 1
    if not pos.any() or not neg.any():
        return None
    ranks = rankdata(score)
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))
