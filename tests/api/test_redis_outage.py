"""While Redis is down the API answers 503 with Retry-After in the usual error envelope, never 500,
and it serves again once Redis is back, without a restart of the web process."""

import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis as redis_lib
from kombu.exceptions import OperationalError

from ocr_api.errors import exception_handler
from tests.conftest import b64

pytestmark = pytest.mark.django_db


class PrivateRedis:
    """A redis-server of this test's own, on a port of its own, that the test can stop and start."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="ocr-outage-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis_lib.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis_lib.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(settings):
    """Point the web side (cache, throttling, result cache, health) at a Redis the test controls."""
    from workers.config import redis_client

    server = PrivateRedis()
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.url}}
    redis_client.cache_clear()
    yield server
    server.stop()
    redis_client.cache_clear()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def client(api_client_for, make_user):
    return api_client_for(make_user("bob"))


def assert_retry_later(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "unavailable" and body["error"]["message"]


def test_requests_get_503_with_retry_after_while_redis_is_down_and_succeed_once_it_is_back(private_redis, client):
    assert client.get("/ocr/v1/jobs").status_code == 200
    private_redis.stop()
    assert_retry_later(client.get("/ocr/v1/jobs"))  # the throttle counter lives in Redis
    private_redis.start()
    assert client.get("/ocr/v1/jobs").status_code == 200


def test_recognize_gets_503_when_redis_is_down_even_without_throttling(private_redis, client, settings, invoice_png):
    settings.OCR_THROTTLE_PER_MINUTE = 0  # so the first Redis call is the result cache lookup
    private_redis.stop()
    assert_retry_later(client.post("/ocr/v1/recognize", {"image_base64": b64(invoice_png)}, format="json"))


@pytest.mark.parametrize(
    "exc", [redis_lib.ConnectionError("refused"), redis_lib.TimeoutError("timed out"), OperationalError("broker down")]
)
def test_every_redis_or_broker_failure_maps_to_503_with_retry_after(exc):
    response = exception_handler(exc, {})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.data == {
        "success": False,
        "error": {"code": "unavailable", "message": "The queue is not reachable right now; please retry shortly."},
    }
