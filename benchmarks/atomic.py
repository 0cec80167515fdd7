"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

A leaf module (standard library only), so that ``benchmarks.schema``, ``benchmarks.store`` and the
reports can all write files without importing each other.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(path: Path, payload: dict, compact: bool = False) -> None:
    """Write JSON atomically (see ``write_text_atomic``); ``compact``: no indentation or spaces (machine-read files
    such as saved grids, a quarter smaller)."""
    layout = {"separators": (",", ":")} if compact else {"indent": 1}
    write_text_atomic(path, json.dumps(payload, sort_keys=True, default=str, **layout))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see ``write_bytes_atomic``)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over ``path``.

    A reader (or a rerun after SIGKILL) sees the old file or the whole new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; results and reports are meant to be shared (0644 less umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
