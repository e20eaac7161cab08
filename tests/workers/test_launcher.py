"""The launcher with small stand-in workers (the real Celery worker: tests/integration/test_recycling.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workers.recycle import Recycler

ROOT = Path(__file__).resolve().parents[2]

# A stand-in worker: says it serves, asks to be recycled (the first generation only, or never
# with "stay"), writes what happens to it, and exits on SIGTERM with status 0 (or "crash" status 3).
FAKE = r"""
import os, signal, sys, time
from workers.recycle import Recycler
log_path, mode = sys.argv[1], sys.argv[2]
def note(what):
    with open(log_path, "a") as f:
        f.write(f"{what} {os.getpid()}\n")
note("start")
signal.signal(signal.SIGTERM, lambda *a: (note("term"), sys.exit(0)))
first = not os.path.exists(log_path + ".first")
open(log_path + ".first", "a").close()
if mode == "dies-young" and not first:
    sys.exit(5)
rec = Recycler(max_tasks=2, max_rss_mib=0)
rec.serving()
time.sleep(0.3)
if first and mode not in ("stay", "crash"):
    rec.task_done(); rec.task_done()
if first and mode == "crash":
    time.sleep(0.5); sys.exit(3)
while True:
    time.sleep(0.05)
"""


def launch(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "events.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OCR_WORKER_READY_TIMEOUT_S="20")
    cmd = [sys.executable, "-m", "workers.launcher", "--", sys.executable, "-c", FAKE, str(log), mode]
    return subprocess.Popen(cmd, cwd=ROOT, env=env), log


def events(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(w, int(p)) for w, p in (line.split() for line in log.read_text().splitlines())]


def wait_for(predicate, log: Path, timeout: float = 20.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = events(log)
        if predicate(seen):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"timed out; events: {events(log)}")


def test_a_worker_that_asks_is_replaced_only_once_its_replacement_serves(tmp_path):
    launcher, log = launch(tmp_path, "recycle")
    try:
        seen = wait_for(lambda e: [w for w, _ in e].count("term") == 1, log)
        (first, second) = [p for w, p in seen if w == "start"]
        # The first worker is stopped after the second started (and said it serves), not before.
        assert seen.index(("term", first)) > seen.index(("start", second))
        time.sleep(0.5)
        assert launcher.poll() is None, "the launcher must stay while its new worker serves"
        os.kill(second, 0)  # still alive
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) == 0
        assert ("term", second) in events(log)
    finally:
        launcher.kill()


def test_stopping_the_launcher_stops_its_worker(tmp_path):
    launcher, log = launch(tmp_path, "stay")
    try:
        (_, pid), *_ = wait_for(lambda e: len(e) >= 1, log)
        time.sleep(0.5)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) == 0
        assert events(log) == [("start", pid), ("term", pid)]
    finally:
        launcher.kill()


def test_a_crashed_worker_ends_the_launcher_with_its_status(tmp_path):
    """Restarting after a crash is the supervisor's job; the replacement being started is stopped too."""
    launcher, log = launch(tmp_path, "crash")
    try:
        assert launcher.wait(timeout=20) == 3
    finally:
        launcher.kill()


def test_a_replacement_that_dies_young_leaves_the_old_worker_serving(tmp_path):
    launcher, log = launch(tmp_path, "dies-young")
    try:
        seen = wait_for(lambda e: [w for w, _ in e].count("start") == 2, log)
        time.sleep(1.0)
        first = seen[0][1]
        assert ("term", first) not in events(log) and launcher.poll() is None
        os.kill(first, 0)
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=20)


def test_the_recycler_counts_tasks_and_asks_once_in_a_while(monkeypatch):
    asked = []
    monkeypatch.setattr("workers.recycle._signal", lambda pid, signo: asked.append((pid, signo)) or True)
    rec = Recycler(max_tasks=3, max_rss_mib=0, launcher_pid=4242)
    assert [rec.task_done() for _ in range(5)] == [False, False, True, False, False]
    assert rec.recycling and rec.reason == "3 tasks" and asked == [(4242, signal.SIGUSR1)]


def test_the_recycler_watches_rss_and_without_a_launcher_only_says_so(monkeypatch):
    monkeypatch.setattr("workers.recycle.rss_mib", lambda: 900.0)
    rec = Recycler(max_tasks=0, max_rss_mib=800, launcher_pid=0)
    assert rec.task_done() is False
    assert rec.recycling and rec.reason == "RSS 900 MiB"
    assert Recycler(max_tasks=0, max_rss_mib=0, launcher_pid=0).due() == ""


@pytest.mark.parametrize("value", ["", "abc", "1"])
def test_the_launcher_pid_is_taken_only_from_our_own_parent(monkeypatch, value):
    monkeypatch.setenv("OCR_WORKER_LAUNCHER_PID", value)
    assert Recycler(1, 0).launcher_pid is None  # pid 1 is not this test's parent


def test_workers_get_glibc_with_two_arenas_unless_asked_for_jemalloc(tmp_path, monkeypatch):
    from workers import launcher

    library = tmp_path / "libjemalloc.so.2"
    library.write_bytes(b"")
    monkeypatch.setattr(launcher, "JEMALLOC", ("/nonexistent/libjemalloc.so.2", str(library)))
    env = launcher.worker_env({"LD_PRELOAD": "/opt/other.so"}, 77)  # the default: glibc's malloc
    assert env["LD_PRELOAD"] == "/opt/other.so" and env["OCR_WORKER_LAUNCHER_PID"] == "77"
    assert env["MALLOC_ARENA_MAX"] == "2" and "MALLOC_CONF" not in env and env["OMP_NUM_THREADS"] == "1"
    assert launcher.worker_env({"OMP_NUM_THREADS": "4"}, 77)["OMP_NUM_THREADS"] == "4"  # an operator's own
    assert launcher.worker_env({"MALLOC_ARENA_MAX": "4"}, 77)["MALLOC_ARENA_MAX"] == "4"  # an operator's own
    env = launcher.worker_env({"LD_PRELOAD": "/opt/other.so", "OCR_WORKER_ALLOCATOR": "jemalloc"}, 77)
    assert env["LD_PRELOAD"] == f"/opt/other.so {library}" and env["MALLOC_CONF"] == launcher.JEMALLOC_CONF
    assert "MALLOC_ARENA_MAX" not in env
    assert launcher.worker_env(env, 77)["LD_PRELOAD"] == env["LD_PRELOAD"]  # not twice
    chosen = {"OCR_WORKER_ALLOCATOR": "jemalloc", "MALLOC_CONF": "narenas:2"}
    assert launcher.worker_env(chosen, 77)["MALLOC_CONF"] == "narenas:2"  # an operator's own
    monkeypatch.setattr(launcher, "JEMALLOC", ("/nonexistent/libjemalloc.so.2",))
    env = launcher.worker_env({"OCR_WORKER_ALLOCATOR": "jemalloc"}, 77)  # not installed: glibc's malloc
    assert "LD_PRELOAD" not in env and env["MALLOC_ARENA_MAX"] == "2"
