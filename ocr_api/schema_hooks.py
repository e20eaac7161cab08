"""What every operation of the API can answer besides its own outcomes, added to the OpenAPI schema
(drf-spectacular's postprocessing hook), so that the schema is the whole contract: a client
generator, or schemathesis (tests/api/test_schema_contract.py), finds every status documented.

Every error is ``{"success": false, "error": {"code", "message"}}`` (ocr_api.errors):
- 401 without credentials or with a bad token (every operation but the schema's own);
- 403 for staff-only operations, or a session client without its CSRF token;
- 404 for a path naming something that does not exist or is not the caller's, and for a page of a
  list past its end;
- 400 for parameters or a body the operation cannot take;
- 429 over the per-user rate (with ``Retry-After``);
- 503 when Redis (throttle counters, queue, cache) cannot be reached, with ``Retry-After``.
"""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
_TEXT = {
    "400": "the parameters or the body are not what the operation takes",
    "401": "not_authenticated / authentication_failed: no credentials, or a bad token",
    "403": "permission_denied: staff only, or a session without its CSRF token",
    "404": "not_found: nothing there, not the caller's, or a page past the end of a list",
    "429": "throttled: over OCR_THROTTLE_PER_MINUTE; Retry-After says when to retry",
    "503": "unavailable: Redis (throttle counters, queue, cache) is not reachable; retry later",
}


def _error(code: str, existing: dict | None) -> dict:
    if existing:  # the operation's own description of this status: keep it, make sure it is JSON
        existing.setdefault("content", {"application/json": {"schema": ERROR}})
        return existing
    return {"description": _TEXT[code], "content": {"application/json": {"schema": ERROR}}}


def document_errors(result, generator, request, public):
    """Add the statuses every operation may answer (see the module's docstring)."""
    for path, methods in result.get("paths", {}).items():
        if not path.startswith("/ocr/v1/") or path in ("/ocr/v1/schema",):
            continue
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            codes = ["401", "403", "429", "503"]
            if operation.get("parameters") or operation.get("requestBody") or method in ("post", "put", "patch"):
                codes.append("400")
            if "{" in path or any(p.get("name") == "page" for p in operation.get("parameters", [])):
                codes.append("404")
            if path == "/ocr/v1/health":
                codes = ["503"]
            for code in codes:
                responses[code] = _error(code, responses.get(code))
    return result
