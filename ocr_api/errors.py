"""Every API error has the same shape: {"success": false, "error": {"code", "message"}}."""

from __future__ import annotations

import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from kombu.exceptions import OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    def __init__(self, code: str, message: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message


def error_response(code: str, message: str, status_code: int, headers: dict | None = None) -> Response:
    return Response(
        {"success": False, "error": {"code": code, "message": message}}, status=status_code, headers=headers
    )


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.ValidationError: "invalid",
}


def _message(detail) -> str:
    if isinstance(detail, dict):  # a list's items are keyed by index: say which, counted from 1
        return "; ".join(f"{f'item {k + 1}' if isinstance(k, int) else k}: {_message(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_message(v) for v in detail)
    return str(detail)


def field_error(errors: dict) -> tuple[str, str]:
    """(the first field in a serializer's errors, "field: what is wrong with it")."""
    field, problems = next(iter(errors.items()))
    return field, f"{field}: {_message(problems)}"


# Seconds a client should wait before retrying while Redis (queue, cache, throttle counters) is down.
# A supervised Redis is back within a few seconds of a crash; see docs/reliability.md.
RETRY_AFTER_S = 5
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)


def exception_handler(exc, context):
    if isinstance(exc, _REDIS_DOWN):
        return error_response(
            "unavailable",
            "The queue is not reachable right now; please retry shortly.",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        code, message = exc.error_code, exc.message
    elif isinstance(exc, Http404):
        code, message = "not_found", "Not found."
    elif isinstance(exc, DjangoPermissionDenied):
        code, message = "permission_denied", "You do not have permission to do this."
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
        message = _message(getattr(exc, "detail", str(exc)))
    response.data = {"success": False, "error": {"code": code, "message": message}}
    return response
