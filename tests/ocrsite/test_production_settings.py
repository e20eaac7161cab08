"""ocrsite.settings.production: `check --deploy` is clean with the documented environment; HSTS and
cookies follow the environment; a malformed or missing value stops the process at start-up."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SETTINGS_PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k) "
    "for k in ('DEBUG', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
    "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SECURE_SSL_REDIRECT')}))"
)


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    """The environment docs/running.md documents for production, with throw-away values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OCR_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="ocrsite.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="ocr.example.com",
        DJANGO_HSTS_PRELOAD="true",
        OCR_VAR_DIR=str(tmp_path),
        OCR_STATIC_ROOT=str(tmp_path / "static"),
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_finds_no_security_issue(production_env):
    result = run(["manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"], production_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_finds_no_issue_at_all(production_env):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_is_secure_by_default(production_env):
    del production_env["DJANGO_HSTS_PRELOAD"]
    result = run(["-c", SETTINGS_PROBE], production_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_SSL_REDIRECT": True,
    }


def test_hsts_follows_the_environment(production_env):
    production_env.update(DJANGO_HSTS_SECONDS="600", DJANGO_HSTS_INCLUDE_SUBDOMAINS="no", DJANGO_HSTS_PRELOAD="0")
    values = json.loads(run(["-c", SETTINGS_PROBE], production_env).stdout)
    assert (values["SECURE_HSTS_SECONDS"], values["SECURE_HSTS_INCLUDE_SUBDOMAINS"], values["SECURE_HSTS_PRELOAD"]) == (
        600,
        False,
        False,
    )


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("DJANGO_HSTS_SECONDS", "1y", "DJANGO_HSTS_SECONDS='1y' is not an integer"),
        ("DJANGO_HSTS_PRELOAD", "sure", "DJANGO_HSTS_PRELOAD='sure' is not a boolean"),
        ("DJANGO_SECRET_KEY", "", "DJANGO_SECRET_KEY must be set in production"),
    ],
)
def test_a_bad_or_missing_value_stops_it_at_start(production_env, name, value, message):
    production_env[name] = value
    result = run(["-c", SETTINGS_PROBE], production_env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_health_check_is_not_redirected_to_https(production_env):
    code = (
        "import django; django.setup(); from django.test import Client; "
        "c = Client(HTTP_HOST='ocr.example.com'); "
        "print(c.get('/ocr/v1/jobs').status_code, c.get('/ocr/v1/health').status_code)"
    )
    production_env["OCR_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing there: health answers 503, not 301
    result = run(["-c", code], production_env)
    assert result.stdout.split() == ["301", "503"], result.stderr
