"""The web server `make run` and the web image start: gunicorn with ocrsite/gunicorn_conf.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ocrsite import gunicorn_conf
from tests.conftest import ROOT, worker_env

SECRET = "0123456789abcdef-not-a-real-token-but-shaped-like-one"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    port = _free_port()
    log = tmp_path / "web.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:ocrsite.gunicorn_conf",
            "ocrsite.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "2",
        ],
        cwd=ROOT,
        env=worker_env(),
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(url + "/ocr/v1/health")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(log.read_text()) from None
            time.sleep(0.2)
    yield url, log
    proc.terminate()
    proc.wait(timeout=30)


def test_it_serves_the_api_and_static_files_and_never_logs_the_token(gunicorn):
    url, log = gunicorn
    status, _ = _get(url + "/ocr/v1/jobs", {"Authorization": f"Token {SECRET}"})
    assert status == 401  # the token is unknown, but it was read
    status, body = _get(url + "/static/frontend/portal.css")
    assert status == 200 and body
    deadline = time.monotonic() + 60  # the access log lines are written after the responses
    while time.monotonic() < deadline and not all(
        line in log.read_text() for line in ('"GET /ocr/v1/jobs HTTP/1.1" 401', "/static/frontend/portal.css")
    ):
        time.sleep(0.1)
    text = log.read_text()
    assert '"GET /ocr/v1/jobs HTTP/1.1" 401' in text
    assert SECRET not in text


@pytest.mark.parametrize("cores,workers", [(None, 2), (1, 2), (2, 2), (3, 3), (16, 4)])
def test_it_runs_one_process_per_core_within_two_and_four(cores, workers):
    assert gunicorn_conf.default_workers(cores) == workers


def test_it_uses_threads_and_logs_no_request_header_but_referer_and_user_agent():
    assert gunicorn_conf.worker_class == "gthread" and gunicorn_conf.threads >= 8
    assert not hasattr(gunicorn_conf, "access_log_format")  # gunicorn's default: %(f)s and %(a)s only
