"""SIGTERM and SIGINT during a run: unwind cleanly (claims released, one line, exit 143 / 130), and
``run --jobs`` workers that die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGINT)
# Set by a `run --jobs` parent in each worker's environment: the worker dies with that process.
PARENT_ENV = "PRUNEBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, so that a cell's ``except Exception`` does not record
    it as a failed cell."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


@contextmanager
def interruptible() -> Iterator[None]:
    """While inside, SIGTERM and SIGINT raise Interrupted in the main thread; later ones are ignored while
    the run unwinds (a second Ctrl-C must not cut the release of claims short). Handlers restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return

    def handler(signum, frame):
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def die_with_parent(parent_pid: int) -> None:
    """Get SIGTERM when process ``parent_pid`` (our parent) ends: PR_SET_PDEATHSIG on Linux, else a
    watchdog thread polling the parent pid every second."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            _watch_parent(parent_pid)
    else:
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the request above: act on it now
        os.kill(os.getpid(), signal.SIGTERM)


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="prunebench-parent-watch", daemon=True).start()


def stop_workers(workers: list, signum: int, grace_s: float = 60.0) -> None:
    """Send ``signum`` to the workers still running, give them ``grace_s`` to release their claims, then kill."""
    for worker in workers:
        if worker.poll() is None:
            try:
                worker.send_signal(signum)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for worker in workers:
        try:
            worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # it did not stop in time
            worker.kill()
            worker.wait()
