"""Dataset loading: GLUE from the hub (``nyu-mll/glue``) or from a local mirror laid out like ../shared/data."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import paths
from benchmarks.errors import DataMissing, UserError
from benchmarks.provenance import sha256_file

GLUE_HUB_ID = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueSpec:
    """How to read one GLUE task: its columns in the TSV files and on the hub."""

    name: str
    tsv_columns: tuple  # (text_a, text_b or None, label)
    hub_columns: tuple
    label_map: dict | None = None  # string labels in TSV -> int
    regression: bool = False
    splits: dict = field(default_factory=lambda: {"train": "train", "dev": "dev"})


GLUE = {
    "mrpc": GlueSpec("mrpc", ("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2", "label")),
    "stsb": GlueSpec("stsb", ("sentence1", "sentence2", "score"), ("sentence1", "sentence2", "label"), regression=True),
    "sst2": GlueSpec("sst2", ("sentence", None, "label"), ("sentence", None, "label")),
    "qnli": GlueSpec("qnli", ("question", "sentence", "label"), ("question", "sentence", "label"),
                     label_map={"entailment": 0, "not_entailment": 1}),
    "mnli": GlueSpec("mnli", ("sentence1", "sentence2", "gold_label"), ("premise", "hypothesis", "label"),
                     label_map={"entailment": 0, "neutral": 1, "contradiction": 2},
                     splits={"train": "train", "dev": "dev_matched", "dev_mismatched": "dev_mismatched"}),
}
# Offline MNLI: the mirror holds two 1,000-example samples of dev (no header: gold_label, premise, hypothesis).
MNLI_SUBSET_FILES = {"dev": "glue/MNLI-subset/dev_matched_1k.tsv", "dev_matched": "glue/MNLI-subset/dev_matched_1k.tsv",
                     "dev_mismatched": "glue/MNLI-subset/dev_mismatched_1k.tsv"}
MNLI_SUBSET_COLUMNS = ("gold_label", "premise", "hypothesis")
HUB_SPLITS = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched"}


@dataclass
class Examples:
    """A task split as plain columns, with where it came from."""

    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray
    source: dict  # file -> sha256, or hub id -> revision

    def __len__(self) -> int:
        return len(self.text_a)

    def subset(self, indices) -> "Examples":
        """The rows at ``indices`` (same source)."""
        idx = list(indices)
        return Examples(
            [self.text_a[i] for i in idx],
            None if self.text_b is None else [self.text_b[i] for i in idx],
            self.labels[idx],
            self.source,
        )

    @staticmethod
    def concat(parts: list["Examples"]) -> "Examples":
        """The rows of ``parts`` one after the other (sources merged)."""
        pairs = all(p.text_b is not None for p in parts)
        return Examples([t for p in parts for t in p.text_a], [t for p in parts for t in p.text_b] if pairs else None,
                        np.concatenate([p.labels for p in parts]), {k: v for p in parts for k, v in p.source.items()})


def read_glue_tsv(path: Path, spec: GlueSpec) -> Examples:
    """Read a GLUE TSV file: UTF-8 BOM tolerated, quoting off (bare quotes occur), columns checked."""
    try:
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8-sig",
                            dtype=str, keep_default_na=False, on_bad_lines="error")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: malformed TSV ({str(exc).splitlines()[0]}); restore the original GLUE file") from None
    a, b, label = spec.tsv_columns
    missing = [c for c in (a, b, label) if c and c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; header is {list(frame.columns)} "
                        f"(expected GLUE {spec.name} format)")
    try:
        if spec.regression:
            labels = frame[label].astype(float).to_numpy(np.float32)
        elif spec.label_map:
            labels = frame[label].map(spec.label_map).astype(int).to_numpy()
        else:
            labels = frame[label].astype(int).to_numpy()
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: bad value in column {label!r} ({exc}); expected GLUE {spec.name} labels") from None
    return Examples(frame[a].tolist(), frame[b].tolist() if b else None, labels, {_rel(path): sha256_file(path)})


def read_mnli_subset(path: Path, spec: GlueSpec) -> Examples:
    """Read one of the mirror's 1k MNLI dev samples (no header: gold_label, premise, hypothesis)."""
    try:
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8-sig", header=None,
                            names=list(MNLI_SUBSET_COLUMNS), dtype=str, keep_default_na=False, on_bad_lines="error")
        labels = frame["gold_label"].map(spec.label_map)
        if labels.isna().any():
            bad = frame["gold_label"][labels.isna()].iloc[0]
            raise ValueError(f"label {bad!r} is not one of {sorted(spec.label_map)}")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UserError(f"{path}: malformed MNLI sample ({str(exc).splitlines()[0]}); "
                        "restore the mirror's file") from None
    return Examples(frame["premise"].tolist(), frame["hypothesis"].tolist(), labels.astype(int).to_numpy(),
                    {_rel(path): sha256_file(path)})


def is_mnli_subset(examples: Examples) -> bool:
    """True when ``examples`` come from the mirror's 1k MNLI dev samples."""
    return any("MNLI-subset/" in k for k in examples.source)


def _rel(path: Path) -> str:
    """A data file's name relative to its mirror root (paths stay out of provenance keys)."""
    parts = Path(path).parts
    return "/".join(parts[-3:]) if len(parts) >= 3 else str(path)


def load_glue(task: str, split: str, data_dir: Path | None) -> Examples:
    """Load a GLUE split from the mirror when ``data_dir`` is set, else from the hub.

    Raises DataMissing when the mirror does not hold the split (the cell is then skipped).
    """
    spec = GLUE[task]
    file_split = spec.splits.get(split, split)
    if data_dir is not None:
        path = Path(data_dir) / paths.GLUE_FILES[task].format(split=file_split)
        if not path.is_file() and task == "mnli" and split in MNLI_SUBSET_FILES:
            subset = Path(data_dir) / MNLI_SUBSET_FILES[split]
            if subset.is_file():
                return read_mnli_subset(subset, spec)
        if path.exists() and not path.is_file():  # a folder (or device) where the file belongs: not "missing"
            raise UserError(f"{path} is not a file; put the GLUE {task} {split} TSV file there, or remove it "
                            f"to run without that split")
        if not path.is_file():
            raise DataMissing(f"{task} {split} is not in the data mirror "
                              f"({path.name} missing under {Path(data_dir).name}/)")
        return read_glue_tsv(path, spec)
    return _load_glue_hub(spec, split)


def _load_glue_hub(spec: GlueSpec, split: str) -> Examples:
    import datasets

    hub_split = HUB_SPLITS[spec.splits.get(split, split) if spec.name == "mnli" else split]
    try:
        ds = datasets.load_dataset(paths.hub_location(GLUE_HUB_ID), spec.name, split=hub_split)
    except Exception as exc:  # network or hub errors: the cell is skipped with the reason
        raise DataMissing(f"{spec.name} {split} could not be loaded from the hub ({exc.__class__.__name__}); "
                          f"pass --data-dir with a local mirror") from None
    a, b, label = spec.hub_columns
    labels = np.asarray(ds[label], dtype=np.float32 if spec.regression else np.int64)
    revision = getattr(ds.info, "version", None)
    return Examples(list(ds[a]), list(ds[b]) if b else None, labels,
                    {f"hub:{GLUE_HUB_ID}/{spec.name}/{hub_split}": str(ds._fingerprint), "version": str(revision)})


# Subset selection uses its own fixed seed so every row and seed of a suite sees the same evaluation examples
# (the training-free protocols' fit subset alone is drawn with SUBSET_SEED + the cell's seed: protocols/base.py).
SUBSET_SEED = 1234


def fixed_subset(examples: Examples, limit: int | None, subset_seed: int = SUBSET_SEED) -> Examples:
    """A fixed random subset of ``limit`` rows (drawn with ``subset_seed``, in file order), or all rows."""
    if not limit or limit >= len(examples):
        return examples
    order = np.random.default_rng(subset_seed).permutation(len(examples))[:limit]
    return examples.subset(np.sort(order))
