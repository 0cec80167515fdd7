"""Local stand-ins for the hub repositories the code loads when it has no mirror (built in tmp, never committed).

Each stand-in is a folder in the hub's own layout, made from a few rows of the real mirror files:
``<config>/<split>-00000-of-00001.parquet`` files written by ``datasets`` with the hub's features, and a
README.md whose YAML header declares the configs and features as the hub's dataset card does. Pointed
to by $PRUNEBENCH_HUB_DIR, the code's hub paths load them with the same ``datasets.load_dataset`` call
they make against the hub.

What the hub serves is written here from the dataset cards, independently of benchmarks/data.py
(nyu-mll/glue, Salesforce/wikitext, ylecun/mnist as of 2025: parquet layout, column names, split
names, ClassLabel names in order). The model stand-in is google-bert/bert-base-uncased's config.json
with random weights and the bert-base-uncased vocabulary (the MiniLM tokenizer's, which is the same).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

GLUE_ID, WIKITEXT_ID, MNIST_ID = "nyu-mll/glue", "Salesforce/wikitext", "ylecun/mnist"
BERT_ID = "google-bert/bert-base-uncased"

# nyu-mll/glue dataset card: columns in order; a list is a ClassLabel's names in label order.
GLUE_FEATURES = {
    "mrpc": {"sentence1": "string", "sentence2": "string", "label": ["not_equivalent", "equivalent"], "idx": "int32"},
    "sst2": {"sentence": "string", "label": ["negative", "positive"], "idx": "int32"},
    "qnli": {"question": "string", "sentence": "string", "label": ["entailment", "not_entailment"], "idx": "int32"},
    "stsb": {"sentence1": "string", "sentence2": "string", "label": "float32", "idx": "int32"},
    "mnli": {"premise": "string", "hypothesis": "string", "label": ["entailment", "neutral", "contradiction"],
             "idx": "int32"},
}
# Hub split -> (mirror file, how its rows read): the mirror lacks some splits (QNLI and MNLI train, test
# labels), so those stand-ins reuse rows of another file; only the schema matters for them.
GLUE_SOURCES = {
    "mrpc": {"train": "glue/MRPC/train.tsv", "validation": "glue/MRPC/dev.tsv", "test": "glue/MRPC/test.tsv"},
    "sst2": {"train": "glue/SST-2/train.tsv", "validation": "glue/SST-2/dev.tsv", "test": "glue/SST-2/dev.tsv"},
    "qnli": {"train": "glue/QNLI/dev.tsv", "validation": "glue/QNLI/dev.tsv", "test": "glue/QNLI/dev.tsv"},
    "stsb": {"train": "glue/STS-B/train.tsv", "validation": "glue/STS-B/dev.tsv", "test": "glue/STS-B/test.tsv"},
    "mnli": {"train": "glue/MNLI-subset/dev_matched_1k.tsv",
             "validation_matched": "glue/MNLI-subset/dev_matched_1k.tsv",
             "validation_mismatched": "glue/MNLI-subset/dev_mismatched_1k.tsv",
             "test_matched": "glue/MNLI-subset/dev_matched_1k.tsv",
             "test_mismatched": "glue/MNLI-subset/dev_mismatched_1k.tsv"},
}
# Mirror columns -> hub columns, and how a mirror label reads as a hub label name (GLUE's own conventions:
# MRPC Quality 1 = equivalent, SST-2 1 = positive; QNLI and MNLI store the names).
MIRROR_COLUMNS = {
    "mrpc": {"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    "sst2": {"sentence": "sentence", "label": "label"},
    "qnli": {"question": "question", "sentence": "sentence", "label": "label"},
    "stsb": {"sentence1": "sentence1", "sentence2": "sentence2", "score": "label"},
    "mnli": {"premise": "premise", "hypothesis": "hypothesis", "gold_label": "label"},
}
MIRROR_LABEL_NAMES = {"mrpc": {"0": "not_equivalent", "1": "equivalent"}, "sst2": {"0": "negative", "1": "positive"}}
MNLI_SUBSET_COLUMNS = ["gold_label", "premise", "hypothesis"]  # the subset files have no header

WIKITEXT_CONFIG = "wikitext-2-raw-v1"
MNIST_CONFIG = "mnist"

# google-bert/bert-base-uncased config.json as the hub serves it.
BERT_BASE_CONFIG = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}
# A small variant for runs that must stay fast: the same architecture and vocabulary, fewer and narrower layers.
BERT_SMALL_OVERRIDES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                        "max_position_embeddings": 128}


def read_mirror_rows(mirror: Path, rel: str, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of a mirror TSV file, as strings."""
    header = None if "MNLI-subset" in rel else 0
    frame = pd.read_csv(Path(mirror) / rel, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8-sig", dtype=str,
                        keep_default_na=False, header=header, nrows=rows,
                        names=MNLI_SUBSET_COLUMNS if header is None else None)
    return frame


def _features(spec: dict):
    import datasets

    out = {}
    for name, kind in spec.items():
        out[name] = datasets.ClassLabel(names=kind) if isinstance(kind, list) else datasets.Value(kind)
    return datasets.Features(out)


def glue_rows(config: str, split: str, frame: pd.DataFrame, features: dict | None = None) -> dict:
    """Hub-schema columns for mirror rows: hub column names, label as the hub's ClassLabel int (-1 on test)."""
    features = features or GLUE_FEATURES[config]
    mapping = {m: h for m, h in MIRROR_COLUMNS[config].items() if m in frame.columns}
    hub_label = features["label"]
    out = {h: frame[m].tolist() for m, h in mapping.items() if h != "label"}
    n = len(frame)
    if split.startswith("test") or "label" not in mapping.values():
        labels = [-1] * n if isinstance(hub_label, list) else [-1.0] * n
    else:
        raw = frame[next(m for m, h in mapping.items() if h == "label")].tolist()
        if isinstance(hub_label, list):
            names = [MIRROR_LABEL_NAMES.get(config, {}).get(v, v) for v in raw]
            labels = [hub_label.index(name) for name in names]
        else:
            labels = [float(v) for v in raw]
    out["label"] = labels
    out["idx"] = list(range(n))
    return {name: out[name] for name in features if name in out}


def write_repo(root: Path, repo_id: str, configs: dict, features: dict) -> Path:
    """Write ``{config: {split: columns}}`` as a hub dataset repository under ``root/repo_id``."""
    import datasets
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    repo = Path(root) / repo_id
    repo.mkdir(parents=True, exist_ok=True)
    infos, metadata = {}, {}
    for config, splits in configs.items():
        feats = features[config]
        for split, columns in splits.items():
            (repo / config).mkdir(exist_ok=True)
            datasets.Dataset.from_dict(columns, features=feats).to_parquet(
                str(repo / config / f"{split}-00000-of-00001.parquet"))
        infos[config] = DatasetInfo(features=feats, config_name=config)
        metadata[config] = {"data_files": [{"split": s, "path": f"{config}/{s}-*"} for s in splits]}
    card = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(card)
    MetadataConfigs(metadata).to_dataset_card_data(card)
    (repo / "README.md").write_text(f"---\n{card.to_yaml()}\n---\n# stand-in of {repo_id} (tests only)\n")
    return repo


def make_glue(root: Path, mirror: Path, rows: int = 4, features: dict | None = None,
              splits: dict | None = None, rename: dict | None = None) -> Path:
    """nyu-mll/glue with every config the code loads. ``features`` (label names), ``splits`` ({config:
    {hub split: mirror file}}) and ``rename`` ({config: {column: new name}}) depart from the card, for
    tests that check such a difference is caught."""
    features = features or GLUE_FEATURES
    splits = splits or GLUE_SOURCES
    rename = rename or {}
    configs, config_features = {}, {}
    for config, sources in splits.items():
        new = rename.get(config, {})
        configs[config] = {}
        for split, source in sources.items():
            columns = glue_rows(config, split, read_mirror_rows(mirror, source, rows), features[config])
            configs[config][split] = {new.get(k, k): v for k, v in columns.items()}
        config_features[config] = _features({new.get(k, k): v for k, v in features[config].items()})
    return write_repo(root, GLUE_ID, configs, config_features)


def wikitext_rows(text: str) -> list[str]:
    """WikiText lines as the hub stores them: one row per line, blank lines as empty strings."""
    return [line if line.strip() else "" for line in text.splitlines(keepends=True)]


def make_wikitext(root: Path, mirror: Path, lines: int = 120) -> Path:
    """Salesforce/wikitext, config wikitext-2-raw-v1 (test from the mirror; train and validation reuse it)."""
    import datasets

    with open(Path(mirror) / "wikitext-2-raw" / "wiki.test.raw", encoding="utf-8") as fh:
        head = "".join(line for _, line in zip(range(lines), fh))
    rows = {"text": wikitext_rows(head)}
    feats = datasets.Features({"text": datasets.Value("string")})
    return write_repo(root, WIKITEXT_ID, {WIKITEXT_CONFIG: {"train": rows, "validation": rows, "test": rows}},
                      {WIKITEXT_CONFIG: feats})


def mirror_mnist(mirror: Path, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images (uint8, 28x28) and labels of the mirror's gzip IDX files."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(Path(mirror) / "mnist" / f"{prefix}-images-idx3-ubyte.gz") as fh:
        images = np.frombuffer(fh.read(16 + count * 784)[16:], np.uint8).reshape(count, 28, 28)
    with gzip.open(Path(mirror) / "mnist" / f"{prefix}-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read(8 + count)[8:], np.uint8)
    return images, labels


def make_mnist(root: Path, mirror: Path, count: int = 200) -> Path:
    """ylecun/mnist, config mnist: PNG images (mode L) and ClassLabel '0'..'9'."""
    import datasets
    from PIL import Image

    feats = datasets.Features({"image": datasets.Image(),
                               "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    configs = {MNIST_CONFIG: {}}
    for split in ("train", "test"):
        images, labels = mirror_mnist(mirror, split, count)
        configs[MNIST_CONFIG][split] = {"image": [Image.fromarray(im, mode="L") for im in images],
                                        "label": [int(v) for v in labels]}
    return write_repo(root, MNIST_ID, configs, {MNIST_CONFIG: feats})


def make_bert(root: Path, tokenizer_folder: Path, small: bool = True, seed: int = 0) -> Path:
    """google-bert/bert-base-uncased: its config (``small``: narrower for fast runs), random weights with the
    pre-training heads the hub checkpoint has, and the bert-base-uncased vocabulary."""
    import json

    import torch
    from transformers import AutoTokenizer, BertConfig, BertForPreTraining

    folder = Path(root) / BERT_ID
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(BERT_BASE_CONFIG, **(BERT_SMALL_OVERRIDES if small else {}))
    torch.manual_seed(seed)
    model = BertForPreTraining(BertConfig(**config))
    model.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config, indent=2))  # the hub's file, not transformers' rewrite
    AutoTokenizer.from_pretrained(tokenizer_folder).save_pretrained(folder)
    return folder
