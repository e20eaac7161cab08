"""``GET /ocr/v1/jobs/<id>/export?format=pdf|hocr|alto|txt|json``: a finished job as a document
(``engine.exports``). The searchable PDF holds the uploaded image, so like the image it goes to
the job's owner only; the other formats go wherever the job object goes (staff see all)."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from engine.exports.build import FORMATS, TABLE_FORMATS, export
from engine.pdf import render_page_png

from .access import jobs_visible_to
from .errors import error_response
from .images import read_image
from .models import OcrJob
from .serializers import ErrorResponseSerializer, job_payload
from .views import download_stem

SOFTWARE = "ocr-platform"


def _stored_bytes(job: OcrJob) -> bytes | None:
    """The uploaded file, or None once it is deleted."""
    try:
        return read_image(job.image_name)
    except FileNotFoundError:
        return None


def _error(code: str, message: str):
    return OpenApiResponse(ErrorResponseSerializer, description=f"`{code}`: {message}")


class _JsonErrors(BaseContentNegotiation):
    """``?format=`` names the document here, not one of DRF's renderers (DRF would answer 404 for a
    format it cannot render): errors are JSON, documents are answered as they are."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class JobExportView(APIView):
    content_negotiation_class = _JsonErrors

    @extend_schema(
        summary="A finished job as a document",
        description="`pdf`: the uploaded pages with the recognised text as an invisible, selectable layer "
        "(owner only, like the image); `hocr`: hOCR 1.2; `alto`: ALTO 4.4; `txt`: the lines, pages parted "
        "by a form feed; `json`: the job object; `csv` and `html`: the ruled tables found, as cells. Every "
        "format places each character where it was read.",
        parameters=[
            OpenApiParameter("format", str, enum=list(FORMATS), required=True, description="the document format")
        ],
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            (200, "text/html"): OpenApiTypes.STR,
            (200, "application/xml"): OpenApiTypes.STR,
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            400: _error("bad_format", "no format, or not one of the formats"),
            404: _error("not_found", "no such job, or not yours"),
            409: _error(
                "not_finished", "the job has not succeeded (still running, or failed); `no_tables` for csv/html"
            ),
            410: _error("image_deleted", "a PDF was asked for after the image was deleted"),
        },
    )
    def get(self, request, job_id):
        fmt = request.query_params.get("format", "")
        if fmt not in FORMATS:
            return error_response("bad_format", f"format must be one of: {', '.join(FORMATS)}.", 400)
        jobs = (
            OcrJob.objects.filter(owner=request.user) if fmt == "pdf" else jobs_visible_to(request.user, OcrJob.objects)
        )
        job = generics.get_object_or_404(jobs.select_related("owner"), pk=job_id)
        if job.status != OcrJob.Status.SUCCEEDED:
            return error_response("not_finished", f"The job is {job.status}; only a finished job exports.", 409)
        if fmt in TABLE_FORMATS and not job.tables:
            return error_response("no_tables", "No ruled table was found in this job's image.", 409)
        data = _stored_bytes(job) if fmt == "pdf" or job.image_format == "PDF" else None
        if fmt == "pdf" and data is None:
            return error_response("image_deleted", "The image is no longer stored; the text is kept.", 410)
        content = export(fmt, job_payload(job), data, SOFTWARE)
        content_type, ext = FORMATS[fmt]
        response = HttpResponse(content, content_type=content_type, status=status.HTTP_200_OK)
        response["Content-Disposition"] = content_disposition_header(True, f"{download_stem(job)}.{ext}")
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


class JobPageView(APIView):
    """A page of a job as the job read it, for drawing its lines over: a PDF's page rendered at the
    reading resolution (PNG); an image's page 1 is the image itself. To the owner only, like the image."""

    content_negotiation_class = _JsonErrors

    @extend_schema(
        summary="A page of a job, as an image",
        responses={
            (200, "image/png"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="an image job's page 1: its image_url"),
            404: _error("not_found", "no such job or page, or not yours"),
            410: _error("image_deleted", "the uploaded file was deleted after the retention period"),
        },
    )
    def get(self, request, job_id, page):
        job = generics.get_object_or_404(OcrJob.objects.filter(owner=request.user), pk=job_id)
        if job.image_format != "PDF":
            if page != 1:
                return error_response("not_found", "An image has one page.", 404)
            return HttpResponseRedirect(reverse("ocr_api:job-image", args=[job.pk]))
        data = _stored_bytes(job)
        if data is None:
            return error_response("image_deleted", "The PDF is no longer stored; the text is kept.", 410)
        try:
            png = render_page_png(data, page)
        except IndexError:
            return error_response("not_found", f"The PDF has no page {page}.", 404)
        response = HttpResponse(png, content_type="image/png")
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=3600"
        return response
