"""``Idempotency-Key`` on a submission (docs/api.md): a client that did not get an answer (a
network error, a timeout) sends the same request again with the same key and gets the job the
first one made, never a second job. The key is claimed by inserting a row under a unique
(owner, key) constraint, so of any number of concurrent requests exactly one makes the job.
What the request asks for (the image's bytes, its name, its hotwords) is its fingerprint: the same
key with another fingerprint is refused with 409. A request that fails before it makes a job gives
its key back, so the client can retry it."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import ApiError
from .models import IdempotencyKey, OcrJob

HEADER = "HTTP_IDEMPOTENCY_KEY"
KEY_PATTERN = r"^[!-~]{1,255}$"  # visible ASCII, no spaces: a UUID, a hash, an order number
_KEY = re.compile(KEY_PATTERN)


def header_parameter(what: str):
    """The ``Idempotency-Key`` header as the schema documents it for a submission of ``what``."""
    from drf_spectacular.utils import OpenApiParameter

    return OpenApiParameter(
        "Idempotency-Key",
        str,
        OpenApiParameter.HEADER,
        pattern=KEY_PATTERN,
        description=f"resubmit safely: the same key with the same request answers with the {what} the first "
        "one made (1-255 visible ASCII characters; kept OCR_IDEMPOTENCY_TTL_H hours)",
    )


def key_of(request) -> str | None:
    """The request's key, or None without one (400 ``bad_idempotency_key`` for a malformed one)."""
    raw = request.META.get(HEADER)
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise ApiError("bad_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters, no spaces.")
    return raw


def fingerprint(image_sha256: str, filename: str, hotwords: list[str]) -> str:
    what = {"image": image_sha256, "filename": filename, "hotwords": sorted(hotwords)}
    return hashlib.sha256(json.dumps(what, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _cutoff():
    return timezone.now() - timedelta(hours=settings.OCR_IDEMPOTENCY_TTL_H)


def claim(owner, key: str, request_sha256: str, job_id) -> IdempotencyKey | None:
    """None when this request now holds ``key`` (its job will be ``job_id``), else the record of the
    request that holds it. An expired key is free again."""
    IdempotencyKey.objects.filter(owner=owner, key=key, created_at__lt=_cutoff()).delete()
    for _ in range(3):
        try:
            with transaction.atomic():
                IdempotencyKey.objects.create(owner=owner, key=key, request_sha256=request_sha256, job_id=job_id)
            return None
        except IntegrityError:
            held = IdempotencyKey.objects.filter(owner=owner, key=key).first()
            if held is not None:  # else it was released in between: try again
                return held
    raise ApiError("idempotency_in_progress", "Another request with this Idempotency-Key is being handled.", 409)


def release(owner, key: str, job_id) -> None:
    """Give the key back: the request that held it ended without making a job."""
    if not OcrJob.objects.filter(pk=job_id).exists():
        IdempotencyKey.objects.filter(owner=owner, key=key, job_id=job_id).delete()


def purge_expired() -> int:
    return IdempotencyKey.objects.filter(created_at__lt=_cutoff()).delete()[0]
