"""MNIST from the mirror's IDX files (gzip or raw) or the hub's ``ylecun/mnist``, as float tensors."""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import paths
from benchmarks.errors import DataMissing, UserError
from benchmarks.paths import MNIST_FILES

# Mean and std of the training pixels in [0, 1] (the usual torchvision constants).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
SCALINGS = ("normalize", "unit", "raw")
HUB_ID = "ylecun/mnist"


@dataclass(frozen=True)
class Split:
    """One MNIST split: images as uint8 [N, 784] and labels as int64 [N], plus the files' sha256."""

    images: torch.Tensor
    labels: torch.Tensor
    sha256: dict


def _open_idx(path: Path) -> bytes:
    """Bytes of an IDX file stored raw or as ``.gz`` beside it."""
    if path.is_file():
        return path.read_bytes()
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        with gzip.open(gz, "rb") as fh:
            return fh.read()
    raise FileNotFoundError(path)


def parse_idx(data: bytes) -> np.ndarray:
    """Decode an IDX (ubyte) file: magic 0x0000080N, N big-endian dimensions, then the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError("not an unsigned-byte IDX file (bad magic); point --data-dir at the MNIST mirror")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"IDX file holds {body.size} values but its header says {dims}; the file is truncated")
    return body.reshape(dims)


@functools.lru_cache(maxsize=4)
def _load_mirror(data_dir: str, split: str) -> Split:
    root = Path(data_dir)
    raw_images = _open_idx(root / MNIST_FILES[f"{split}_images"])
    raw_labels = _open_idx(root / MNIST_FILES[f"{split}_labels"])
    images = parse_idx(raw_images).reshape(-1, 784)
    labels = parse_idx(raw_labels).astype(np.int64)
    sha = {MNIST_FILES[f"{split}_images"]: hashlib.sha256(raw_images).hexdigest(),
           MNIST_FILES[f"{split}_labels"]: hashlib.sha256(raw_labels).hexdigest()}
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels), sha)


@functools.lru_cache(maxsize=4)
def _load_hub(split: str, location: str = HUB_ID) -> Split:
    import datasets

    ds = datasets.load_dataset(location, split="train" if split == "train" else "test")
    images = np.stack([np.asarray(im, dtype=np.uint8).reshape(784) for im in ds["image"]])
    labels = np.asarray(ds["label"], dtype=np.int64)
    return Split(torch.from_numpy(images), torch.from_numpy(labels), {f"hub:{HUB_ID}:{split}": ds._fingerprint})


def load_split(split: str, data_dir: Path | None) -> Split:
    """The ``train`` or ``test`` split from the mirror when it holds MNIST, else from the hub."""
    if data_dir is not None and (Path(data_dir) / "mnist").is_dir():
        try:
            return _load_mirror(str(data_dir), split)
        except FileNotFoundError as exc:
            raise DataMissing(f"MNIST file {exc} missing from the mirror") from None
    try:
        return _load_hub(split, paths.hub_location(HUB_ID))
    except Exception as exc:  # offline: the hub is unreachable
        raise DataMissing(f"MNIST not in the mirror and the hub failed ({exc.__class__.__name__}); "
                          "pass --data-dir with an mnist/ folder") from None


def scale_images(images: torch.Tensor, scaling: str) -> torch.Tensor:
    """uint8 pixels as float32: ``normalize`` (mean/std), ``unit`` ([0, 1]) or ``raw`` ([0, 255])."""
    x = images.to(torch.float32)
    if scaling == "raw":
        return x
    x = x / 255.0
    if scaling == "unit":
        return x
    if scaling == "normalize":
        return (x - MNIST_MEAN) / MNIST_STD
    raise UserError(f"unknown input scaling {scaling!r}; use one of {', '.join(SCALINGS)}")
