"""Shared fixtures: a real Redis server per test run, real Celery OCR workers, users and images."""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


# --- Redis ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server():
    """A private redis-server on the port the test settings chose."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server is not installed: run `make test` (it installs the system packages)", returncode=3)
    port = int(os.environ["OCR_TEST_REDIS_PORT"])
    workdir = tempfile.mkdtemp(prefix="ocr-test-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis_lib.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis_lib.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.exit(f"redis-server did not start on port {port}", returncode=3)
            time.sleep(0.05)
    yield client
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


# Tests of the engine and the training code that touch no database need no Redis either (they pass
# on a machine without redis-server); every other test gets a private, emptied one.
NO_REDIS = (
    "tests/workers/test_ctc.py",
    "tests/workers/test_lm_decoding.py",
    "tests/workers/test_preprocess.py",
    "tests/workers/test_lines.py",
    "tests/workers/test_textforms.py",
    "tests/workers/test_modelpkg.py",
    "tests/workers/test_decode.py",
    "tests/workers/test_decode_fuzz.py",
    "tests/test_layers.py",
    "tests/test_function_length.py",
    "tests/workers/test_line_images.py",
    "tests/workers/test_page_reading.py",
    "tests/workers/test_pdf.py",
    "tests/workers/test_inference.py",
    "tests/workers/test_batcher.py",
    "tests/workers/test_launcher.py",
    "tests/workers/test_model_holder.py",
    "tests/integration/test_cluster.py",
    "tests/distill/",
)


@pytest.fixture(autouse=True)
def _clean_redis(request):
    path = request.node.path.relative_to(Path(__file__).resolve().parent.parent).as_posix()
    if (
        path.startswith(NO_REDIS)
        and "db" not in request.fixturenames
        and "transactional_db" not in request.fixturenames
    ):
        yield
        return
    request.getfixturevalue("redis_server").flushall()
    yield


# --- users and clients ---------------------------------------------------------------------------
@pytest.fixture
def make_user(django_user_model):
    def make(username: str | None = None, password: str = "pw-123456", is_staff: bool = False):
        return django_user_model.objects.create_user(
            username=username or f"user-{uuid.uuid4().hex[:8]}", password=password, is_staff=is_staff
        )

    return make


@pytest.fixture
def api_client_for():
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def client_for(user) -> APIClient:
        token, _ = Token.objects.get_or_create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return client_for


# --- images --------------------------------------------------------------------------------------
def render_lines(lines: list[str], size: int = 28, pad: int = 16) -> Image.Image:
    font = ImageFont.truetype(CJK_FONT, size, index=2)  # index 2: the Simplified Chinese face
    widths = [int(font.getlength(t)) for t in lines]
    line_h = int(size * 1.9)
    img = Image.new("RGB", (max(widths) + 2 * pad, line_h * len(lines) + 2 * pad), "white")
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((pad, pad + i * line_h), text, font=font, fill="black")
    return img


def png_bytes(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def invoice_png() -> bytes:
    return png_bytes(render_lines(["购买方名称：上海明远科技有限公司"]))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- real Celery workers ---------------------------------------------------------------------------
@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to acknowledge or give back anything."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def worker_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="ocrsite.settings.test",
        # the test database (on PostgreSQL, the one Django made for the run)
        **(
            {"POSTGRES_DB": settings.DATABASES["default"]["NAME"]}
            if settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
            else {"OCR_SQLITE_PATH": settings.DATABASES["default"]["NAME"]}
        ),
        PYTHONUNBUFFERED="1",
        OCR_ORT_THREADS="1",
    )
    env.update(overrides)
    return env


def start_worker(
    tmp_path: Path, queue: str = "ocr", concurrency: int = 4, pool: str = "threads", launcher: bool = False, **env
) -> WorkerProcess:
    """``launcher``: under workers.launcher, which replaces the worker when it asks to be recycled."""
    name = f"{queue}-{uuid.uuid4().hex[:6]}@test"
    log_path = tmp_path / f"{name}.log"
    proc = subprocess.Popen(
        [
            *([sys.executable, "-m", "workers.launcher"] if launcher else []),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ocrsite",
            "worker",
            "-Q",
            queue,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "-n",
            name,
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=worker_env(**env),
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(name=name, proc=proc, log_path=log_path)


def wait_for_ocr_worker(worker: WorkerProcess, client: redis_lib.Redis, timeout: float = 60) -> None:
    """Ready once it announces itself (after loading its model)."""
    from workers.presence import live_workers

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.name in live_workers(client, settings.OCR_WORKER_HEARTBEAT_TTL_S):
            return
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.log()}")
        time.sleep(0.1)
    raise AssertionError(f"worker not ready in {timeout}s:\n{worker.log()}")


@pytest.fixture
def worker_factory(transactional_db, redis_server, tmp_path):
    started: list[WorkerProcess] = []

    def factory(
        queue: str = "ocr", wait: bool = True, pool: str = "threads", concurrency: int = 4, launcher=False, **env
    ) -> WorkerProcess:
        worker = start_worker(tmp_path, queue=queue, pool=pool, concurrency=concurrency, launcher=launcher, **env)
        started.append(worker)
        if wait and queue == "ocr":
            wait_for_ocr_worker(worker, redis_server)
        return worker

    yield factory
    for worker in started:
        worker.stop()


@pytest.fixture
def ocr_worker(worker_factory):
    return worker_factory()


# --- the whole stack for browser tests -------------------------------------------------------------
@dataclass
class LiveStack:
    url: str
    worker: WorkerProcess

    def create_user(self, username: str, password: str, is_staff: bool = False):
        from django.contrib.auth import get_user_model

        return get_user_model().objects.create_user(username=username, password=password, is_staff=is_staff)


@pytest.fixture
def live_stack(live_server, worker_factory):
    """A live Django server, a real Redis and a real OCR worker, sharing the test database."""
    return LiveStack(url=live_server.url, worker=worker_factory())
