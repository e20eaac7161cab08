"""The worker's side of recycling (``workers.launcher`` is the other): count the tasks, watch the
RSS, and ask the launcher for a replacement once either passes its limit.

OCR_WORKER_MAX_TASKS (tasks) and OCR_WORKER_MAX_RSS_MB (MiB of this process's RSS) set the limits;
0 turns one off. A worker that was not started by the launcher has no one to ask: it logs that
once and goes on serving.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from .launcher import LAUNCHER_ENV, READY, RECYCLE

log = logging.getLogger(__name__)
ASK_AGAIN_S = 120.0  # a replacement that did not come (died, not ready in time): ask again after this


def rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class Recycler:
    def __init__(self, max_tasks: int, max_rss_mib: float, launcher_pid: int | None = None) -> None:
        self.max_tasks = max_tasks
        self.max_rss_mib = max_rss_mib
        self.launcher_pid = launcher_pid if launcher_pid is not None else _launcher_from_env()
        self.tasks = 0
        self.asked_at: float | None = None
        self.reason = ""
        self._lock = threading.Lock()

    @property
    def recycling(self) -> bool:
        """Whether this worker asked to be replaced (its name then stays announced when it stops:
        the replacement serves under the same name)."""
        return self.asked_at is not None

    def due(self) -> str:
        if self.max_tasks and self.tasks >= self.max_tasks:
            return f"{self.tasks} tasks"
        if self.max_rss_mib:
            rss = rss_mib()
            if rss >= self.max_rss_mib:
                return f"RSS {rss:.0f} MiB"
        return ""

    def task_done(self) -> bool:
        """Count one task; True when this call asked for a replacement."""
        with self._lock:
            self.tasks += 1
            if self.asked_at is not None and time.monotonic() - self.asked_at < ASK_AGAIN_S:
                return False
            reason = self.due()
            if not reason:
                return False
            return self._ask(reason)

    def _ask(self, reason: str) -> bool:
        first = self.asked_at is None
        self.asked_at = time.monotonic()
        self.reason = reason
        if not self.launcher_pid:
            if first:
                log.warning("recycling due (%s) but this worker has no launcher (workers.launcher)", reason)
            return False
        log.info("recycling due (%s): asking the launcher for a replacement", reason)
        return _signal(self.launcher_pid, RECYCLE)

    def serving(self) -> None:
        """Tell the launcher this worker has loaded its models and announced itself."""
        if self.launcher_pid:
            _signal(self.launcher_pid, READY)


def _launcher_from_env() -> int | None:
    try:
        pid = int(os.environ.get(LAUNCHER_ENV, ""))
    except ValueError:
        return None
    return pid if pid == os.getppid() else None  # inherited by a grandchild: not ours to signal


def _signal(pid: int, signo: signal.Signals) -> bool:
    try:
        os.kill(pid, signo)
        return True
    except OSError:
        return False
