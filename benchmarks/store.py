"""Results store: one JSON record per grid cell, written atomically, read into a DataFrame."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmarks import paths, predictions

# The atomic writers live in a leaf module (schema needs them too); store keeps their old names.
from benchmarks.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic  # noqa: F401

# Claims live in benchmarks.claims (leases, heartbeat, takeover); store keeps their old names.
from benchmarks.claims import claim_cell, claim_path, claimed_by, release_cell  # noqa: F401
from benchmarks.schema import validate_record

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
STATUSES = (OK, FAILED, SKIPPED)
MISSING, CORRUPT = "missing", "corrupt"  # record states that are not statuses


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
    try:
        validate_record(record)
    except ValueError as exc:  # e.g. an ok record whose metrics is missing: not done, reported and rerun
        raise ValueError(f"{path}: not a valid record ({exc})") from None
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
    """The cell's record state: ok, failed, skipped, missing (no file) or corrupt (unreadable, not valid, or an ok
    record whose per-example arrays are missing or unreadable)."""
    path = paths.record_path(results_dir, key)
    if not path.exists():
        return MISSING
    try:
        record = read_record(path)
    except (ValueError, OSError):
        return CORRUPT
    if record["status"] == OK and predictions.problem(results_dir, record) is not None:
        return CORRUPT  # an ok record whose arrays are missing or truncated is not done: the cell reruns
    return record["status"]


def is_done(results_dir: Path, key: str) -> bool:
    """True when the cell has a valid ok record (failed and skipped cells run again)."""
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


# -- writability ---------------------------------------------------------------------------------

def check_writable(folder: Path) -> None:
    """Raise OSError unless a file can be created, written and synced where ``folder`` is (or will be).

    Probes the nearest existing ancestor with a temporary file that is removed again, so a check
    of a folder that does not exist yet creates nothing.
    """
    folder = Path(folder)
    probe_dir = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not probe_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(probe_dir))
    fd, tmp = tempfile.mkstemp(prefix=".prunebench-probe.", suffix=".tmp", dir=probe_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * 4096)  # one block, so a full disk shows here and not after the first cell
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        Path(tmp).unlink(missing_ok=True)
