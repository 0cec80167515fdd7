"""Results store: one JSON record per grid cell, written atomically, read into a DataFrame."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks import paths

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
STATUSES = (OK, FAILED, SKIPPED)
MISSING, CORRUPT = "missing", "corrupt"  # record states that are not statuses


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=str))


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


@dataclass
class LoadedRecords:
    """Records read from a results folder, plus the files that could not be used."""

    records: dict[str, dict] = field(default_factory=dict)
    corrupt: dict[str, str] = field(default_factory=dict)  # file name -> reason


def read_record(path: Path) -> dict:
    """Read one record; raise ValueError naming the file when it is truncated or malformed."""
    try:
        record = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable record ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("status") not in STATUSES or "key" not in record:
        raise ValueError(f"{path}: not a prunebench record (missing key/status)")
    if record["key"] != Path(path).stem:
        raise ValueError(f"{path}: record key {record['key']!r} does not match its file name")
    return record


def load_records(results_dir: Path) -> LoadedRecords:
    """Read every record under ``results_dir``; corrupt ones are reported, never used."""
    out = LoadedRecords()
    folder = paths.records_dir(results_dir)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            out.records[path.stem] = read_record(path)
        except ValueError as exc:
            out.corrupt[path.name] = str(exc)
    return out


def write_record(results_dir: Path, record: dict) -> Path:
    """Write one cell's record atomically under its key."""
    path = paths.record_path(results_dir, record["key"])
    write_json_atomic(path, record)
    return path


def record_state(results_dir: Path, key: str) -> str:
    """The cell's record state: ok, failed, skipped, missing (no file) or corrupt (unreadable)."""
    path = paths.record_path(results_dir, key)
    if not path.exists():
        return MISSING
    try:
        return read_record(path)["status"]
    except (ValueError, OSError):
        return CORRUPT


def is_done(results_dir: Path, key: str) -> bool:
    """True when the cell has a readable ok record (failed and skipped cells run again)."""
    return record_state(results_dir, key) == OK


def _flatten(record: dict) -> dict:
    cfg = record.get("config", {})
    row = {
        "key": record["key"],
        "status": record["status"],
        "error": record.get("error"),
        "suite": record.get("suite"),
    }
    for name, value in cfg.items():
        if not isinstance(value, (dict, list)):
            row[name] = value
    for name, value in (record.get("metrics") or {}).items():
        if not isinstance(value, (dict, list)):
            row[f"metric.{name}"] = value
    sparsity = record.get("sparsity") or {}
    row["sparsity_before"] = sparsity.get("global_before")
    row["sparsity_after"] = sparsity.get("global_after")
    row["git_sha"] = (record.get("provenance") or {}).get("git_sha")
    return row


def records_frame(results_dir: Path, keys: list[str] | None = None) -> pd.DataFrame:
    """One call: a results folder (optionally restricted to ``keys``) as a flat DataFrame."""
    loaded = load_records(results_dir)
    records = loaded.records.values()
    if keys is not None:
        wanted = set(keys)
        records = [r for r in records if r["key"] in wanted]
    frame = pd.DataFrame([_flatten(r) for r in records])
    frame.attrs["corrupt"] = loaded.corrupt
    frame.attrs["records"] = {r["key"]: r for r in records}
    return frame
