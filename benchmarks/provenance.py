"""Provenance attached to every record: code version, library versions, device, data hashes."""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks.paths import REPO_ROOT

LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "numpy", "scipy", "pandas")


@functools.cache
def git_state() -> dict:
    """The checkout's commit sha and whether the working tree has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD") or None
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if sha else None
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    return {"git_sha": sha, "git_dirty": dirty}


@functools.cache
def library_versions() -> dict:
    """Versions of Python and the libraries that change numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    return out


@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so repeated cells hash once."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def device_name() -> str:
    """A human-readable name of the device the run used."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{_platform_cpu()}"


def cpu_info() -> dict:
    """The CPU the numbers came from: its model name, the instruction set torch's kernels use, torch's threads.

    float32 training moves slightly between CPUs (AVX-512 against AVX2 kernels; docs/reproducibility.md), so a
    record says which one computed it."""
    import torch

    return {"model": cpu_model(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def _platform_cpu() -> str:
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string; read once."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                        _platform_cpu())
    except OSError:
        return _platform_cpu()


def provenance(data_files: dict[str, str] | None = None) -> dict:
    """Full provenance block for a record (``plugins``: the ``--plugin`` arguments, when any were given)."""
    from benchmarks.plugins import LOADED

    return {
        **git_state(),
        "versions": library_versions(),
        "device": device_name(),
        "cpu": cpu_info(),
        "data": dict(data_files or {}),
        **({"plugins": list(LOADED)} if LOADED else {}),
    }
