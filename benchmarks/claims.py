"""Per-cell claims: two runs on one results folder (one machine or several) never compute the same cell.

A claim is ``records/<key>.claim``, a small JSON file naming its owner: host, boot id, pid namespace,
pid, the process's start time, a random token and a lease expiry. It appears with its content in one
step: written to a temporary file, then hard-linked into place (the link fails when a claim exists), so
no run ever reads a half-written claim. While the cell runs, a heartbeat thread renews the lease by an
atomic replace of the claim. A claim is stale, and taken over, when

- its lease has expired (on any host: a run on another machine that died stops renewing), or
- it was made on this machine (same host, boot and pid namespace) and its pid is gone, or that pid now
  belongs to another process (a different start time: pid reuse, pid 1 of a restarted container), or
- it is unreadable (torn by a crash on a filesystem without hard links) and older than TORN_GRACE_S.

Takeovers are serialised (a thread lock and ``flock`` on ``records/.claims.lock``), and the stale file
is renamed away and compared with what was judged stale before the new claim is linked, so only one
taker wins. Leases compare wall clocks: machines sharing a results folder need synchronised clocks (NTP).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import paths
from benchmarks.atomic import write_bytes_atomic
from benchmarks.errors import UserError

# A claim not renewed for LEASE_S is stale on any host; the running cell renews it every HEARTBEAT_S
# (ten chances per lease, so a machine too loaded to renew once a minute still keeps its cells).
LEASE_S, HEARTBEAT_S = 600.0, 60.0
# How often a run that waits for other runs' cells (run --wait) looks at their records and claims.
POLL_S = 10.0
LEASE_ENV, HEARTBEAT_ENV = "PRUNEBENCH_CLAIM_LEASE_S", "PRUNEBENCH_CLAIM_HEARTBEAT_S"
POLL_ENV = "PRUNEBENCH_CLAIM_POLL_S"
# A claim that cannot be read is only taken for a crash's leftover once it is this old: on a filesystem
# without hard links a claim is created first and written a moment later.
TORN_GRACE_S = 30.0
LOCK_NAME = ".claims.lock"
# Exit status of a run (--no-wait) that left cells to other runs which had not written their records yet.
LEFT_TO_OTHERS = 3
_LINK_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}

_held: dict[Path, dict] = {}  # claim path -> owner, for the claims this process holds
_guard = threading.Lock()  # serialises takeovers and renewals between this process's threads
_heartbeat: threading.Thread | None = None


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"${name}={text!r} is not a positive number of seconds; unset it or set e.g. "
                        f"{name}={default:g}")
    return value


def lease_seconds() -> float:
    """How long a claim holds without renewal (LEASE_S, or $PRUNEBENCH_CLAIM_LEASE_S)."""
    return _seconds(LEASE_ENV, LEASE_S)


def heartbeat_seconds() -> float:
    """How often a held claim is renewed (HEARTBEAT_S, or $PRUNEBENCH_CLAIM_HEARTBEAT_S)."""
    return _seconds(HEARTBEAT_ENV, HEARTBEAT_S)


def poll_seconds() -> float:
    """How often a waiting run looks at other runs' cells (POLL_S, or $PRUNEBENCH_CLAIM_POLL_S)."""
    return _seconds(POLL_ENV, POLL_S)


def check_settings() -> None:
    """Bad input when the claim timings from the environment cannot work (a lease shorter than two heartbeats)."""
    lease, beat = lease_seconds(), heartbeat_seconds()
    poll_seconds()
    if beat * 2 > lease:
        raise UserError(f"${HEARTBEAT_ENV}={beat:g} is more than half of ${LEASE_ENV}={lease:g}: a claim would "
                        f"expire between renewals; make the heartbeat at most half the lease")


# -- who is the claimant ---------------------------------------------------------------------------

def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when unknown."""
    text = _read_text(f"/proc/{pid}/stat")
    if not text:
        return None
    try:
        return int(text[text.rindex(")") + 2:].split()[19])  # fields after "(comm)" start at field 3
    except (ValueError, IndexError):
        return None


def _machine() -> dict:
    """What identifies this machine's process table: host name, boot and pid namespace (None when unknown)."""
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return {"host": socket.gethostname(), "boot_id": _read_text("/proc/sys/kernel/random/boot_id"),
            "pid_ns": pid_ns}


def _new_owner() -> dict:
    pid = os.getpid()
    return {**_machine(), "pid": pid, "start_ticks": process_start(pid), "token": uuid.uuid4().hex,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(), "lease_until": time.time() + lease_seconds()}


def _same_machine(owner: dict) -> bool:
    here = _machine()
    if owner.get("host") != here["host"]:
        return False
    # Claims of older versions lack boot id and namespace: the host name decides for them.
    return all(owner.get(k) is None or here[k] is None or owner[k] == here[k] for k in ("boot_id", "pid_ns"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def stale_reason(owner: dict | None, mtime: float, now: float | None = None) -> str | None:
    """Why a claim no longer holds its cell ("lease expired", "process gone", ...); None while it holds."""
    now = time.time() if now is None else now
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or not isinstance(owner.get("host"), str):
        return "unreadable" if now - mtime > TORN_GRACE_S else None
    lease = owner.get("lease_until")
    # A claim without a lease (an older version's) expires a lease after it was written.
    expiry = lease if isinstance(lease, (int, float)) and not isinstance(lease, bool) else mtime + lease_seconds()
    if now > expiry:
        return "lease expired"
    if not _same_machine(owner):
        return None  # another machine's process: its lease decides
    pid = owner["pid"]
    if not _pid_alive(pid):
        return "process gone"
    start, current = owner.get("start_ticks"), process_start(pid)
    if isinstance(start, int) and current is not None and start != current:
        return "pid reused by another process"
    return None


# -- files -----------------------------------------------------------------------------------------

def claim_path(results_dir: Path, key: str) -> Path:
    """The claim file of a cell that a run is computing now."""
    return paths.records_dir(results_dir) / f"{key}.claim"


def _read(path: Path) -> tuple[bytes, dict | None, float] | None:
    """(raw bytes, owner or None when unreadable, mtime) of a claim; None when there is none."""
    try:
        mtime = os.stat(path).st_mtime
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return b"", None, time.time()  # cannot read it now: treated as fresh, never taken over at once
    try:
        owner = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        owner = None
    return raw, owner if isinstance(owner, dict) else None, mtime


def _encode(owner: dict) -> bytes:
    return json.dumps(owner, sort_keys=True).encode()


def _link_new(path: Path, owner: dict) -> bool:
    """Put ``owner``'s claim at ``path`` in one step; False when a claim is there already."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_encode(owner))
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)  # fails with FileExistsError when the cell is claimed: the atomic step
        except OSError as exc:
            if exc.errno not in _LINK_UNSUPPORTED:
                raise
            return _create_exclusive(path, owner)
        return True
    except FileExistsError:
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def _create_exclusive(path: Path, owner: dict) -> bool:
    """For filesystems without hard links: O_EXCL, then write (readers give such a file TORN_GRACE_S)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(_encode(owner))
    return True


@contextmanager
def _serialised(folder: Path) -> Iterator[None]:
    """Hold this folder's claim lock: the thread lock, and flock where the filesystem has it (else the
    rename-and-compare in ``_take_over`` still keeps two takers from both winning)."""
    with _guard:
        try:
            import fcntl
        except ImportError:  # not POSIX
            yield
            return
        try:
            fd = os.open(folder / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # e.g. ENOLCK on a network filesystem without locks
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _take_over(path: Path, judged: bytes, owner: dict) -> bool:
    """Replace the stale claim ``judged`` (its bytes) by ``owner``'s; False when it changed meanwhile."""
    with _serialised(path.parent):
        found = _read(path)
        if found is None:
            return _link_new(path, owner)
        if found[0] != judged or stale_reason(found[1], found[2]) is None:
            return False  # renewed, or replaced by a fresh claim, since it was judged
        moved = path.with_name(f".{path.name}.{owner['token']}.stale")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return _link_new(path, owner)
        try:
            if moved.read_bytes() != judged:  # a fresh claim arrived between the read and the rename
                try:
                    os.link(moved, path)  # put it back
                except FileExistsError:
                    pass
                return False
        finally:
            moved.unlink(missing_ok=True)
        return _link_new(path, owner)


# -- the claim API ---------------------------------------------------------------------------------

def claim_cell(results_dir: Path, key: str) -> bool:
    """Claim a cell for this process; False when another live run holds it (see the module docstring)."""
    path = claim_path(results_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = _new_owner()
    for _ in range(5):
        if _link_new(path, owner):
            _hold(path, owner)
            return True
        found = _read(path)
        if found is None:
            continue  # released meanwhile: try again
        if stale_reason(found[1], found[2]) is None:
            return False
        if _take_over(path, found[0], owner):
            _hold(path, owner)
            return True
    return False


def release_cell(results_dir: Path, key: str) -> None:
    """Remove this process's claim on a cell (after its record is written, or when it was not run)."""
    _release(claim_path(results_dir, key))


def _release(path: Path) -> None:
    with _guard:
        owner = _held.pop(path, None)
        if owner is None:
            return
        found = _read(path)
        if found is not None and (found[1] or {}).get("token") == owner["token"]:
            path.unlink(missing_ok=True)


def release_all() -> int:
    """Release every claim this process holds (on SIGTERM / SIGINT); how many there were."""
    with _guard:
        held = list(_held)
    for path in held:
        _release(path)
    return len(held)


def held_claims() -> list[Path]:
    """The claim files this process holds now."""
    with _guard:
        return list(_held)


def claimed_by(results_dir: Path, key: str) -> dict | None:
    """The owner recorded in a cell's claim file ({} when unreadable), or None when unclaimed."""
    found = _read(claim_path(results_dir, key))
    return None if found is None else (found[1] or {})


def live_claim(results_dir: Path, key: str) -> dict | None:
    """The owner of a cell's claim while another run still holds it (not stale), else None."""
    found = _read(claim_path(results_dir, key))
    if found is None:
        return None
    owner = found[1] or {}
    return None if stale_reason(found[1], found[2]) else owner


def renew_claims() -> list[Path]:
    """Extend the lease of every claim this process holds; return those lost to another run meanwhile."""
    lost = []
    for path in held_claims():
        with _serialised(path.parent):
            owner = _held.get(path)
            found = _read(path)
            if owner is None:
                continue  # released meanwhile
            if found is None or (found[1] or {}).get("token") != owner["token"]:
                _held.pop(path, None)
                lost.append(path)
                continue
            renewed = {**owner, "lease_until": time.time() + lease_seconds()}
            write_bytes_atomic(path, _encode(renewed))
            _held[path] = renewed
    return lost


def _hold(path: Path, owner: dict) -> None:
    with _guard:
        _held[path] = owner
    _start_heartbeat()


def _start_heartbeat() -> None:
    global _heartbeat
    with _guard:
        if _heartbeat is not None and _heartbeat.is_alive():
            return
        _heartbeat = threading.Thread(target=_beat, name="prunebench-claim-heartbeat", daemon=True)
        _heartbeat.start()


def _beat() -> None:
    """The heartbeat thread: renew held claims every heartbeat_seconds() for the life of the process."""
    while True:
        try:
            time.sleep(heartbeat_seconds())
        except UserError:  # a bad $PRUNEBENCH_CLAIM_HEARTBEAT_S set after the run's check: the default
            time.sleep(HEARTBEAT_S)
        try:
            lost = renew_claims()
        except OSError as exc:  # e.g. the disk is full for a moment: the lease leaves room for the next beat
            print(f"warning: could not renew a claim ({exc.strerror or exc}); retrying in "
                  f"{heartbeat_seconds():g} s", file=sys.stderr)
            continue
        for path in lost:
            print(f"warning: another run took over the claim {path.name} (this run did not renew it within "
                  f"the lease: a machine stopped or overloaded?); both may compute that cell", file=sys.stderr)
