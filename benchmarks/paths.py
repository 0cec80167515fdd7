"""Every file name the project reads or writes, in one place (open_lth style)."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "PRUNEBENCH_DATA_DIR"
CACHE_ENV = "PRUNEBENCH_CACHE_DIR"
HUB_ENV = "PRUNEBENCH_HUB_DIR"  # a folder of hub repositories in the hub's layout, used instead of the network
DEFAULT_RESULTS = Path("results")
# The mirror sits beside the checkout in this workplace (../shared/data from the repo root).
MIRROR_CANDIDATES = (REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data")


# Runs of anything but a-z and 0-9 become one '-'; a dot stays only between digits (a rate such as 0.5).
_SLUG_GAP = re.compile(r"(?:[^a-z0-9.]|(?<![0-9])\.|\.(?![0-9]))+")


def slug(text: str, default: str = "plot") -> str:
    """A lower-case, file-name-safe version of ``text`` for plot files.

    'MLM ppl. (fitted head)' -> 'mlm-ppl-fitted-head', 'minilm-l6 0.5' -> 'minilm-l6-0.5';
    ``default`` when nothing is left.
    """
    return _SLUG_GAP.sub("-", text.lower()).strip("-") or default


def record_path(results_dir: Path, key: str) -> Path:
    """The JSON record of one grid cell."""
    return Path(results_dir) / "records" / f"{key}.json"


def records_dir(results_dir: Path) -> Path:
    """Folder holding one JSON record per cell."""
    return Path(results_dir) / "records"


def cache_dir() -> Path:
    """Folder for derived artefacts that may be rebuilt (fitted MLM heads, weight hashes)."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root) if root else Path.home() / ".cache" / "prunebench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def rounded_model_dir(name: str) -> Path:
    """Where a model derived from another one (e.g. its bfloat16 rounding) is built or unpacked."""
    return cache_dir() / "models" / name


def default_data_dir() -> Path | None:
    """The local data mirror: $PRUNEBENCH_DATA_DIR, else ../shared/data when present, else None (hub)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    for candidate in MIRROR_CANDIDATES:
        if candidate.is_dir():
            return candidate
    return None


def hub_location(repo_id: str) -> str:
    """Where to load hub repository ``repo_id`` from: ``$PRUNEBENCH_HUB_DIR/<repo_id>`` when that folder
    exists (a local copy in the hub's layout: README.md with its configs, parquet files, model files),
    else the hub id itself. The one seam between the hub code paths and the network."""
    root = os.environ.get(HUB_ENV)
    if root and (Path(root) / repo_id).is_dir():
        return str(Path(root) / repo_id)
    return repo_id


# Files inside a data mirror laid out like ../shared/data.
GLUE_FILES = {
    "mrpc": "glue/MRPC/{split}.tsv",
    "stsb": "glue/STS-B/{split}.tsv",
    "sst2": "glue/SST-2/{split}.tsv",
    "qnli": "glue/QNLI/{split}.tsv",
    "mnli": "glue/MNLI/{split}.tsv",
}
WIKITEXT_FILE = "wikitext-2-raw/wiki.{split}.raw"
MNIST_FILES = {
    "train_images": "mnist/train-images-idx3-ubyte",
    "train_labels": "mnist/train-labels-idx1-ubyte",
    "test_images": "mnist/t10k-images-idx3-ubyte",
    "test_labels": "mnist/t10k-labels-idx1-ubyte",
}


def report_paths(out: Path) -> dict[str, Path]:
    """Where a report writes its plots: a folder beside the report file."""
    out = Path(out)
    return {"report": out, "plots": out.parent / f"{out.stem}_plots"}
