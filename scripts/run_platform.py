"""Start the whole platform on one machine under supervisord; stop all of it on Ctrl-C or SIGTERM.

supervisord (the `supervisor` package) runs Redis (unless OCR_REDIS_URL points at one
already running), the web server (gunicorn), one OCR worker (queue "ocr"), one training
worker (queue "training") and Flower. This script writes its configuration to
var/supervisord.conf, migrates the database, creates the demo user, starts the programs,
and prints the banner once /ocr/v1/health answers 200 (an OCR worker is ready). Then it
watches the programs: a process that dies is restarted by supervisord (with backoff when
it dies while starting); every unexpected exit, BACKOFF and FATAL state is reported here
and in var/logs/platform.log, and a FATAL program is tried again every FATAL_RETRY_S.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("OCR_VAR_DIR", ROOT / "var"))
LOGS = VAR / "logs"
PY = sys.executable
FATAL_RETRY_S = 60
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 90
# Redis holds the queues and the unacknowledged jobs: the append-only file, flushed every
# second, keeps them across a Redis crash or restart (see docs/reliability.md).
REDIS_PERSISTENCE = ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1"]

log = logging.getLogger("platform")


@dataclass
class Program:
    name: str
    command: list[str]
    priority: int
    autostart: bool = False
    startsecs: int = 5  # dying sooner counts as a failed start: retried after 1, 2, 3... s
    startretries: int = 5  # failed starts in a row before FATAL
    stopwaitsecs: int = 30  # after TERM, before KILL


@dataclass
class Platform:
    env: dict[str, str]
    web_port: int
    flower_port: int
    redis_port: int | None  # None: an external Redis (OCR_REDIS_URL)
    programs: list[Program] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # last known, for a supervisord that died

    @property
    def socket_path(self) -> Path:
        return VAR / "supervisor.sock"


def setup_logging() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(LOGS / "platform.log")):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def make_platform() -> Platform:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "ocrsite.settings.local")
    env["PYTHONUNBUFFERED"] = "1"
    # ONNX Runtime without its CPU arena: lines and pages of every size made it grow for the whole of a
    # 10-minute soak (+10.4 % after warm-up), without it +2.1 % (docs/running.md, "Memory")
    env.setdefault("OCR_ORT_ARENA", "0")
    env["FLOWER_BASIC_AUTH"] = "admin:" + (env.get("OCR_FLOWER_PASSWORD") or secrets.token_urlsafe(12))
    redis_port = None
    if "OCR_REDIS_URL" not in env:
        redis_port = int(env.get("OCR_REDIS_PORT", "6390"))
        env["OCR_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    plat = Platform(env, int(env.get("OCR_WEB_PORT", "8000")), int(env.get("OCR_FLOWER_PORT", "5555")), redis_port)
    for port, what in ((redis_port, "redis"), (plat.web_port, "web"), (plat.flower_port, "flower")):
        if port is not None and not port_free(port):
            raise SystemExit(f"port {port} for {what} is taken; set OCR_REDIS_PORT / OCR_WEB_PORT / OCR_FLOWER_PORT")
    plat.programs = programs(plat)
    return plat


def programs(plat: Platform) -> list[Program]:
    celery = [PY, "-m", "celery", "-A", "ocrsite"]
    # Task threads of the OCR worker: each runs its own lines through ONNX Runtime (one thread per
    # session, batching off), so on 2 cores 8 threads keep both busy across DB and Redis waits
    # (docs/serving.md has the measurements).
    concurrency = plat.env.get("OCR_WORKER_CONCURRENCY", "8")
    gunicorn = "-m gunicorn -c python:ocrsite.gunicorn_conf ocrsite.wsgi:application --bind".split()
    ocr = f"worker -Q ocr --pool threads --concurrency {concurrency} -n ocr@%h -l info".split()
    training = "worker -Q training --pool prefork --concurrency 1 -n training@%h -l info".split()
    progs = [
        Program("web", [PY, *gunicorn, f"127.0.0.1:{plat.web_port}"], priority=20),
        # under the launcher, which replaces the worker without a gap when it asks to be recycled
        Program("ocr-worker", [PY, "-m", "workers.launcher", *celery, *ocr], priority=30),
        Program("training-worker", celery + training, priority=40),
        Program("flower", celery + ["flower", f"--port={plat.flower_port}", "--address=127.0.0.1"], priority=50),
    ]
    if plat.redis_port is not None:
        redis_bin = shutil.which("redis-server")
        if not redis_bin:
            raise SystemExit("redis-server is not installed; run `make system-deps`")
        (VAR / "redis").mkdir(parents=True, exist_ok=True)
        redis_cmd = [
            redis_bin,
            "--port",
            str(plat.redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(VAR / "redis"),
            *REDIS_PERSISTENCE,
        ]
        progs.insert(0, Program("redis", redis_cmd, priority=10, autostart=True, startsecs=1))
    return progs


def supervisord_conf(plat: Platform) -> str:
    """The configuration supervisord reads; `%` is its interpolation character, hence the escaping."""
    lines = [
        "[supervisord]",
        "nodaemon=true",
        "silent=true",
        f"logfile={LOGS / 'supervisord.log'}",
        f"pidfile={VAR / 'supervisord.pid'}",
        f"childlogdir={LOGS}",
        f"directory={ROOT}",
        "",
        "[unix_http_server]",
        f"file={plat.socket_path}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{plat.socket_path}",
        "",
    ]
    for prog in plat.programs:
        lines += [
            f"[program:{prog.name}]",
            "command=" + shlex.join(prog.command).replace("%", "%%"),
            f"priority={prog.priority}",
            f"autostart={str(prog.autostart).lower()}",
            "autorestart=true",
            f"startsecs={prog.startsecs}",
            f"startretries={prog.startretries}",
            "stopsignal=TERM",
            f"stopwaitsecs={prog.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={LOGS / (prog.name + '.log')}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=3",
            "redirect_stderr=true",
            "",
        ]
    return "\n".join(lines)


def rpc_proxy(plat: Platform):
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{plat.socket_path}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def _term_when_parent_dies() -> None:
    """In the child before exec: should this script die without stopping it (kill -9), the kernel
    sends supervisord SIGTERM, and supervisord stops its programs. Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_supervisord(plat: Platform) -> subprocess.Popen:
    conf = VAR / "supervisord.conf"
    conf.write_text(supervisord_conf(plat))
    conf.chmod(0o600)
    plat.socket_path.unlink(missing_ok=True)
    # Its own session: a Ctrl-C in the terminal reaches this script, which then stops supervisord.
    proc = subprocess.Popen(
        [PY, "-m", "supervisor.supervisord", "-c", str(conf)],
        cwd=ROOT,
        env=plat.env,
        start_new_session=True,
        preexec_fn=_term_when_parent_dies,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"supervisord exited with code {proc.returncode}; see {LOGS / 'supervisord.log'}")
        try:
            rpc_proxy(plat).getState()
            return proc
        except (OSError, xmlrpc.client.Fault):
            time.sleep(0.2)
    raise SystemExit(f"supervisord did not answer within 20 s; see {LOGS / 'supervisord.log'}")


def wait_for(check, timeout: float, what: str, sup: subprocess.Popen, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if stop.is_set():
            raise KeyboardInterrupt
        if sup.poll() is not None:
            raise SystemExit(f"supervisord exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready within {timeout:.0f} s; see {LOGS}")
        time.sleep(0.3)


def health_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ocr/v1/health", timeout=3) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def prepare_database(plat: Platform) -> str:
    """Migrations and the demo user; returns what bootstrap_demo printed (the token)."""
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=plat.env, check=True)
    demo = subprocess.run(
        [PY, "manage.py", "bootstrap_demo"], cwd=ROOT, env=plat.env, check=True, capture_output=True, text=True
    )
    return demo.stdout.rstrip()


def start(plat: Platform, sup: subprocess.Popen, stop: threading.Event) -> str:
    rpc = rpc_proxy(plat)
    if plat.redis_port is not None:
        wait_for(lambda: not port_free(plat.redis_port), 20, "redis", sup, stop)
    demo = prepare_database(plat)
    for prog in plat.programs:
        if not prog.autostart:
            rpc.startProcess(prog.name, False)  # don't wait: the next one starts meanwhile
            log.info("  started %-16s log %s", prog.name, LOGS / f"{prog.name}.log")
    wait_for(lambda: health_ok(plat.web_port), READY_TIMEOUT_S, "the web server and an OCR worker", sup, stop)
    return demo


def banner(plat: Platform, demo: str) -> str:
    port, password = plat.web_port, plat.env["FLOWER_BASIC_AUTH"].partition(":")[2]
    return f"""
The OCR platform is running:

{demo}

  portal        http://127.0.0.1:{port}/
  REST API      http://127.0.0.1:{port}/ocr/v1/recognize
  API docs      http://127.0.0.1:{port}/ocr/v1/docs   (schema: /ocr/v1/schema)
  health        http://127.0.0.1:{port}/ocr/v1/health
  admin         http://127.0.0.1:{port}/admin/
  flower        http://127.0.0.1:{plat.flower_port}/   (user admin, password {password})

Try:  curl -s -H "Authorization: Token <token>" -H "Content-Type: application/json" \\
        -d "{{\\"image_base64\\": \\"$(base64 -w0 docs/examples/invoice-line.jpg)\\"}}" \\
        http://127.0.0.1:{port}/ocr/v1/recognize

Processes are restarted when they die; logs in {LOGS}. Ctrl-C stops everything."""


def exit_reason(name: str) -> str:
    """How supervisord saw the program's last exit, e.g. "terminated by SIGKILL; not expected"."""
    try:
        with open(LOGS / "supervisord.log", "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            tail = f.read().decode(errors="replace")
    except OSError:
        return "reason unknown"
    marker = f"exited: {name} ("
    line = next((ln for ln in reversed(tail.splitlines()) if marker in ln), "")
    return line.partition(marker)[2].rstrip(")") or "reason unknown"


class Watcher:
    """Reports state changes of supervisord's programs and retries FATAL ones."""

    def __init__(self, rpc, pids: dict[str, int]) -> None:
        self.rpc = rpc
        self.pids = pids
        self.last: dict[str, dict] = {}
        self.fatal_since: dict[str, float] = {}

    def poll(self) -> None:
        for info in self.rpc.getAllProcessInfo():
            self.observe(info)

    def observe(self, info: dict) -> None:
        name, state = info["name"], info["statename"]
        before = self.last.get(name)
        self.last[name] = info
        if info["pid"]:
            self.pids[name] = info["pid"]
        if before is None:
            return
        if state != before["statename"] or (info["pid"] != before["pid"] and state == "RUNNING"):
            self.report(before, info)
        if state == "FATAL":
            since = self.fatal_since.setdefault(name, time.monotonic())
            if time.monotonic() - since >= FATAL_RETRY_S:
                log.warning("%s: FATAL for %d s; trying again", name, FATAL_RETRY_S)
                self.fatal_since.pop(name)
                self.rpc.startProcess(name, False)
        else:
            self.fatal_since.pop(name, None)

    def report(self, before: dict, info: dict) -> None:
        name, state, old = info["name"], info["statename"], before["statename"]
        if state == "RUNNING" and old in ("STARTING", "BACKOFF"):
            log.info("%s: running again (pid %s)", name, info["pid"])
        elif state == "RUNNING":
            log.info("%s: RUNNING (pid %s)", name, info["pid"])
        elif state in ("EXITED", "STARTING") and old == "RUNNING":
            log.warning("%s: died unexpectedly (pid %s, %s); restarting", name, before["pid"], exit_reason(name))
        elif state == "BACKOFF":
            log.warning(
                "%s: BACKOFF: it died while starting; retrying with a growing delay (see %s)",
                name,
                LOGS / f"{name}.log",
            )
        elif state == "FATAL":
            log.error(
                "%s: FATAL: it kept dying while starting; next try in %d s. See %s",
                name,
                FATAL_RETRY_S,
                LOGS / f"{name}.log",
            )
        elif state not in ("STOPPING", "STOPPED") and (old, state) != ("EXITED", "STARTING"):  # said at EXITED
            log.info("%s: %s -> %s", name, old, state)


def watch(plat: Platform, sup: subprocess.Popen, stop: threading.Event) -> int:
    watcher = Watcher(rpc_proxy(plat), plat.pids)
    while not stop.wait(0.5):
        if sup.poll() is not None:
            log.error("supervisord exited with code %s; see %s", sup.returncode, LOGS / "supervisord.log")
            return 1
        try:
            watcher.poll()
        except (OSError, xmlrpc.client.Fault) as exc:
            log.warning("could not read the programs' states: %s", exc)
    return 0


def shutdown(plat: Platform, sup: subprocess.Popen) -> None:
    """supervisord stops the programs in reverse priority order, each process group with TERM, then KILL."""
    log.info("stopping...")
    clean = sup.poll() is None
    if clean:
        try:
            Watcher(rpc_proxy(plat), plat.pids).poll()  # the current pids, in case it must be killed
        except (OSError, xmlrpc.client.Fault):
            pass
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("supervisord did not stop within %d s; killing it", STOP_TIMEOUT_S)
            sup.kill()
            sup.wait()
            clean = False
    if not clean:  # supervisord died or was killed: end the process groups it had started
        for pid in plat.pids.values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    log.info("all stopped.")


def main() -> int:
    setup_logging()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal was closed
        signal.signal(signum, lambda *_: stop.set())
    plat = make_platform()
    sup = start_supervisord(plat)
    try:
        demo = start(plat, sup, stop)
        print(banner(plat, demo), flush=True)
        return watch(plat, sup, stop)
    except KeyboardInterrupt:
        return 130
    finally:
        shutdown(plat, sup)


if __name__ == "__main__":
    sys.exit(main())
