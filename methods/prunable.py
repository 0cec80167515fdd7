"""The prunable set: every 2-D weight inside the encoder layers of a BERT-style model."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

# Matches "...encoder.layer.<i>.<rest>.weight" in BertModel, BertFor*, and other BERT-likes.
_LAYER_RE = re.compile(r"(?:^|\.)encoder\.layers?\.(\d+)\.(.+)\.weight$")


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable matrix: its parameter name, encoder layer index and the tensor itself."""

    name: str
    layer: int
    weight: torch.Tensor


def prunable_weights(model: nn.Module, include_embeddings: bool = False) -> list[PrunableWeight]:
    """Encoder 2-D weights in parameter order (72 matrices in bert-base); embeddings only on request."""
    out = []
    for name, param in model.named_parameters():
        match = _LAYER_RE.search(name)
        if match and param.dim() == 2:
            out.append(PrunableWeight(name, int(match.group(1)), param))
        elif include_embeddings and "embeddings" in name and name.endswith("weight") and param.dim() == 2:
            out.append(PrunableWeight(name, -1, param))
    if not out:
        raise ValueError("model has no encoder.layer.<i>.*.weight matrices to prune")
    return out


def num_layers(weights: list[PrunableWeight]) -> int:
    """Number of encoder layers spanned by the prunable set."""
    return max(w.layer for w in weights) + 1


def layer_halves(weights: list[PrunableWeight]) -> tuple[list[PrunableWeight], list[PrunableWeight]]:
    """Split into the lower half [0, L/2) (nearest the embeddings) and the upper half [L/2, L)."""
    half = num_layers(weights) // 2
    lower = [w for w in weights if 0 <= w.layer < half]
    upper = [w for w in weights if w.layer >= half]
    return lower, upper
