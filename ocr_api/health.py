"""GET /ocr/v1/health: can this web process serve a recognition right now?

For load balancers and `make run`'s readiness wait. No authentication, no throttling
(throttling needs Redis, which is one of the things checked), read-only, and cheap:
one Redis round trip for PING and the worker list, one `SELECT 1`, one indexed row.
200 when every component is fine, 503 otherwise; the body has one entry per component.
Errors name the exception class only: the endpoint is public.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from workers.presence import live_workers

from .models import ModelVersion
from .registry import default_model_path


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    # Short timeouts: a health check that hangs is worse than one that says no.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _failed(exc: Exception) -> dict:
    return {"ok": False, "error": type(exc).__name__}


def check_redis_and_workers() -> tuple[dict, dict]:
    client = _redis(settings.REDIS_URL)
    try:
        client.ping()
        live = live_workers(client, settings.OCR_WORKER_HEARTBEAT_TTL_S)
    except redis.RedisError as exc:
        return _failed(exc), {"ok": False, "live": None, "error": "redis unreachable"}
    return {"ok": True}, {"ok": bool(live), "live": len(live)}


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver's error means the same thing here
        return _failed(exc)
    return {"ok": True}


def check_model() -> dict:
    """The registry's active model, or the default file a worker loads when none is active yet."""
    try:
        active = ModelVersion.objects.filter(is_active=True).only("name", "sha256").first()
    except Exception as exc:
        return _failed(exc)
    if active is not None:
        return {"ok": True, "active": active.label}
    try:
        path = default_model_path()
    except FileNotFoundError:
        return {"ok": False, "active": None, "error": "no model file"}
    return {"ok": path.is_file(), "active": None, "default": path.name}


@never_cache
@require_safe
def health(request):
    redis_status, workers_status = check_redis_and_workers()
    checks = {"redis": redis_status, "database": check_database(), "workers": workers_status, "model": check_model()}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
