"""Run an OCR worker and replace it, without a gap, when it asks to be recycled.

    python -m workers.launcher celery -A ocrsite worker -Q ocr --pool threads -n ocr@%h ...

Celery's threads pool has no max-tasks-per-child, and a long-lived worker's memory creeps up
(docs/running.md, "Memory"). This launcher is the worker's parent process. The worker
(``workers.recycle``) counts its tasks and watches its own RSS; past OCR_WORKER_MAX_TASKS or
OCR_WORKER_MAX_RSS_MB it sends SIGUSR1 here. The launcher then starts a second worker with the
same command and name, waits until that one has loaded its models and announced itself (it sends
SIGUSR2), and only then sends the old one SIGTERM: Celery's warm shutdown finishes the jobs it is
running and gives back the messages it had reserved. There is always a worker taking jobs.

- SIGTERM, SIGINT and SIGQUIT are passed to every worker; the launcher exits when all are gone,
  with the serving worker's exit status.
- A serving worker that dies is not restarted here: the launcher exits with its status and the
  supervisor (supervisord, Docker's restart policy) starts everything again, as for any crash.
- A replacement that dies, or is not ready within OCR_WORKER_READY_TIMEOUT_S, is given up; the
  old worker keeps serving and asks again later.
- Workers run in their own process group (a signal is passed once, not twice) and get SIGTERM
  if the launcher itself is killed.
- Workers allocate with glibc's malloc held to two arenas (OCR_WORKER_ALLOCATOR=system, the
  default; MALLOC_ARENA_MAX=2 unless set): one arena per task thread would keep what lines and pages
  of every size left behind. OCR_WORKER_ALLOCATOR=jemalloc preloads Debian's libjemalloc2, which
  gives freed memory back (about 200 MiB less under load) but reads a page 40-70 % slower: ONNX
  Runtime's large buffers are returned and faulted in again on every run (docs/running.md, "Memory").

This module imports nothing of ours and no Django: it is a plain process supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("ocr.launcher")
LAUNCHER_ENV = "OCR_WORKER_LAUNCHER_PID"
RECYCLE = signal.SIGUSR1  # worker -> launcher: replace me
READY = signal.SIGUSR2  # worker -> launcher: I have loaded my models and serve
STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
WATCHED = {RECYCLE, READY, signal.SIGCHLD, *STOP}
PR_SET_PDEATHSIG = 1
JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2")
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
SYSTEM_ARENAS = "2"


def worker_env(base: dict[str, str], launcher_pid: int) -> dict[str, str]:
    """The workers' environment: the launcher's pid, OpenMP on one thread, and the allocator
    OCR_WORKER_ALLOCATOR names: glibc's held to two arenas (the default), or jemalloc preloaded
    where it is installed."""
    env = dict(base, **{LAUNCHER_ENV: str(launcher_pid)})
    # OpenMP libraries (OpenBLAS under numpy, scikit-learn's under the table finder) stay on one
    # thread: the task threads and ONNX Runtime's own pools already share the cores, and their
    # parallel sections made a page 15-20 % slower (docs/serving.md)
    env.setdefault("OMP_NUM_THREADS", "1")
    choice = env.get("OCR_WORKER_ALLOCATOR", "system").strip().lower()
    library = next((path for path in JEMALLOC if os.path.exists(path)), None)
    if choice == "jemalloc" and library:
        if library not in env.get("LD_PRELOAD", ""):
            env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD", ""), library]))
        # freed pages go back to the system within a second, from jemalloc's own thread
        env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    else:
        env.setdefault("MALLOC_ARENA_MAX", SYSTEM_ARENAS)
    return env


def _child_setup() -> None:
    """In the child, between fork and exec: take the signals the launcher blocks, and die with it."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class Launcher:
    command: list[str]
    ready_timeout_s: float = 300.0
    serving: subprocess.Popen | None = None
    replacement: subprocess.Popen | None = None
    replacement_started: float = 0.0
    retiring: list[subprocess.Popen] = field(default_factory=list)
    stopping: bool = False
    exit_status: int = 0
    generations: int = 0

    def spawn(self) -> subprocess.Popen:
        self.generations += 1
        env = worker_env(dict(os.environ), os.getpid())
        proc = subprocess.Popen(self.command, env=env, start_new_session=True, preexec_fn=_child_setup)
        allocator = (
            "jemalloc" if "jemalloc" in env.get("LD_PRELOAD", "") else f"glibc, {env['MALLOC_ARENA_MAX']} arenas"
        )
        log.info("launcher: worker %d started (pid %d, %s)", self.generations, proc.pid, allocator)
        return proc

    def children(self) -> list[subprocess.Popen]:
        return [p for p in (self.serving, self.replacement, *self.retiring) if p is not None]

    def on_signal(self, signo: int, sender: int) -> None:
        if signo in STOP:
            self.stop(signo)
        elif signo == RECYCLE and self.serving is not None and sender == self.serving.pid:
            if self.replacement is None and not self.stopping:
                log.info("launcher: worker pid %d asks to be recycled; starting its replacement", sender)
                self.replacement = self.spawn()
                self.replacement_started = time.monotonic()
        elif signo == READY and self.replacement is not None and sender == self.replacement.pid and not self.stopping:
            old, self.serving, self.replacement = self.serving, self.replacement, None
            log.info("launcher: pid %d serves; retiring pid %d (warm shutdown)", sender, old.pid)
            self.retiring.append(old)
            _send(old, signal.SIGTERM)

    def stop(self, signo: int) -> None:
        self.stopping = True
        for proc in self.children():
            _send(proc, signo)

    def reap(self) -> bool:
        """Collect exited workers; False once the launcher should exit."""
        for proc in list(self.retiring):
            if proc.poll() is not None:
                log.info("launcher: retired pid %d exited with %s", proc.pid, proc.returncode)
                self.retiring.remove(proc)
        if self.replacement is not None and self.replacement.poll() is not None:
            log.warning("launcher: replacement pid %d died before it was ready", self.replacement.pid)
            self.replacement = None
        if self.replacement is not None and time.monotonic() - self.replacement_started > self.ready_timeout_s:
            log.warning("launcher: replacement pid %d not ready in time; killed", self.replacement.pid)
            _send(self.replacement, signal.SIGKILL)
            self.retiring.append(self.replacement)
            self.replacement = None
        if self.serving is not None and self.serving.poll() is not None:
            self.exit_status = self.serving.returncode
            log.log(
                logging.INFO if self.stopping else logging.ERROR, "launcher: worker exited with %s", self.exit_status
            )
            self.serving = None
            if not self.stopping:  # a crash: stop the rest, the supervisor restarts us all
                self.stop(signal.SIGTERM)
        return bool(self.children())

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        self.serving = self.spawn()
        while self.reap():
            info = signal.sigtimedwait(WATCHED, 0.5)
            if info is not None and info.si_signo != signal.SIGCHLD:
                self.on_signal(info.si_signo, info.si_pid)
        return _status(self.exit_status)


def _send(proc: subprocess.Popen, signo: int) -> None:
    try:
        os.kill(proc.pid, signo)
    except ProcessLookupError:
        pass


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # killed by signal N: 128 + N


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s: %(levelname)s/launcher] %(message)s")
    timeout = float(os.environ.get("OCR_WORKER_READY_TIMEOUT_S", "300"))
    return Launcher(args, ready_timeout_s=timeout).run()


if __name__ == "__main__":
    sys.exit(main())
