from __future__ import annotations

import base64
import binascii
import io
import re
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import FileResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from PIL import Image
from rest_framework import generics, mixins, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.cachekey import cache_key
from engine.images import ImageError, inspect_image
from workers.config import image_limits, pipeline_signature, redis_client
from workers.metrics import Metrics
from workers.presence import wait_done

from . import history, idempotency, queues
from .errors import ApiError, error_response, field_error
from .images import ensure_stored, image_name, image_storage, sha256_of
from .models import ModelVersion, OcrJob
from .registry import active_model
from .serializers import (
    ErrorResponseSerializer,
    JobSerializer,
    RecognizeJsonSerializer,
    RecognizeMultipartSerializer,
    RecognizeRequestSerializer,
    job_payload,
)

_FORMAT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
}
_ERRORS = {
    400: OpenApiResponse(ErrorResponseSerializer, description="bad base64, not an image, unsupported format"),
    401: OpenApiResponse(ErrorResponseSerializer, description="no or bad token"),
    413: OpenApiResponse(ErrorResponseSerializer, description="too large"),
    429: OpenApiResponse(ErrorResponseSerializer, description="throttled"),
    503: OpenApiResponse(ErrorResponseSerializer, description="no worker or broker answers"),
}


# A failed job as answered to a client that waited for it; the other codes are the image's fault (400).
_FAILURE_STATUS = {
    "timeout": status.HTTP_504_GATEWAY_TIMEOUT,
    "internal_error": status.HTTP_500_INTERNAL_SERVER_ERROR,
    "image_missing": status.HTTP_500_INTERNAL_SERVER_ERROR,
}


def _store_or_forget(job: OcrJob, data: bytes) -> None:
    """The row first, then the file (see ocr_api.images); without its file the job is not kept."""
    try:
        ensure_stored(job.image_name, data)
    except Exception:
        job.delete()
        raise


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # Line breaks and spaces are allowed (MIME base64); strip them only when present.
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("bad_base64", "image_base64 is not valid base64.") from None


# Which error code a bad field of the request gets; the message is the serializer's.
_FIELD_CODES = {"image_base64": "bad_base64", "hotwords": "bad_hotwords"}


def _format_of(data: bytes) -> str:
    """The format named by the image header (no pixel is decoded). Only for bytes known to be a
    valid image, such as those of a cached result."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data)).format or ""
    except Exception:
        return ""


_model_cache: dict[str, tuple[float, str]] = {}


def active_label() -> str:
    """The active model's label, read from the registry at most every OCR_MODEL_POLL_S seconds per
    process (as often as the workers look for a promotion), and at once after a model row changed
    in this process."""
    now = time.monotonic()
    cached = _model_cache.get("active")
    if cached is None or now - cached[0] >= settings.OCR_MODEL_POLL_S:
        cached = _model_cache["active"] = (now, active_model().label)
    return cached[1]


@receiver([post_save, post_delete], sender=ModelVersion)
def _forget_active_label(**kwargs) -> None:
    _model_cache.clear()


@dataclass
class _Upload:
    """One recognise request's image, once read: what the cache and the job are keyed by."""

    data: bytes
    sha: str
    filename: str
    label: str
    key: str
    started: float
    hotwords: list[str] = field(default_factory=list)
    batch_id: uuid.UUID | None = None
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    now: datetime = field(default_factory=timezone.now)


def _apply_outcome(job: OcrJob, outcome: dict) -> None:
    job.status = outcome["status"]
    job.lines = outcome.get("lines") or []
    job.tables = outcome.get("tables") or []
    job.model_label = outcome.get("model_label") or job.model_label
    job.error_code = outcome.get("error_code") or ""
    job.error_message = outcome.get("error_message") or ""
    job.time_cost = outcome.get("time_cost")
    job.finished_at = datetime.fromisoformat(outcome["finished_at"]) if outcome.get("finished_at") else None


def read_image_param(params: dict) -> tuple[bytes, str]:
    """(bytes, file name) of a validated request or batch item: the multipart ``image`` or the
    ``image_base64``, each checked against the size limit."""
    upload = params.get("image")
    name = params.get("filename") or ""
    if upload is not None:
        return upload.read(), name or upload.name or ""
    encoded = params.get("image_base64")
    if not encoded:
        raise ApiError("missing_image", "Send the image as image_base64 (JSON) or as the multipart field image.")
    data = _decode_base64(encoded)
    if len(data) > settings.OCR_MAX_IMAGE_BYTES:
        raise ApiError(
            "too_large",
            f"The image is {len(data)} bytes; the limit is {settings.OCR_MAX_IMAGE_BYTES} bytes.",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if not data:
        raise ApiError("missing_image", "The image is empty.")
    return data, name


def new_upload(
    data: bytes, filename: str, hotwords: list[str], started: float, batch_id=None, sha: str | None = None
) -> _Upload:
    """One image to submit, named for the cache under the served model (``sha``: the bytes' sha256
    when the caller has it already)."""
    label, sha = active_label(), sha or sha256_of(data)
    key = cache_key(sha, label, pipeline_signature(), hotwords)
    return _Upload(
        data=data,
        sha=sha,
        filename=filename[:255],
        label=label,
        key=key,
        started=started,
        hotwords=list(hotwords),
        batch_id=batch_id,
    )


def submit(request, client, up: _Upload) -> Response:
    """One image through the recognise path without waiting (cache, checks, queue): what each
    item of a batch does."""
    return RecognizeView()._submit(request, client, up, wait=False)


class RecognizeView(APIView):
    """POST an image, get its text.

    A cache hit costs the hash of the bytes and one Redis call, which also queues the history row
    (``ocr_api.history``: written after the answer). A miss is checked fully (decoded), stored, put
    on the queue, and waited for on the job's Redis list.
    """

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def _params(self, request) -> dict:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE + settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            raise ApiError("too_large", "The request body is too large.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        serializer = RecognizeRequestSerializer(data=request.data)
        if not serializer.is_valid():
            field, message = field_error(serializer.errors)
            problems = serializer.errors[field]
            if isinstance(problems, list) and any(getattr(p, "code", None) == "too_large" for p in problems):
                raise ApiError("too_large", message, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
            raise ApiError(_FIELD_CODES.get(field, "invalid"), message)
        return serializer.validated_data

    def _read_image(self, params: dict) -> tuple[bytes, str]:
        return read_image_param(params)

    @extend_schema(
        request={"application/json": RecognizeJsonSerializer, "multipart/form-data": RecognizeMultipartSerializer},
        parameters=[idempotency.header_parameter("job")],
        responses={
            200: JobSerializer,
            202: JobSerializer,
            **_ERRORS,
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description="idempotency_conflict: the key came with another request; idempotency_in_progress",
            ),
        },
        summary="Recognise the text in an image",
        description="Waits up to the server's timeout for the result (200); past it, or with wait=false, "
        "answers 202 with the job's status URL.",
    )
    def post(self, request):
        started = time.monotonic()
        params = self._params(request)
        data, filename = self._read_image(params)
        hotwords = params.get("hotwords") or []
        up = new_upload(data, filename, hotwords, started)
        sha = up.sha
        client = redis_client()
        wait = params.get("wait", True)
        key = idempotency.key_of(request)
        if key is None:
            return self._submit(request, client, up, wait)
        held = idempotency.claim(request.user, key, idempotency.fingerprint(sha, up.filename, hotwords), up.job_id)
        if held is not None:
            return self._replay(request, client, up, held, wait)
        try:
            response = self._submit(request, client, up, wait)
        except Exception:
            idempotency.release(request.user, key, up.job_id)
            raise
        if response.status_code >= 400:
            idempotency.release(request.user, key, up.job_id)
        return response

    def _submit(self, request, client, up: _Upload, wait: bool) -> Response:
        answer, live = self._from_cache(request, client, up)
        if answer is not None:
            return answer
        try:
            info = inspect_image(up.data, image_limits())
        except ImageError as exc:
            raise ApiError(exc.code, exc.message, exc.status) from None
        if not live:
            return error_response(
                "unavailable", "No OCR worker is running; please retry shortly.", status.HTTP_503_SERVICE_UNAVAILABLE
            )
        return self._queue_and_wait(request, client, up, info, wait=wait)

    def _replay(self, request, client, up: _Upload, held, wait: bool) -> Response:
        """The answer to a request whose Idempotency-Key an earlier one holds: that request's job
        (waited for like a first submission), or 409 when the key came with another request."""
        if held.request_sha256 != idempotency.fingerprint(up.sha, up.filename, up.hotwords):
            return error_response(
                "idempotency_conflict",
                "This Idempotency-Key was used for another request (another image, name or hotwords).",
                status.HTTP_409_CONFLICT,
            )
        until = up.started + min(5.0, settings.OCR_SYNC_TIMEOUT_S)
        job = OcrJob.objects.filter(pk=held.job_id, owner=request.user).first()
        while job is None and time.monotonic() < until:  # the first request is still making its row
            time.sleep(0.05)
            job = OcrJob.objects.filter(pk=held.job_id, owner=request.user).first()
        if job is None:
            return error_response(
                "idempotency_in_progress",
                "The first request with this Idempotency-Key is still being handled; retry shortly.",
                status.HTTP_409_CONFLICT,
                headers={"Retry-After": "1"},
            )
        return self._finish(client, job, wait, up.started)

    def _from_cache(self, request, client, up: _Upload) -> tuple[Response | None, int]:
        """(the answer of a cache hit, or None; how many OCR workers are alive). One Redis call, which
        also queues a hit's history row."""
        image_format = _format_of(up.data)
        record = history.hit_record(
            job_id=up.job_id,
            owner_id=request.user.pk,
            created_at=up.now,
            image_name=image_name(up.sha, image_format),
            sha256=up.sha,
            image_format=image_format,
            filename=up.filename,
            size_bytes=len(up.data),
            width=0,
            height=0,
            cache_key=up.key,
            model_label=up.label,
            time_cost=round(time.monotonic() - up.started, 4),
            hotwords=up.hotwords,
            batch_id=up.batch_id,
        )
        hit, live = history.lookup_and_record(client, up.key, record, settings.OCR_WORKER_HEARTBEAT_TTL_S)
        Metrics(client).count("ocr_cache_total", {"result": "miss" if hit is None else "hit"})
        if hit is None:
            return None, live
        job = OcrJob(
            id=up.job_id,
            owner=request.user,
            status=OcrJob.Status.SUCCEEDED,
            cached=True,
            image_name=record["image_name"],
            image_sha256=up.sha,
            image_format=image_format,
            filename=up.filename,
            width=hit.get("width") or 0,
            height=hit.get("height") or 0,
            size_bytes=len(up.data),
            cache_key=up.key,
            model_label=hit.get("model_label") or up.label,
            lines=hit["lines"],
            tables=hit.get("tables") or [],
            created_at=up.now,
            hotwords=up.hotwords,
            batch_id=up.batch_id,
            finished_at=up.now,
            time_cost=record["cost"],
        )
        return Response(job_payload(job), status=status.HTTP_200_OK), live

    def _queue_and_wait(self, request, client, up: _Upload, info, wait: bool) -> Response:
        """Row, file, task; then wait on the job's Redis list up to OCR_SYNC_TIMEOUT_S (200), else 202."""
        job = OcrJob.objects.create(
            id=up.job_id,
            owner=request.user,
            image_name=image_name(up.sha, info.format),
            image_sha256=up.sha,
            image_format=info.format,
            filename=up.filename,
            width=info.width,
            height=info.height,
            size_bytes=len(up.data),
            cache_key=up.key,
            hotwords=up.hotwords,
            batch_id=up.batch_id,
            model_label=up.label,  # the worker records the version that actually ran
        )
        _store_or_forget(job, up.data)
        try:
            queues.send(queues.RECOGNIZE, job.id)
        except Exception:
            job.delete()
            raise
        return self._finish(client, job, wait, up.started)

    def _finish(self, client, job: OcrJob, wait: bool, started: float, replayed: bool = False) -> Response:
        """Wait up to OCR_SYNC_TIMEOUT_S from ``started`` (200), else 202: on the job's Redis list,
        or, for a replayed request (the first one waits on that list), by reading the row."""
        remaining = settings.OCR_SYNC_TIMEOUT_S - (time.monotonic() - started)
        if wait and remaining > 0 and not job.is_finished:
            if replayed:
                outcome = _poll_row(job, started + settings.OCR_SYNC_TIMEOUT_S)
            else:
                outcome = wait_done(client, str(job.id), remaining)
            if isinstance(outcome, dict):  # the finished row's fields, sent by the worker
                _apply_outcome(job, outcome)
            else:
                try:
                    job.refresh_from_db()
                except OcrJob.DoesNotExist:
                    return error_response("not_found", "The job was deleted.", status.HTTP_404_NOT_FOUND)
        if not job.is_finished:
            return Response(job_payload(job), status=status.HTTP_202_ACCEPTED)
        if job.status == OcrJob.Status.FAILED:
            return error_response(job.error_code, job.error_message, _FAILURE_STATUS.get(job.error_code, 400))
        return Response(job_payload(job), status=status.HTTP_200_OK)


def _poll_row(job: OcrJob, until: float) -> None:
    """Read the job's row every 0.1 s until it is finished, deleted or ``until`` (monotonic)."""
    while time.monotonic() < until:
        row = OcrJob.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        if row is None or row in (OcrJob.Status.SUCCEEDED, OcrJob.Status.FAILED):
            return
        time.sleep(0.1)


class OwnJobsMixin:
    def get_queryset(self):
        from .access import jobs_visible_to

        return jobs_visible_to(self.request.user, OcrJob.objects.select_related("owner"))


@extend_schema(
    parameters=[OpenApiParameter("search", str, description="only jobs whose text contains this")],
    responses={200: JobSerializer(many=True)},
)
class JobListView(OwnJobsMixin, generics.ListAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        qs = super().get_queryset()
        search = self.request.query_params.get("search", "").strip()
        if search:
            qs = qs.filter(text_content__icontains=search)
        return qs.order_by("-created_at")

    @extend_schema(
        operation_id="jobs_destroy_all",
        parameters=[],
        responses={200: inline_serializer("HistoryDeleted", {"deleted": serializers.IntegerField()})},
        summary="Delete your whole history",
        description="Deletes every job of the caller (staff too: only their own), with the stored images "
        "no other job shares. Jobs still running are deleted as well and stay deleted.",
    )
    def delete(self, request):
        own = OcrJob.objects.filter(owner=request.user)
        deleted = 0
        while True:
            ids = list(own.values_list("pk", flat=True)[:500])
            if not ids:
                break
            deleted += OcrJob.objects.filter(pk__in=ids).delete()[1].get(OcrJob._meta.label, 0)
        return Response({"deleted": deleted}, status=status.HTTP_200_OK)


class JobDetailView(OwnJobsMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, generics.GenericAPIView):
    serializer_class = JobSerializer
    lookup_url_kwarg = "job_id"

    def get(self, request, *args, **kwargs):
        return self.retrieve(request, *args, **kwargs)

    def delete(self, request, *args, **kwargs):
        return self.destroy(request, *args, **kwargs)


def download_stem(job: OcrJob) -> str:
    """The uploaded name without its extension, reduced to safe ASCII (the job's id without one)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", job.filename.rsplit(".", 1)[0]).strip("_")[:80] or f"job-{job.pk}"


def _download_name(job: OcrJob) -> str:
    """The uploaded name reduced to safe ASCII, with the extension of the stored format."""
    return f"{download_stem(job)}.{job.image_name.rsplit('.', 1)[-1]}"


class JobImageView(APIView):
    """The uploaded image, to its owner only (staff included: no one else's uploads are served)."""

    @extend_schema(responses={(200, "image/*"): bytes, 404: ErrorResponseSerializer, 410: ErrorResponseSerializer})
    def get(self, request, job_id):
        job = generics.get_object_or_404(OcrJob.objects.filter(owner=request.user), pk=job_id)
        if not job.image_name:
            return error_response(
                "image_deleted",
                "The image was deleted after the retention period; the text is kept.",
                status.HTTP_410_GONE,
            )
        try:
            stream = image_storage().open(job.image_name, "rb")
        except FileNotFoundError:
            return error_response("image_deleted", "The image is no longer stored.", status.HTTP_410_GONE)
        content_type = _FORMAT_TYPES.get(job.image_format)
        response = FileResponse(stream, content_type=content_type or "application/octet-stream")
        # Never rendered as a page: a fixed image type or a download, no sniffing, no scripts.
        response["Content-Disposition"] = content_disposition_header(content_type is None, _download_name(job))
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, max-age=3600"
        return response
