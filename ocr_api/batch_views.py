"""``POST /ocr/v1/batches``: many images or PDFs in one request, one job each, and
``GET /ocr/v1/batches/<id>``: every item's job (or why it could not become one) and the counts.

Each item goes the way a ``POST /ocr/v1/recognize`` with ``"wait": false`` goes (cache, checks,
queue): a bad item is reported in the batch and the others are queued. An ``Idempotency-Key``
names the batch as it names a job."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from workers.config import redis_client
from workers.presence import live_workers

from . import history, idempotency
from .errors import ApiError, error_response, field_error
from .images import sha256_of
from .models import Batch, OcrJob
from .serializers import (
    Base64TextField,
    ErrorResponseSerializer,
    ErrorSerializer,
    HotwordsField,
    JobSerializer,
    job_payload,
)
from .views import new_upload, read_image_param, submit


class BatchItemSerializer(serializers.Serializer):
    image_base64 = Base64TextField(trim_whitespace=False, min_length=1, help_text="The image or PDF, base64.")
    filename = serializers.CharField(required=False, allow_blank=True, max_length=255)


class BatchRequestSerializer(serializers.Serializer):
    """JSON ``{"images": [{"image_base64", "filename"}, ...], "hotwords": [...]}``, or multipart with
    the files as repeated ``images`` fields (and ``hotwords`` repeated)."""

    images = BatchItemSerializer(many=True, required=False)
    hotwords = HotwordsField(required=False)


class BatchJsonSerializer(serializers.Serializer):
    """The JSON body, as documented."""

    images = serializers.ListField(child=BatchItemSerializer(), min_length=1)
    hotwords = HotwordsField(required=False)


class BatchMultipartSerializer(serializers.Serializer):
    """The multipart body, as documented: the files as repeated ``images`` fields."""

    images = serializers.ListField(child=serializers.FileField(), min_length=1)
    hotwords = HotwordsField(required=False)


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    filename = serializers.CharField()
    job = JobSerializer(required=False, help_text="the item's job (absent when it could not become one)")
    error = ErrorSerializer(required=False, help_text="why the item could not become a job")


class BatchSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["running", "finished"])
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="jobs per status, and refused items")
    items = BatchItemResultSerializer(many=True)
    created_at = serializers.DateTimeField()
    status_url = serializers.CharField()


def batch_payload(batch: Batch) -> dict:
    jobs = {str(j.pk): j for j in OcrJob.objects.filter(batch=batch).select_related("owner")}
    wanted = [item["job_id"] for item in batch.entries if item.get("job_id")]
    if any(pk not in jobs for pk in wanted):  # cache hits whose rows are still queued for writing
        history.drain(redis_client())
        jobs = {str(j.pk): j for j in OcrJob.objects.filter(batch=batch).select_related("owner")}
    items, counts = [], {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "refused": 0}
    for entry in batch.entries:
        item = {"index": entry["index"], "filename": entry["filename"]}
        job = jobs.get(entry.get("job_id") or "")
        if job is not None:
            item["job"] = job_payload(job)
            counts[job.status] += 1
        elif "code" in entry:
            item["error"] = {"code": entry["code"], "message": entry["message"]}
            counts["refused"] += 1
        items.append(item)
    done = counts["queued"] == counts["running"] == 0
    return {
        "batch_id": str(batch.pk),
        "status": "finished" if done else "running",
        "counts": counts,
        "items": items,
        "created_at": batch.created_at.isoformat(),
        "status_url": f"/ocr/v1/batches/{batch.pk}",
    }


def _items(request) -> tuple[list[dict], list[str]]:
    """The request's items as recognise parameters, and its hotwords."""
    files = request.FILES.getlist("images") if hasattr(request, "FILES") else []
    if files:
        words = request.data.getlist("hotwords") if hasattr(request.data, "getlist") else []
        serializer = BatchRequestSerializer(data={"hotwords": words})
        items = [{"image": f, "filename": f.name or ""} for f in files]
    else:
        serializer = BatchRequestSerializer(data=request.data)
        items = None
    if not serializer.is_valid():
        field, message = field_error(serializer.errors)
        raise ApiError("bad_hotwords" if field == "hotwords" else "invalid", message)
    items = items if items is not None else list(serializer.validated_data.get("images") or [])
    if not items:
        raise ApiError("missing_image", "Send the images as images: [{image_base64, filename}] or multipart images.")
    if len(items) > settings.OCR_MAX_BATCH_ITEMS:
        raise ApiError(
            "too_many_items",
            f"The batch has {len(items)} items; the limit is {settings.OCR_MAX_BATCH_ITEMS}.",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return items, list(serializer.validated_data.get("hotwords") or [])


@dataclass
class _Item:
    """One item of a batch as read: its bytes and their sha256, or why it could not be read."""

    index: int
    filename: str
    data: bytes | None = None
    sha: str | None = None
    error: ApiError | None = None

    @classmethod
    def read(cls, index: int, params: dict) -> _Item:
        try:
            data, filename = read_image_param(params)
        except ApiError as exc:
            return cls(index, params.get("filename") or "", error=exc)
        return cls(index, filename, data, sha256_of(data))


class BatchCreateView(APIView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        request={"application/json": BatchJsonSerializer, "multipart/form-data": BatchMultipartSerializer},
        parameters=[idempotency.header_parameter("batch")],
        responses={
            202: BatchSerializer,
            400: OpenApiResponse(ErrorResponseSerializer, description="no items, bad hotwords, bad key"),
            409: OpenApiResponse(ErrorResponseSerializer, description="the key came with another batch"),
            413: OpenApiResponse(ErrorResponseSerializer, description="more than OCR_MAX_BATCH_ITEMS items"),
            503: OpenApiResponse(ErrorResponseSerializer, description="no OCR worker alive: nothing was queued"),
        },
        summary="Send many images or PDFs at once",
    )
    def post(self, request):
        started = time.monotonic()
        items, hotwords = _items(request)
        read = [_Item.read(index, params) for index, params in enumerate(items)]
        key = idempotency.key_of(request)
        batch = Batch(owner=request.user, items=len(items))
        if key is not None:
            prints = "+".join(item.sha or "-" for item in read)
            fingerprint = idempotency.fingerprint(prints, "|".join(item.filename for item in read), hotwords)
            held = idempotency.claim(request.user, key, fingerprint, batch.pk)
            if held is not None:
                return self._replay(request, held, fingerprint)
        client = redis_client()
        if not live_workers(client, settings.OCR_WORKER_HEARTBEAT_TTL_S):
            if key is not None:
                idempotency.release(request.user, key, batch.pk)
            return error_response("unavailable", "No OCR worker is running; please retry shortly.", 503)
        batch.save()
        batch.entries = [self._submit_one(request, client, batch, item, hotwords, started) for item in read]
        batch.save(update_fields=["entries"])
        return Response(batch_payload(batch), status=status.HTTP_202_ACCEPTED)

    def _submit_one(self, request, client, batch: Batch, item: _Item, hotwords, started) -> dict:
        """The batch's record of one item: its job's id, or the error that stopped it."""
        record = {"index": item.index, "filename": item.filename}
        if item.error is not None:
            return {**record, "code": item.error.error_code, "message": item.error.message}
        up = new_upload(item.data, item.filename, hotwords, started, batch_id=batch.pk, sha=item.sha)
        try:
            response = submit(request, client, up)
        except ApiError as exc:
            return {**record, "code": exc.error_code, "message": exc.message}
        if response.status_code >= 400:
            return {**record, **response.data["error"]}
        return {**record, "job_id": str(up.job_id)}

    def _replay(self, request, held, fingerprint: str) -> Response:
        if held.request_sha256 != fingerprint:
            return error_response("idempotency_conflict", "This Idempotency-Key was used for another batch.", 409)
        batch = Batch.objects.filter(pk=held.job_id, owner=request.user).first()
        if batch is None:
            return error_response(
                "idempotency_in_progress", "The first request with this key is still being handled.", 409
            )
        return Response(batch_payload(batch), status=status.HTTP_202_ACCEPTED)


class BatchDetailView(APIView):
    @extend_schema(responses={200: BatchSerializer, 404: ErrorResponseSerializer}, summary="A batch and its jobs")
    def get(self, request, batch_id):
        batches = Batch.objects.all() if request.user.is_staff else Batch.objects.filter(owner=request.user)
        batch = generics.get_object_or_404(batches, pk=batch_id)
        return Response(batch_payload(batch))
