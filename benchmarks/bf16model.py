"""A model folder with every floating-point weight rounded to bfloat16, and its compact two-plane form.

The GPU job (docs/gpu-job.md) must carry MiniLM-L6 in under 64 MiB: its float32 weights are 91 MB. Rounded to
bfloat16 (round to nearest even), each weight is two bytes; written as a plane of high bytes and a plane of low
bytes, each plane compresses well with xz (the high bytes hold sign and exponent, which repeat). Rounding changes
the model, so the rounded model has its own name (``minilm-l6-bf16``) and its own weights sha256; it is stored
as float32 so that every code path loads it as it loads any other checkpoint.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import tempfile
from pathlib import Path

# Files of a save_pretrained folder that travel beside the weights (tokenizer and config).
SIDE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
WEIGHTS = "model.safetensors"
PLANES = {"hi": "weights.hi.xz", "lo": "weights.lo.xz", "other": "weights.other.xz"}
MANIFEST = "planes.json"


def _load(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / WEIGHTS))


def round_state(state: dict) -> dict:
    """The state dict with each floating-point tensor rounded to bfloat16 and stored as float32."""
    import torch

    return {name: (t.to(torch.bfloat16).to(torch.float32) if t.is_floating_point() else t.clone())
            for name, t in state.items()}


def _save(state: dict, folder: Path) -> None:
    from safetensors.torch import save_file

    # Fixed metadata and sorted names: the same weights give the same bytes, hence the same sha256 anywhere.
    save_file({k: state[k].contiguous() for k in sorted(state)}, str(folder / WEIGHTS), metadata={"format": "pt"})


def _copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def _compress_side_files(src: Path, dst: Path, preset: int) -> None:
    """Each side file as ``<name>.xz`` (the tokenizer's JSON and vocabulary are 0.7 MB raw, a fifth of it in xz)."""
    for name in SIDE_FILES:
        if (src / name).is_file():
            (dst / f"{name}.xz").write_bytes(lzma.compress((src / name).read_bytes(), preset=preset))


def _decompress_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / f"{name}.xz").is_file():
            (dst / name).write_bytes(lzma.decompress((src / f"{name}.xz").read_bytes()))


def _publish(build, dst: Path) -> Path:
    """Build a folder in a temporary sibling, then rename it into place: readers never see half a model."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, dst)
        except OSError:  # another process published it first: theirs is the same model
            if not (dst / WEIGHTS).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def build_rounded_folder(src: Path, dst: Path) -> Path:
    """Write ``dst``: the model folder ``src`` with its weights rounded to bfloat16 (unless ``dst`` exists)."""
    if (Path(dst) / WEIGHTS).is_file():
        return Path(dst)

    def build(tmp: Path) -> None:
        _copy_side_files(Path(src), tmp)
        _save(round_state(_load(Path(src))), tmp)

    return _publish(build, dst)


def to_planes(state: dict) -> tuple[dict[str, bytes], dict]:
    """Split the bfloat16 rounding of ``state`` into a high-byte plane, a low-byte plane and the rest.

    Returns ({plane: bytes}, manifest): the manifest lists each tensor's name, shape, dtype and plane.
    """
    import numpy as np
    import torch

    hi, lo, other, tensors = [], [], [], []
    for name in sorted(state):
        t = state[name].contiguous()
        if t.is_floating_point():
            pairs = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").view(np.uint8).reshape(-1, 2)
            lo.append(pairs[:, 0].tobytes())
            hi.append(pairs[:, 1].tobytes())
            tensors.append({"name": name, "shape": list(t.shape), "plane": "bf16"})
        else:
            raw = t.numpy().tobytes()
            other.append(raw)
            tensors.append({"name": name, "shape": list(t.shape), "plane": "other", "dtype": str(t.numpy().dtype),
                            "bytes": len(raw)})
    return {"hi": b"".join(hi), "lo": b"".join(lo), "other": b"".join(other)}, {"tensors": tensors}


def from_planes(planes: dict[str, bytes], manifest: dict) -> dict:
    """The float32 state dict (bfloat16 values) that ``to_planes`` split."""
    import numpy as np
    import torch

    hi = np.frombuffer(planes["hi"], dtype=np.uint8)
    lo = np.frombuffer(planes["lo"], dtype=np.uint8)
    out, at, at_other = {}, 0, 0
    for spec in manifest["tensors"]:
        shape = tuple(spec["shape"])
        if spec["plane"] == "bf16":
            n = int(np.prod(shape, dtype=np.int64))
            pairs = np.stack([lo[at:at + n], hi[at:at + n]], axis=1).reshape(-1).copy()
            bits = torch.from_numpy(pairs.view("<i2").astype(np.int16))
            out[spec["name"]] = bits.view(torch.bfloat16).to(torch.float32).reshape(shape)
            at += n
        else:
            raw = planes["other"][at_other:at_other + spec["bytes"]]
            out[spec["name"]] = torch.from_numpy(np.frombuffer(raw, dtype=spec["dtype"]).copy()).reshape(shape)
            at_other += spec["bytes"]
    return out


def pack_folder(src: Path, dst: Path, preset: int = 9) -> dict:
    """Write the compact form of model folder ``src`` into ``dst``: xz planes, manifest and xz side files."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    planes, manifest = to_planes(_load(Path(src)))
    for plane, data in planes.items():
        (dst / PLANES[plane]).write_bytes(lzma.compress(data, preset=preset))
    _compress_side_files(Path(src), dst, preset)
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def unpack_folder(src: Path, dst: Path) -> Path:
    """Rebuild the rounded model folder from the compact form in ``src`` (atomically, into ``dst``)."""
    src = Path(src)
    manifest = json.loads((src / MANIFEST).read_text())
    planes = {plane: lzma.decompress((src / name).read_bytes()) for plane, name in PLANES.items()}

    def build(tmp: Path) -> None:
        _decompress_side_files(src, tmp)
        _save(from_planes(planes, manifest), tmp)

    return _publish(build, dst)
