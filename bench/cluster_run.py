"""The checks of bench/cluster.py, run on host A (inside its network namespace): start the
services, the worker hosts, and check what crosses the network. See bench/cluster.py."""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import api_load

ROOT = Path(__file__).resolve().parent.parent
SUBNET = "10.199.0"  # the test hosts' network, inside their namespaces only
PY = sys.executable
A = f"{SUBNET}.1"
WEB = f"http://{A}:8000"
FLOWER = f"http://{A}:5555"
QUICK_TIMINGS = {  # the suite's run: a dead worker is noticed within seconds
    "OCR_WORKER_HEARTBEAT_TTL_S": "4",
    "OCR_RECOVERY_SWEEP_S": "1",
    "OCR_VISIBILITY_TIMEOUT_S": "8",
    "OCR_UNACKED_RESTORE_INTERVAL_S": "2",
}


def worker_name(host: str) -> str:
    return f"ocr@host-{host}"


@dataclass
class Cluster:
    names: dict[str, str]
    shared: Path
    quick: bool
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""
    flower_auth: str = ""
    summary: dict = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(time.time_ns()))

    @property
    def logs(self) -> Path:
        return self.shared / "logs"

    def launch(self, name: str, host: str, argv: list[str], **extra: str) -> subprocess.Popen:
        cmd = argv if host == "a" else ["ip", "netns", "exec", self.names[host], *argv]
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)


# --- services on host A --------------------------------------------------------------------------
def pg_bin() -> Path:
    """The newest PostgreSQL server's binaries from Debian's package."""
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]


def start_postgres(c: Cluster, password: str) -> None:
    """A throwaway cluster: password (SCRAM) auth from the hosts' network, listening on A only."""
    binary = pg_bin()
    data = c.shared / "pg"
    data.mkdir()
    (c.shared / "pg.pw").write_text(password)
    shutil.chown(data, "postgres")
    shutil.chown(c.shared / "pg.pw", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"]

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True)

    pg(str(binary / "initdb"), "-D", str(data / "db"), "-U", "ocr", "--auth-local=trust",
       "--auth-host=scram-sha-256", f"--pwfile={c.shared / 'pg.pw'}", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
    with open(data / "db" / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {SUBNET}.0/24 scram-sha-256\n")
    options = f"-c listen_addresses={A} -p 5432 -k {data} -c fsync=off -c max_connections=200"
    pg(str(binary / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "postgres.log"), "-w", "-o", options, "start")
    pg(str(binary / "createdb"), "-h", str(data), "-p", "5432", "-U", "ocr", "ocr")
    c.summary["postgres"] = f"{binary.parent.name} at {A}:5432, SCRAM passwords"


def stop_postgres(c: Cluster) -> None:
    binary = pg_bin()
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(binary / "pg_ctl"),
            "-D",
            str(c.shared / "pg" / "db"),
            "-m",
            "immediate",
            "stop",
        ],
        capture_output=True,
    )


def base_env(c: Cluster, pg_password: str, redis_password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "POSTGRES_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="ocrsite.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS=A,
        OCR_DB_ENGINE="postgresql",
        POSTGRES_HOST=A,
        POSTGRES_PORT="5432",
        POSTGRES_USER="ocr",
        POSTGRES_PASSWORD=pg_password,
        POSTGRES_DB="ocr",
        OCR_REDIS_URL=f"redis://:{redis_password}@{A}:6379/0",
        OCR_VAR_DIR=str(c.shared / "var"),  # the shared storage: images and promoted models
        OCR_MODELS_DIR=str(ROOT / "models"),
        OCR_ORT_THREADS="1",
        OCR_ORT_ARENA="0",
        OCR_THROTTLE_PER_MINUTE="0",
        OCR_METRICS_TOKEN=secrets.token_urlsafe(24),
        # no frozen suites on these hosts: a registered model's report is quick (and says so)
        OCR_EVAL_SUITE_DIR=str(c.shared / "no-suite"),
        OCR_EVAL_PAGES_DIR=str(c.shared / "no-suite"),
        PYTHONUNBUFFERED="1",
        **(QUICK_TIMINGS if c.quick else {}),
    )
    return env


def start_host_a(c: Cluster) -> None:
    redis_password, pg_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    c.logs.mkdir(parents=True)
    start_postgres(c, pg_password)
    c.env = base_env(c, pg_password, redis_password)
    redis_dir = c.shared / "redis"
    redis_dir.mkdir()
    c.launch("redis", "a", ["redis-server", "--bind", A, "--port", "6379", "--requirepass", redis_password,
                            "--appendonly", "yes", "--dir", str(redis_dir)])  # fmt: skip
    os.environ.update(c.env)  # this script is a client on host A, with the platform's settings
    import django

    django.setup()
    from django.core.management import call_command

    wait_until(lambda: _redis().ping(), 20, "Redis")
    call_command("migrate", interactive=False, verbosity=0)
    c.token = make_staff()
    gunicorn = [PY, "-m", "gunicorn", "-c", "python:ocrsite.gunicorn_conf", "ocrsite.wsgi:application"]
    c.launch("web", "a", [*gunicorn, "--bind", f"{A}:8000"])
    password = secrets.token_urlsafe(12)
    c.flower_auth = "admin:" + password
    c.launch("flower", "a", [PY, "-m", "celery", "-A", "ocrsite", "flower", "--port=5555", f"--address={A}"],
             FLOWER_BASIC_AUTH=c.flower_auth)  # fmt: skip
    if not c.quick:
        training = ["worker", "-Q", "training", "--pool", "prefork", "--concurrency", "1", "-n", "training@host-a"]
        c.launch("training-worker", "a", [PY, "-m", "celery", "-A", "ocrsite", *training])
    wait_until(lambda: http("GET", "/ocr/v1/health", c.token)[0] in (200, 503), 60, "the web server")


def make_staff() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user("operator", password=secrets.token_urlsafe(12), is_staff=True)
    return Token.objects.create(user=user).key


def _redis():
    from workers.config import redis_client

    return redis_client()


def start_worker_host(c: Cluster, host: str) -> float:
    """An OCR worker on ``host`` under the launcher; seconds until it announced itself."""
    started = time.monotonic()
    celery = [PY, "-m", "celery", "-A", "ocrsite", "worker", "-Q", "ocr", "--pool", "threads", "--concurrency", "4"]
    c.launch(f"ocr-{host}", host, [PY, "-m", "workers.launcher", *celery, "-n", worker_name(host), "-l", "info"])
    wait_until(lambda: worker_name(host) in live(c), 120, f"the OCR worker on host {host}", c, f"ocr-{host}")
    return time.monotonic() - started


def live(c: Cluster) -> list[str]:
    from workers.presence import live_workers

    return live_workers(_redis(), float(c.env.get("OCR_WORKER_HEARTBEAT_TTL_S", "15")))


# --- a client on host A --------------------------------------------------------------------------
def http(
    method: str,
    path: str,
    token: str = "",
    body: dict | None = None,
    base: str = WEB,
    auth: str = "",
    timeout: float = 120,
) -> tuple[int, dict | list | str]:
    """One request as a client behind the TLS proxy sends it (``auth``, when given, instead of the
    token): the status and the answer, parsed when it is JSON, as text otherwise (-1 when the
    server could not be reached)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", auth or f"Token {token}")
    request.add_header("X-Forwarded-Proto", "https")  # what the TLS proxy in front of the web sets
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _answer(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _answer(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        return -1, {"error": str(exc)}


def _answer(raw: bytes) -> dict | list | str:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return raw.decode(errors="replace")


def image(c: Cluster, page: bool = False) -> str:
    make = api_load.page_image if page else api_load.line_image
    return base64.b64encode(make(c.rng.randrange(10**9), c.rng)).decode()


def submit(c: Cluster, count: int, pages: bool = False) -> list[str]:
    ids = []
    for _ in range(count):
        status, body = http("POST", "/ocr/v1/recognize", c.token, {"image_base64": image(c, pages), "wait": False})
        assert status in (200, 202), (status, body)
        ids.append(body["job_id"])
    return ids


def jobs(ids: list[str]) -> dict[str, dict]:
    from ocr_api.models import OcrJob

    rows = OcrJob.objects.filter(pk__in=ids).values("pk", "status", "claimed_by", "model_label", "attempts")
    return {str(r["pk"]): r for r in rows}


def finished(row: dict) -> bool:
    return row["status"] in ("succeeded", "failed", "cancelled", "deleted")


def wait_jobs(ids: list[str], timeout: float) -> tuple[dict[str, dict], float]:
    """The rows once every job finished (or the time ran out), and when the last one finished."""
    deadline = time.monotonic() + timeout
    while True:
        rows = jobs(ids)
        if all(finished(r) for r in rows.values()) or time.monotonic() > deadline:
            return rows, time.monotonic()
        time.sleep(0.1)


def by_host(rows: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows.values():
        host = row["claimed_by"].split("#")[0] or "(none)"
        counts[host] = counts.get(host, 0) + 1
    return dict(sorted(counts.items()))


def wait_until(check, timeout: float, what: str, c: Cluster | None = None, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready in {timeout:.0f} s" + (f":\n{c.log_tail(log)}" if c and log else ""))


def throughput(c: Cluster, count: int, clients: int = 16) -> float:
    """Lines per second, new lines only (no cache hits), ``clients`` waiting clients at a time."""
    bodies = [api_load.body_of(base64.b64decode(image(c))) for _ in range(count)]
    result = api_load.run(WEB, c.token, bodies, clients, headers={"X-Forwarded-Proto": "https"})
    assert result.errors == 0, f"{result.errors} of {count} lines failed"
    return result.rate


# --- the checks ----------------------------------------------------------------------------------
def check_spread(c: Cluster) -> None:
    rows, _ = wait_jobs(submit(c, 12 if c.quick else 40), 120)
    hosts = by_host(rows)
    c.summary["spread"] = hosts
    assert all(r["status"] == "succeeded" for r in rows.values()), rows
    assert {worker_name("b"), worker_name("c")} <= set(hosts), f"jobs were not spread over B and C: {hosts}"


def check_promotion(c: Cluster) -> None:
    """Register a model copied into the shared model store, promote it over the API, and time how
    long until every worker host serves it."""
    from ocr_api.registry import register_model

    store = Path(c.env["OCR_VAR_DIR"]) / "models"
    store.mkdir(parents=True, exist_ok=True)
    candidate = store / "ppocrv6_tiny_rec.onnx"
    shutil.copy(ROOT / "models" / "reference" / "ppocrv6_tiny_rec.onnx", candidate)
    version = register_model(candidate, kind="reference")
    started = time.monotonic()
    status, body = http("POST", f"/ocr/v1/models/{version.pk}/promote", c.token, {"override_reason": "cluster check"})
    assert status == 200, (status, body)
    hosts = [w for w in live(c) if w.startswith("ocr@")]
    wait_until(lambda: set(announcing(version.label)) >= set(hosts), 60, "every host announcing the model")
    announced = round(time.monotonic() - started, 1)  # before any job: what ocr_worker_model_info shows
    serving: dict[str, float] = {}  # host -> seconds after the promotion its first job with the model ended
    labels: set = set()
    while set(serving) != set(hosts) and time.monotonic() - started < 60:
        rows, _ = wait_jobs(submit(c, 4), 60)
        for row in rows.values():
            host = row["claimed_by"].split("#")[0]
            labels.add((host, row["model_label"]))
            if row["model_label"] == version.label:
                serving.setdefault(host, round(time.monotonic() - started, 1))
    c.summary["promotion"] = {"model": version.label, "hosts": hosts, "announced_after_s": announced, "serving_after_s": serving,
                              "every_host_serving_after_s": max(serving.values(), default=None)}  # fmt: skip
    assert set(serving) == set(hosts), f"not every host served {version.label}: {sorted(labels)}"
    rows, _ = wait_jobs(submit(c, 8), 60)
    labels = {(r["claimed_by"].split("#")[0], r["model_label"]) for r in rows.values()}
    c.summary["promotion"]["jobs_after"] = sorted(labels)
    assert {label for _, label in labels} == {version.label}, labels


def announcing(label: str) -> list[str]:
    """The workers whose announced model (ocr_worker_model_info) is ``label``."""
    from workers.metrics import MODELS_KEY

    found = []
    for worker, value in _redis().hgetall(MODELS_KEY).items():
        if json.loads(value).get("model") == label:
            found.append(worker.decode())
    return found


def kill_host(c: Cluster, host: str) -> None:
    """SIGKILL every process of the host: the launcher and its worker get no chance to hand anything back."""
    pids = subprocess.run(["ip", "netns", "pids", c.names[host]], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass


def running_on(ids: list[str], host: str) -> bool:
    return any(r["status"] == "running" and r["claimed_by"].startswith(worker_name(host)) for r in jobs(ids).values())


def check_dead_host(c: Cluster, host: str, how: str) -> dict:
    """Pages queued, host ``host`` taken away while it holds some; every job must still finish."""
    ids = submit(c, 10 if c.quick else 24, pages=True)
    wait_until(lambda: running_on(ids, host), 60, f"a job running on host {host}")
    started = time.monotonic()
    held = [i for i, r in jobs(ids).items() if r["claimed_by"].startswith(worker_name(host)) and not finished(r)]
    if how == "killed":
        kill_host(c, host)
    else:
        subprocess.run(["ip", "-n", c.names[host], "link", "set", "eth0", "down"], check=True)
    rows, last = wait_jobs(ids, 240)
    outcome = {
        "how": how,
        "jobs": len(ids),
        "held_by_the_host": len(held),
        "succeeded": sum(r["status"] == "succeeded" for r in rows.values()),
        "lost": sum(not finished(r) for r in rows.values()),
        "all_done_after_s": round(last - started, 1),
        "by_host": by_host(rows),
    }
    return outcome


def check_link_back(c: Cluster, host: str) -> None:
    """The link comes back: how long until the host announces itself, and until it takes jobs again
    (Celery's consumer reconnects to the broker on its own schedule)."""
    subprocess.run(["ip", "-n", c.names[host], "link", "set", "eth0", "up"], check=True)
    started = time.monotonic()
    wait_until(lambda: worker_name(host) in live(c), 120, f"host {host} back", c, f"ocr-{host}")
    announced = time.monotonic() - started
    took, counts = None, {}
    while took is None and time.monotonic() - started < 180:
        rows, _ = wait_jobs(submit(c, 4), 120)
        for name, n in by_host(rows).items():
            counts[name] = counts.get(name, 0) + n
        if worker_name(host) in counts:
            took = time.monotonic() - started
    c.summary["link_back"] = {
        "announced_again_after_s": round(announced, 1),
        "took_jobs_again_after_s": None if took is None else round(took, 1),
        "jobs_meanwhile": counts,
    }
    assert took is not None, f"host {host} took no job within 180 s of its link coming back: {counts}"


def check_late_joiner(c: Cluster) -> None:
    ready = start_worker_host(c, "d")
    rows, _ = wait_jobs(submit(c, 20), 120)
    hosts = by_host(rows)
    c.summary["late_joiner"] = {"ready_after_s": round(ready, 1), "jobs": hosts}
    assert worker_name("d") in hosts, hosts


def check_flower(c: Cluster, expected: set[str]) -> None:
    auth = "Basic " + base64.b64encode(c.flower_auth.encode()).decode()
    seen: set[str] = set()

    def has_all() -> bool:
        status, workers = http("GET", "/api/workers?refresh=1", base=FLOWER, auth=auth, timeout=30)
        seen.clear()
        seen.update(workers if status == 200 else ())
        return expected <= seen

    wait_until(has_all, 60, f"Flower listing {sorted(expected)}")
    c.summary["flower"] = sorted(seen)


def check_metrics(c: Cluster) -> None:
    status, text = http("GET", "/metrics", auth=f"Bearer {c.env['OCR_METRICS_TOKEN']}", timeout=30)
    assert status == 200, (status, text)
    c.summary["metrics_model_info"] = sorted(
        line for line in text.splitlines() if line.startswith("ocr_worker_model_info")
    )


# --- the run -------------------------------------------------------------------------------------
def scenarios(c: Cluster) -> None:
    start_host_a(c)
    c.summary["worker_ready_s"] = {"b": round(start_worker_host(c, "b"), 1)}
    if not c.quick:
        c.summary["lines_per_s"] = {"one worker host": round(throughput(c, 150), 2)}
    c.summary["worker_ready_s"]["c"] = round(start_worker_host(c, "c"), 1)
    if not c.quick:
        c.summary["lines_per_s"]["two worker hosts"] = round(throughput(c, 150), 2)
    check_spread(c)
    check_promotion(c)
    c.summary["host_b_killed"] = check_dead_host(c, "b", "killed")
    expected = {worker_name("c")}
    if not c.quick:
        check_late_joiner(c)
        c.summary["host_c_link_down"] = check_dead_host(c, "c", "link down")
        check_link_back(c, "c")
        expected |= {worker_name("d"), "training@host-a"}
    check_flower(c, expected)
    check_metrics(c)


def verdict(c: Cluster) -> list[str]:
    problems = []
    for key in ("host_b_killed", "host_c_link_down"):
        outcome = c.summary.get(key)
        if outcome and (outcome["lost"] or outcome["succeeded"] != outcome["jobs"]):
            problems.append(f"{key}: {outcome['lost']} lost, {outcome['succeeded']}/{outcome['jobs']} succeeded")
    return problems


def print_summary(c: Cluster, problems: list[str]) -> None:
    s = c.summary
    print("\n=== cluster on separate hosts (network namespaces, 2 CPU cores shared) ===")
    if "spread" in s:
        print(f"jobs spread over worker hosts: {s['spread']}")
    if "lines_per_s" in s:
        rates = s["lines_per_s"]
        print(f"throughput, new lines, 16 clients: {rates}  (one machine's 2 cores: distribution, not scaling)")
    if "promotion" in s:
        p = s["promotion"]
        print(
            f"promoted {p['model']} on A: every worker host announced it after {p['announced_after_s']} s "
            f"and served it after {p['every_host_serving_after_s']} s"
        )
    for key in ("host_b_killed", "host_c_link_down"):
        if key in s:
            o = s[key]
            print(f"{key}: {o['jobs']} jobs ({o['held_by_the_host']} held by it), {o['succeeded']} succeeded, "
                  f"{o['lost']} lost, all done {o['all_done_after_s']} s after; by host {o['by_host']}")  # fmt: skip
    for key in ("late_joiner", "link_back", "flower", "metrics_model_info", "worker_ready_s"):
        if key in s:
            print(f"{key}: {s[key]}")
    print(
        "error: " + s["error"]
        if "error" in s
        else ("PROBLEMS: " + "; ".join(problems) if problems else "all checks passed")
    )


def run(names: dict[str, str], shared: Path, quick: bool, json_path: Path | None) -> int:
    c = Cluster(names, shared, quick)
    problems: list[str] = []
    try:
        scenarios(c)
        problems = verdict(c)
    except Exception as exc:  # reported with the logs' tails, then everything is stopped
        c.summary["error"] = f"{type(exc).__name__}: {exc}"
        for name in c.procs:
            print(f"--- {name} ---\n{c.log_tail(name, 15)}", file=sys.stderr)
    finally:
        c.stop_all()
        stop_postgres(c)
    c.summary["problems"] = problems
    print_summary(c, problems)
    if json_path:
        Path(json_path).write_text(json.dumps(c.summary, indent=1, default=str))
    return 0 if not problems and "error" not in c.summary else 1
