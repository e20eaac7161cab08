"""Start the whole platform on one machine and stop all of it on Ctrl-C or SIGTERM.

Redis (started here unless OCR_REDIS_URL points at one already running), database
migrations, the demo user, Django, one OCR worker (queue "ocr"), one training worker
(queue "training", concurrency 1) and Flower (basic auth). Every child runs in its
own process group, so stopping leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("OCR_VAR_DIR", ROOT / "var"))
PY = sys.executable


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_free(port):
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see {VAR / 'logs'}")
        time.sleep(0.2)
    raise SystemExit(f"{what} did not open port {port} within {timeout:.0f}s; see {VAR / 'logs'}")


class Supervisor:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs = VAR / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stopping = False

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))
        print(f"  started {name:<16} pid {proc.pid:<7} log {self.logs / (name + '.log')}", flush=True)
        return proc

    def stop(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        print("\nstopping...", flush=True)
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time; killing", flush=True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group
            except ProcessLookupError:
                pass
            proc.wait()
        print("all stopped.", flush=True)


def main() -> int:
    sup = Supervisor()
    signal.signal(signal.SIGINT, sup.stop)
    signal.signal(signal.SIGTERM, sup.stop)

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "ocrsite.settings.local")
    env["PYTHONUNBUFFERED"] = "1"
    web_port = int(env.get("OCR_WEB_PORT", "8000"))
    flower_port = int(env.get("OCR_FLOWER_PORT", "5555"))

    if "OCR_REDIS_URL" not in env:
        redis_port = int(env.get("OCR_REDIS_PORT", "6390"))
        if not port_free(redis_port):
            raise SystemExit(f"port {redis_port} is taken; set OCR_REDIS_PORT or OCR_REDIS_URL")
        redis_bin = shutil.which("redis-server")
        if not redis_bin:
            raise SystemExit("redis-server is not installed; run `make system-deps`")
        (VAR / "redis").mkdir(parents=True, exist_ok=True)
        proc = sup.start(
            "redis",
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(VAR / "redis"),
             "--save", "60", "1", "--appendonly", "yes"],
            env,
        )
        wait_port(redis_port, 15, "redis", proc)
        env["OCR_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"

    try:
        for port, what in ((web_port, "web"), (flower_port, "flower")):
            if not port_free(port):
                raise SystemExit(f"port {port} for {what} is taken; set OCR_WEB_PORT / OCR_FLOWER_PORT")
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        demo = subprocess.run(
            [PY, "manage.py", "bootstrap_demo"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        flower_password = env.get("OCR_FLOWER_PASSWORD") or secrets.token_urlsafe(12)
        celery = [PY, "-m", "celery", "-A", "ocrsite"]
        web = sup.start("web", [PY, "manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"], env)
        sup.start(
            "ocr-worker",
            celery + ["worker", "-Q", "ocr", "--pool", "threads", "--concurrency",
                      env.get("OCR_WORKER_CONCURRENCY", "4"), "-n", "ocr@%h", "-l", "info"],
            env,
        )
        sup.start(
            "training-worker",
            celery + ["worker", "-Q", "training", "--pool", "prefork", "--concurrency", "1",
                      "-n", "training@%h", "-l", "info"],
            env,
        )
        sup.start(
            "flower",
            celery + ["flower", f"--port={flower_port}", "--address=127.0.0.1",
                      f"--basic-auth=admin:{flower_password}"],
            env,
        )
        wait_port(web_port, 60, "web", web)
    except BaseException:
        sup.stop()
        raise

    print("\nThe OCR platform is running:\n")
    print(demo.stdout.rstrip())
    print(f"""
  portal        http://127.0.0.1:{web_port}/
  REST API      http://127.0.0.1:{web_port}/ocr/v1/recognize
  API docs      http://127.0.0.1:{web_port}/ocr/v1/docs   (schema: /ocr/v1/schema)
  admin         http://127.0.0.1:{web_port}/admin/
  flower        http://127.0.0.1:{flower_port}/   (user admin, password {flower_password})

Try:  curl -s -H "Authorization: Token <token>" -H "Content-Type: application/json" \\
        -d "{{\\"image_base64\\": \\"$(base64 -w0 docs/examples/invoice-line.jpg)\\"}}" \\
        http://127.0.0.1:{web_port}/ocr/v1/recognize

Ctrl-C stops everything.""", flush=True)

    while not sup.stopping:
        for name, proc in sup.procs:
            if proc.poll() is not None and not sup.stopping:
                print(f"{name} exited with code {proc.returncode}; stopping the platform (see its log)", flush=True)
                sup.stop()
                return 1
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
