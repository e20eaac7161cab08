from __future__ import annotations

import base64
import binascii
import hashlib
import time

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from workers.cache import cache_key, preprocessing_signature
from workers.decode import ImageError, inspect_image
from workers.presence import live_workers, wait_done
from workers.runtime import image_limits, redis_client, result_cache

from .errors import ApiError, error_response
from .models import OcrJob
from .registry import active_model
from .serializers import ErrorResponseSerializer, JobSerializer, RecognizeRequestSerializer, job_payload

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


def _truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "no", "off")


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    text = "".join(text.split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("bad_base64", "image_base64 is not valid base64.") from None


class RecognizeView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def _read_image(self, request) -> tuple[bytes, str]:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE + settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            raise ApiError("too_large", "The request body is too large.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        upload = request.FILES.get("image")
        name = str(request.data.get("filename") or "")
        if upload is not None:
            if upload.size > settings.OCR_MAX_IMAGE_BYTES:
                raise ApiError(
                    "too_large",
                    f"The image is {upload.size} bytes; the limit is {settings.OCR_MAX_IMAGE_BYTES} bytes.",
                    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                )
            return upload.read(), name or upload.name or ""
        encoded = request.data.get("image_base64")
        if not encoded:
            raise ApiError("missing_image", "Send the image as image_base64 (JSON) or as the multipart field image.")
        if not isinstance(encoded, str):
            raise ApiError("bad_base64", "image_base64 must be a string.")
        return _decode_base64(encoded), name

    @extend_schema(
        request=RecognizeRequestSerializer,
        responses={200: JobSerializer, 202: JobSerializer, **_ERRORS},
        summary="Recognise the text in an image",
        description="Waits up to the server's timeout for the result (200); past it, or with wait=false, "
        "answers 202 with the job's status URL.",
    )
    def post(self, request):
        started = time.monotonic()
        data, filename = self._read_image(request)
        try:
            info = inspect_image(data, image_limits())
        except ImageError as exc:
            raise ApiError(exc.code, exc.message, exc.status) from None
        model = active_model()
        sha = hashlib.sha256(data).hexdigest()
        key = cache_key(sha, model.label, preprocessing_signature(settings.OCR_BINARIZE))
        common = dict(
            owner=request.user,
            image=data,
            image_sha256=sha,
            image_format=info.format,
            filename=filename[:255],
            width=info.width,
            height=info.height,
            size_bytes=len(data),
            cache_key=key,
            model_version=model,
            model_label=model.label,
        )
        hit = result_cache().get(key)
        if hit is not None:
            job = OcrJob.objects.create(
                **common,
                status=OcrJob.Status.SUCCEEDED,
                cached=True,
                lines=hit["lines"],
                text_content="\n".join(line["text"] for line in hit["lines"]),
            )
            job.finished_at = job.created_at
            job.time_cost = round(time.monotonic() - started, 4)
            job.save(update_fields=["finished_at", "time_cost"])
            return Response(job_payload(job), status=status.HTTP_200_OK)

        client = redis_client()
        if not live_workers(client, settings.OCR_WORKER_HEARTBEAT_TTL_S):
            return error_response(
                "unavailable", "No OCR worker is running; please retry shortly.", status.HTTP_503_SERVICE_UNAVAILABLE
            )
        job = OcrJob.objects.create(**common)
        from workers.tasks import recognize

        try:
            recognize.apply_async(args=[str(job.id)], retry=False)
        except Exception:
            job.delete()
            raise
        wait = _truthy(request.data.get("wait", True))
        remaining = settings.OCR_SYNC_TIMEOUT_S - (time.monotonic() - started)
        if wait and remaining > 0:
            wait_done(client, str(job.id), remaining)
            job.refresh_from_db()
        if not job.is_finished:
            return Response(job_payload(job), status=status.HTTP_202_ACCEPTED)
        if job.status == OcrJob.Status.FAILED:
            server_side = job.error_code in ("internal_error", "timeout")
            return error_response(
                job.error_code, job.error_message,
                status.HTTP_500_INTERNAL_SERVER_ERROR if server_side else status.HTTP_400_BAD_REQUEST,
            )
        return Response(job_payload(job), status=status.HTTP_200_OK)


class OwnJobsMixin:
    def get_queryset(self):
        qs = OcrJob.objects.select_related("owner").defer("image")
        user = self.request.user
        return qs if user.is_staff else qs.filter(owner=user)


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


class JobDetailView(OwnJobsMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, generics.GenericAPIView):
    serializer_class = JobSerializer
    lookup_url_kwarg = "job_id"

    def get(self, request, *args, **kwargs):
        return self.retrieve(request, *args, **kwargs)

    def delete(self, request, *args, **kwargs):
        return self.destroy(request, *args, **kwargs)


class JobImageView(OwnJobsMixin, generics.GenericAPIView):
    lookup_url_kwarg = "job_id"

    @extend_schema(responses={(200, "image/*"): bytes})
    def get(self, request, *args, **kwargs):
        job = generics.get_object_or_404(OcrJob.objects.filter(pk__in=self.get_queryset().values("pk")), pk=kwargs["job_id"])
        response = HttpResponse(bytes(job.image), content_type=_FORMAT_TYPES.get(job.image_format, "application/octet-stream"))
        response["Cache-Control"] = "private, max-age=3600"
        return response
