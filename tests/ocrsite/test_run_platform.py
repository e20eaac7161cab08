"""scripts/run_platform.py: supervisord restarts what dies, crash loops are reported, stopping leaves nothing.

These run a real supervisord with the script's own configuration and watcher, over small stand-in
programs, so they need neither Django nor Celery processes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("run_platform", ROOT / "scripts" / "run_platform.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rp = _load_script()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has finished; only its parent has not read its status yet


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def var(tmp_path, monkeypatch):
    short = Path(f"/tmp/ocr-sup-{os.getpid()}-{time.monotonic_ns() % 10**6}")  # unix sockets need short paths
    short.mkdir()
    monkeypatch.setattr(rp, "VAR", short)
    monkeypatch.setattr(rp, "LOGS", short / "logs")
    (short / "logs").mkdir()
    yield short
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def run(var):
    """Start supervisord over the given programs; stop it afterwards whatever happened."""
    started = []

    def start(*programs):
        plat = rp.Platform(env=dict(os.environ), web_port=0, flower_port=0, redis_port=None, programs=list(programs))
        sup = rp.start_supervisord(plat)
        started.append((plat, sup))
        return plat, sup, rp.rpc_proxy(plat)

    yield start
    for plat, sup in started:
        rp.shutdown(plat, sup)


def wait_until(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def state(rpc, name: str) -> dict:
    return rpc.getProcessInfo(name)


def test_a_killed_program_is_restarted_and_the_watcher_reports_why(run, caplog):
    plat, _, rpc = run(
        rp.Program("worker", _py("import time; time.sleep(600)"), priority=10, autostart=True, startsecs=1)
    )
    first = wait_until(
        lambda: state(rpc, "worker")["statename"] == "RUNNING" and state(rpc, "worker")["pid"], "the first start"
    )
    watcher = rp.Watcher(rpc, plat.pids)
    watcher.poll()
    os.kill(first, signal.SIGKILL)
    caplog.set_level(logging.INFO, logger="platform")

    def restarted():
        watcher.poll()
        info = watcher.last["worker"]  # what the watcher saw, so that it reported it
        return info["statename"] == "RUNNING" and info["pid"] != first

    wait_until(restarted, "the restart")
    assert "worker: died unexpectedly" in caplog.text
    assert "terminated by SIGKILL" in caplog.text
    assert "worker: running again" in caplog.text
    assert plat.pids["worker"] != first


def test_a_program_that_keeps_dying_at_start_backs_off_then_is_reported_fatal(run, caplog):
    plat, _, rpc = run(
        rp.Program("broken", _py("raise SystemExit(3)"), priority=10, autostart=True, startsecs=2, startretries=2)
    )
    caplog.set_level(logging.INFO, logger="platform")
    watcher = rp.Watcher(rpc, plat.pids)

    def fatal():
        watcher.poll()
        return watcher.last["broken"]["statename"] == "FATAL"

    wait_until(fatal, "FATAL")
    assert "broken: BACKOFF" in caplog.text
    assert "broken: FATAL" in caplog.text


def test_a_fatal_program_is_tried_again_after_the_pause(run, monkeypatch, var):
    flag = var / "may-start"
    code = f"import os, sys, time; os.path.exists({str(flag)!r}) or sys.exit(3); time.sleep(600)"
    plat, _, rpc = run(rp.Program("flaky", _py(code), priority=10, autostart=True, startsecs=1, startretries=0))
    monkeypatch.setattr(rp, "FATAL_RETRY_S", 0)
    watcher = rp.Watcher(rpc, plat.pids)
    wait_until(lambda: state(rpc, "flaky")["statename"] == "FATAL", "FATAL")
    flag.touch()  # whatever made it fail is gone (e.g. Redis is back)

    def running():
        watcher.poll()
        return state(rpc, "flaky")["statename"] == "RUNNING"

    wait_until(running, "the retry")


def test_stopping_ends_every_program_and_its_children_even_one_that_ignores_sigterm(run, var):
    child_pid_file = var / "child.pid"
    plat, sup, rpc = run(
        rp.Program(
            "parent",
            ["sh", "-c", f"sleep 600 & echo $! > {child_pid_file}; wait"],
            priority=10,
            autostart=True,
            startsecs=1,
        ),
        rp.Program(
            "stubborn",
            _py("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"),
            priority=20,
            autostart=True,
            startsecs=1,
            stopwaitsecs=1,
        ),
    )
    wait_until(lambda: all(i["statename"] == "RUNNING" for i in rpc.getAllProcessInfo()), "both running")
    wait_until(lambda: child_pid_file.exists() and child_pid_file.read_text().strip(), "the child's pid")
    pids = [i["pid"] for i in rpc.getAllProcessInfo()] + [int(child_pid_file.read_text())]
    assert all(_alive(pid) for pid in pids)
    rp.shutdown(plat, sup)
    assert sup.returncode is not None
    assert not [pid for pid in pids if _alive(pid)]


def test_the_platform_runs_gunicorn_and_a_redis_that_persists_its_queues(monkeypatch, var):
    for name in ("OCR_REDIS_URL", "OCR_WORKER_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OCR_REDIS_PORT", str(_free_port()))
    monkeypatch.setenv("OCR_WEB_PORT", str(_free_port()))
    monkeypatch.setenv("OCR_FLOWER_PORT", str(_free_port()))
    plat = rp.make_platform()
    commands = {prog.name: prog.command for prog in plat.programs}
    assert set(commands) == {"redis", "web", "ocr-worker", "training-worker", "flower"}
    redis = " ".join(commands["redis"])
    assert "--appendonly yes" in redis and "--appendfsync everysec" in redis
    assert commands["web"][1:4] == ["-m", "gunicorn", "-c"] and "python:ocrsite.gunicorn_conf" in commands["web"]
    assert commands["ocr-worker"][1:3] == ["-m", "workers.launcher"]  # recycled without a gap
    conf = rp.supervisord_conf(plat)
    assert "ocr@%%h" in conf  # supervisord would otherwise read %h as its own interpolation
    assert plat.env["OCR_REDIS_URL"].endswith(f":{plat.redis_port}/0")


ORPHAN = r"""
import importlib.util, os, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("run_platform", sys.argv[1])
rp = importlib.util.module_from_spec(spec); sys.modules["run_platform"] = rp; spec.loader.exec_module(rp)
rp.VAR = Path(sys.argv[2]); rp.LOGS = rp.VAR / "logs"
prog = rp.Program("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], priority=10, autostart=True,
                  startsecs=1)
plat = rp.Platform(env=dict(os.environ), web_port=0, flower_port=0, redis_port=None, programs=[prog])
sup = rp.start_supervisord(plat)
rpc = rp.rpc_proxy(plat)
while rpc.getProcessInfo("sleeper")["statename"] != "RUNNING":
    time.sleep(0.1)
print(sup.pid, rpc.getProcessInfo("sleeper")["pid"], flush=True)
time.sleep(600)
"""


def test_killing_the_script_outright_still_stops_supervisord_and_its_programs(var):
    script = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(ROOT / "scripts" / "run_platform.py"), str(var)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pids = [int(p) for p in script.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    finally:
        script.kill()  # no chance to stop anything itself
        script.wait(timeout=10)
    try:
        wait_until(lambda: not any(_alive(pid) for pid in pids), "supervisord and its program to stop")
    finally:
        for pid in pids:  # only if the test failed: leave nothing behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
