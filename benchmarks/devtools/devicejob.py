"""The GPU job, prepared on the CPU: one folder holding what a bare GPU machine needs, and its unpacking there.

    python -m benchmarks.devtools.devicejob pack                 # -> devicejob/ (git-ignored), size checked
    bash benchmarks/devtools/devicejob.sh devicejob "$OUT"       # on the GPU machine: the whole job
    python -m benchmarks.devtools.devicejob unpack devicejob --to "$(mktemp -d)"
    python -m benchmarks.devtools.devicejob time-bert-base --steps 300

The device tool carries the checkout plus named ignored folders, 64 MiB in all (docs/gpu-job.md). So the pack
holds MiniLM-L6 rounded to bfloat16 as two xz byte planes (the model ``minilm-l6-bf16``), the mirror files of
the chosen tasks as one tar.xz, and the wheels the GPU image lacks; ``pack`` refuses (exit 2) when the checkout
and the pack together would not travel.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from benchmarks import paths
from benchmarks.errors import UserError

PACK_DIR = "devicejob"
TRAVEL_LIMIT = 64 * 2**20  # what one device call carries: checkout + carried folders
# What `python -m benchmarks.devtools.devicejob pack` wrote on 2026-12-05 with the default tasks (model planes and
# xz side files 31,278,844 + wheels 2,792,108 + data 1,420,792 + manifest 2,779 bytes; the pack prints its own):
# the checkout must leave this much room (tests/test_devicejob.py), or the GPU job of issue 24 cannot travel.
PACK_BYTES = 35_494_523
MODEL_NAME = "minilm-l6-bf16"
DATA_ARCHIVE = "data.tar.xz"
MANIFEST = "MANIFEST.json"
# Imported by prunebench but absent from the GPU image's package list (docs/gpu-job.md); pinned to the versions
# installed here, for the image's Python.
DEVICE_WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")
DEVICE_PYTHON = "3.12"
# The tasks the job trains (devicejob.sh); "mlm" can be packed too, but the job never runs it (MLM trains nothing).
DEFAULT_TASKS = ("sst2", "mrpc", "stsb", "qnli", "mnli")
PACKABLE_TASKS = (*DEFAULT_TASKS, "mlm")
TASK_FOLDERS = {"sst2": "glue/SST-2", "mrpc": "glue/MRPC", "stsb": "glue/STS-B", "qnli": "glue/QNLI",
                "mnli": "glue/MNLI-subset"}
# Train-set sizes of the paper's GLUE tasks on the hub (for the bert-base cost estimate).
FULL_TRAIN = {"sst2": 67349, "mrpc": 3668, "stsb": 5749, "qnli": 104743, "mnli": 392702}


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def data_files(data_dir: Path, tasks: list[str]) -> list[Path]:
    """The mirror files the chosen tasks read (relative to ``data_dir``), in a fixed order."""
    out = []
    for task in tasks:
        if task == "mlm":
            out.append(Path(paths.WIKITEXT_FILE.format(split="test")))
        elif task in TASK_FOLDERS:  # train and dev splits; GLUE's test files carry no labels
            out.extend(sorted(p.relative_to(data_dir) for p in (data_dir / TASK_FOLDERS[task]).glob("*.tsv")
                              if p.name != "test.tsv"))
        else:
            raise UserError(f"task {task!r} has no mirror files; pick from {', '.join(PACKABLE_TASKS)}")
    return out


def _tar_xz(root: Path, files: list[Path], preset: int = 9) -> bytes:
    """A reproducible tar.xz of ``files`` under ``root`` (fixed times and owners)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz", preset=preset) as tar:
        for rel in files:
            data = (root / rel).read_bytes()
            info = tarfile.TarInfo(str(rel))
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def download_wheels(dest: Path) -> list[Path]:
    """pip-download the wheels the GPU image lacks, at the versions installed here, for its Python."""
    from importlib.metadata import version

    dest.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}=={version(name)}" for name in DEVICE_WHEELS]
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)] + ["--platform=manylinux2014_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           f"--python-version={DEVICE_PYTHON}", "--implementation=cp", *platforms, "-d", str(dest), *specs]
    subprocess.run(cmd, check=True)
    return sorted(dest.glob("*.whl"))


def checkout_size(repo: Path) -> int:
    """Bytes of the checkout a device call carries: its tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, check=True,
                            capture_output=True).stdout.decode().split("\0")
    return sum((repo / name).stat().st_size for name in listed if name and (repo / name).is_file())


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def pack(out: Path, data_dir: Path, tasks: list[str], source_model: Path, wheels: bool = True,
         repo: Path = paths.REPO_ROOT, limit: int = TRAVEL_LIMIT, preset: int = 9) -> dict:
    """Write the job folder ``out`` and return its manifest; UserError if it would not travel."""
    from benchmarks import bf16model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    bf16model.pack_folder(source_model, model_dir, preset=preset)
    files = data_files(data_dir, tasks)
    (out / DATA_ARCHIVE).write_bytes(_tar_xz(data_dir, files, preset))
    found = download_wheels(out / "wheels") if wheels else []
    manifest = {
        "model": MODEL_NAME,
        "weights_sha256": _rounded_sha(source_model),
        "tasks": list(tasks),
        "data_sha256": {str(rel): sha256_bytes((data_dir / rel).read_bytes()) for rel in files},
        "wheels": [p.name for p in found],
        "files": {str(p.relative_to(out)): sha256_bytes(p.read_bytes())
                  for p in sorted(out.rglob("*")) if p.is_file() and p.name != MANIFEST},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    checkout = checkout_size(repo)
    size = checkout + folder_size(out)
    manifest["travel_bytes"] = size
    if size > limit:
        raise UserError(f"the checkout ({checkout / 2**20:.1f} MiB) and {out} together are {size / 2**20:.1f} MiB, "
                        f"over the device call's {limit / 2**20:.0f} MiB; drop tasks (--tasks) or shrink the "
                        "checkout (untracked files, or large committed files)")
    return manifest


def _rounded_sha(source_model: Path) -> str:
    """sha256 of the rounded model's weights file, as the alias minilm-l6-bf16 builds it here."""
    import tempfile

    from benchmarks import bf16model

    with tempfile.TemporaryDirectory() as tmp:
        folder = bf16model.build_rounded_folder(source_model, Path(tmp) / "m")
        return sha256_bytes((folder / bf16model.WEIGHTS).read_bytes())


def unpack(job: Path, root: Path) -> dict:
    """Check the job folder's sha256s, then rebuild the model and the data under ``root``.

    The model lands where the alias ``minilm-l6-bf16`` looks with PRUNEBENCH_CACHE_DIR=<root>/cache, the data in
    <root>/data (PRUNEBENCH_DATA_DIR). Returns the manifest.
    """
    from benchmarks import bf16model

    job, root = Path(job), Path(root)
    if not (job / MANIFEST).is_file():
        raise UserError(f"{job} has no {MANIFEST}; name the folder `devicejob pack` wrote, or pack the job again")
    manifest = json.loads((job / MANIFEST).read_text())
    for rel, digest in manifest["files"].items():
        if not (job / rel).is_file():
            raise UserError(f"{job / rel} is missing (listed in {MANIFEST}); carry the whole job folder, "
                            "or pack the job again")
        if sha256_bytes((job / rel).read_bytes()) != digest:
            raise UserError(f"{job / rel} does not match its sha256 in {MANIFEST}; pack the job again")
    folder = root / "cache" / "models" / MODEL_NAME
    bf16model.unpack_folder(job / "model", folder)
    got = sha256_bytes((folder / bf16model.WEIGHTS).read_bytes())
    if got != manifest["weights_sha256"]:
        raise UserError(f"unpacked weights sha256 {got[:12]} differs from the packed model's "
                        f"{manifest['weights_sha256'][:12]}; pack the job again")
    with tarfile.open(job / DATA_ARCHIVE, mode="r:xz") as tar:
        tar.extractall(root / "data", filter="data")
    return manifest


def time_bert_base(steps: int, batch: int = 32, length: int = 128, tiny: bool = False) -> dict:
    """Seconds per training step of bert-base's architecture (random weights; the hub is not needed)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = (BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
              if tiny else BertConfig())  # BertConfig() is bert-base-uncased's architecture
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=device == "cuda")
    ids = torch.randint(1000, config.vocab_size, (batch, length), device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    warmup = min(10, steps)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / max(steps, 1)
    return {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "steps": steps, "batch": batch,
            "length": length, "precision": "bf16 autocast" if device == "cuda" else "fp32",
            "seconds_per_step": per_step, "grid_gpu_hours": grid_gpu_hours(per_step, batch)}


def grid_gpu_hours(seconds_per_step: float, batch: int = 32, epochs: int = 3) -> dict:
    """Fine-tuning GPU-hours of the Fig 6 and Fig 7 grids at full scale (training steps only, one seed)."""
    from benchmarks.config import load_suite
    from benchmarks.kinds.prune_finetune import parse_rows

    steps = sum(-(-n // batch) * epochs for n in FULL_TRAIN.values())  # one row over the five GLUE tasks
    out = {}
    for name in ("bert-lowsparsity", "bert-highsparsity"):
        suite = load_suite(name)
        rows = len(parse_rows(list(suite.rows), name))
        out[name] = {"rows": rows, "hours": rows * steps * seconds_per_step / 3600}
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: pack, unpack, time-bert-base."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.devtools.devicejob", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write the job folder (default devicejob/)")
    p.add_argument("--out", type=Path, default=paths.REPO_ROOT / PACK_DIR)
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--no-wheels", action="store_true", help="skip the wheel download")
    u = sub.add_parser("unpack", help="rebuild the model and the data from a job folder")
    u.add_argument("job", type=Path)
    u.add_argument("--to", type=Path, required=True)
    t = sub.add_parser("time-bert-base", help="seconds per training step of bert-base (random weights)")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--tiny", action="store_true", help="a two-layer stand-in (tests)")
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "pack":
        from benchmarks.models import minilm_l6

        data_dir = args.data_dir or paths.default_data_dir()
        if data_dir is None or not Path(data_dir).is_dir():
            raise UserError("no data mirror found; pass --data-dir or set PRUNEBENCH_DATA_DIR")
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        manifest = pack(args.out, Path(data_dir), tasks, Path(minilm_l6()), wheels=not args.no_wheels)
        print(f"{args.out}: {len(manifest['files'])} files; the device call carries "
              f"{manifest['travel_bytes'] / 2**20:.1f} MiB of {TRAVEL_LIMIT / 2**20:.0f}")
    elif args.command == "unpack":
        manifest = unpack(args.job, args.to)
        print(f"{args.to}: {manifest['model']} (weights sha256 {manifest['weights_sha256'][:12]}), "
              f"{len(manifest['data_sha256'])} data files")
    else:
        print(json.dumps(time_bert_base(args.steps, tiny=args.tiny), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
