"""GET /ocr/v1/health: 200 only when Redis, the database, an OCR worker and a model are all there."""

import socket

import pytest
from django.test import Client

URL = "/ocr/v1/health"


def _dead_redis_url() -> str:
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def _checks(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return response.json()["checks"]


def test_it_answers_200_with_every_component_when_an_ocr_worker_is_ready(ocr_worker):
    response = Client().get(URL)  # no token: load balancers don't have one
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"redis", "database", "workers", "model"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["workers"]["live"] == 1
    assert body["checks"]["model"]["active"]  # the worker activated the default model


@pytest.mark.django_db
def test_it_answers_503_naming_the_workers_when_none_is_alive():
    response = Client().get(URL)
    assert response.status_code == 503
    checks = _checks(response)
    assert checks["workers"] == {"ok": False, "live": 0}
    assert checks["redis"]["ok"] and checks["database"]["ok"] and checks["model"]["ok"]
    assert response.json()["status"] == "unavailable"


@pytest.mark.django_db
def test_it_answers_503_when_redis_is_unreachable(settings):
    settings.REDIS_URL = _dead_redis_url()
    response = Client().get(URL)
    assert response.status_code == 503
    checks = _checks(response)
    assert checks["redis"] == {"ok": False, "error": "ConnectionError"}
    assert checks["workers"]["ok"] is False
    assert checks["database"]["ok"]


@pytest.mark.django_db
def test_it_answers_503_when_no_model_file_is_there(settings, tmp_path, ocr_worker_heartbeat):
    settings.OCR_MODELS_DIR = tmp_path
    settings.OCR_DEFAULT_MODEL = ""
    response = Client().get(URL)
    assert response.status_code == 503
    assert _checks(response)["model"]["ok"] is False
    assert _checks(response)["workers"]["ok"] is True


@pytest.mark.django_db
def test_it_answers_503_when_the_database_fails(monkeypatch, ocr_worker_heartbeat):
    from django.db import OperationalError, connection

    def broken_cursor(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = Client().get(URL)
    assert response.status_code == 503
    assert _checks(response)["database"] == {"ok": False, "error": "OperationalError"}


@pytest.mark.django_db
def test_it_answers_get_and_head_only():
    assert Client().head(URL).status_code == 503  # no worker in this test
    assert Client().post(URL).status_code == 405


@pytest.fixture
def ocr_worker_heartbeat(redis_server):
    """A heartbeat without a worker process, for the checks that are about something else."""
    import time

    from workers.presence import WORKERS_KEY

    redis_server.zadd(WORKERS_KEY, {"ghost@test": time.time() + 3600})
