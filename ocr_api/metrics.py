"""The web's side of the operational metrics (workers/metrics.py): every request counted by route,
method and status, the API's request times, and ``GET /metrics`` in Prometheus's text format.

``/metrics`` answers a scraper that sends ``Authorization: Bearer <OCR_METRICS_TOKEN>`` (when that
setting is set) or a staff user (API token or session); anyone else gets 403. The figures are the
whole deployment's, whichever web process answers (they live in Redis).
"""

from __future__ import annotations

import hmac
import time
from functools import lru_cache

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from workers.config import redis_client
from workers.metrics import Metrics, RedisCollector


class RequestMetrics:
    """Middleware: ``ocr_http_requests_total`` for every request, ``ocr_request_seconds`` for the
    API's. The route is the URL pattern (``ocr/v1/jobs/<uuid:job_id>``), never the path itself,
    so the number of series stays bounded."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        pipe = redis_client().pipeline(transaction=False)
        metrics = Metrics(pipe)
        labels = {"route": route, "method": request.method, "status": str(response.status_code)}
        metrics.count("ocr_http_requests_total", labels)
        if route.startswith("ocr/v1/"):
            metrics.observe("ocr_request_seconds", time.perf_counter() - started, {"route": route})
        metrics.flush()
        return response


@lru_cache(maxsize=1)
def _registry():
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(redis_client(), settings.OCR_WORKER_HEARTBEAT_TTL_S))
    return registry


def _allowed(request) -> bool:
    """The metrics token, a staff user's API token, or a staff user's session."""
    token = settings.OCR_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:  # a bad token: not allowed, not an error
        found = None
    user = found[0] if found else request.user  # the session's user (AuthenticationMiddleware)
    return bool(user.is_authenticated and user.is_staff)


@never_cache
@require_safe
def metrics(request):
    if not _allowed(request):
        return JsonResponse(
            {"success": False, "error": {"code": "forbidden", "message": "metrics are for staff or the metrics token"}},
            status=403,
        )
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
