"""Tiny BERT checkpoints and a tiny data mirror for the BERT-grid tests (built in tmp, never committed).

The mirror holds the first rows of the real files in ../shared/data (same layout, headers and BOMs),
so the loaders see real GLUE/WikiText text; the models are random 4-layer BERTs with the MiniLM
tokenizer (the bert-base-uncased vocabulary).
"""

from __future__ import annotations

import functools
from pathlib import Path

from benchmarks import paths

# Files copied (first N lines, header included) into the tiny mirror.
MIRROR_FILES = ("glue/MRPC/train.tsv", "glue/MRPC/dev.tsv", "glue/STS-B/train.tsv", "glue/STS-B/dev.tsv",
                "glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "glue/QNLI/dev.tsv", "wikitext-2-raw/wiki.test.raw")


def real_mirror() -> Path | None:
    """The shared data mirror, or None where this machine has none."""
    return paths.default_data_dir()


def make_mirror(root: Path, lines: int = 41, wiki_lines: int = 120) -> Path:
    """A mirror laid out like ../shared/data with the first ``lines`` lines of each real file."""
    src = real_mirror()
    for rel in MIRROR_FILES:
        n = wiki_lines if rel.endswith(".raw") else lines
        with open(src / rel, "rb") as fh:
            head = b"".join(line for _, line in zip(range(n), fh))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(head)
    return root


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from transformers import AutoTokenizer

    from benchmarks.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("minilm-l6").location)


def make_model(folder: Path, mlm_head: bool, layers: int = 4, seed: int = 0) -> Path:
    """Save a tiny random BERT (with or without an MLM head), dropout off, plus the MiniLM tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    model = BertForMaskedLM(config) if mlm_head else BertModel(config)
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder
