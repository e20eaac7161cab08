"""Staff endpoints of the model lifecycle: training jobs, datasets, the registry, promotion."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .access import jobs_visible_to
from .datasets import DatasetError, job_lines_dataset, validate_zip
from .errors import ApiError
from .models import Dataset, DistillJob, LineCorrection, ModelVersion
from .registry import request_report
from .reports import GateRefused, gate, promote_checked, roll_back
from .serializers import DistillJobSerializer, ErrorResponseSerializer, ModelVersionSerializer
from .training import ParamError, cancel_jobs, start_job

StartJobSerializer = inline_serializer(
    "StartDistillJob",
    {
        "kind": serializers.ChoiceField(choices=DistillJob.Kind.choices),
        "params": serializers.DictField(
            required=False, allow_null=True, help_text="the job's parameters; null: defaults"
        ),
    },
)


class DistillJobListCreateView(generics.ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = DistillJobSerializer
    queryset = DistillJob.objects.all()

    @extend_schema(request=StartJobSerializer, responses={201: DistillJobSerializer})
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            job = start_job(DistillJob(kind=data.get("kind"), params=data.get("params")), request.user)
        except ParamError as exc:
            raise ApiError("invalid", str(exc)) from None
        return Response(DistillJobSerializer(job).data, status=status.HTTP_201_CREATED)


class DistillJobDetailView(generics.RetrieveAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = DistillJobSerializer
    queryset = DistillJob.objects.all()

    def get_object(self):
        from .tasks import reap_stale_jobs

        reap_stale_jobs()
        return super().get_object()


class DistillJobCancelView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={
            202: DistillJobSerializer,
            409: OpenApiResponse(ErrorResponseSerializer, description="finished: the job already ended"),
        },
    )
    def post(self, request, pk: int):
        job = get_object_or_404(DistillJob, pk=pk)
        if job.is_finished:
            raise ApiError("finished", f"the job already ended ({job.status})", status.HTTP_409_CONFLICT)
        cancel_jobs(DistillJob.objects.filter(pk=pk))
        job.refresh_from_db()
        return Response(DistillJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class DistillJobCurvesView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={(200, "image/png"): bytes})
    def get(self, request, pk: int):
        job = get_object_or_404(DistillJob, pk=pk)
        if not job.curves_png:
            raise ApiError("not_found", "no curves yet", status.HTTP_404_NOT_FOUND)
        return HttpResponse(bytes(job.curves_png), content_type="image/png")


class ModelListView(generics.ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.all()


PROMOTE_REQUEST = inline_serializer(
    "PromoteRequest",
    {"override_reason": serializers.CharField(required=False, help_text="promote past the gate, saying why")},
)
GATE = inline_serializer(
    "GateReport",
    {
        "passes": serializers.BooleanField(),
        "margin": serializers.FloatField(),
        "problem": serializers.CharField(),
        "shortfalls": serializers.ListField(child=serializers.DictField()),
        "comparison": serializers.DictField(),
        "candidate": serializers.DictField(),
        "active": serializers.DictField(allow_null=True),
    },
)


def _reason(request) -> str:
    value = request.data.get("override_reason", "") if hasattr(request.data, "get") else ""
    if not isinstance(value, str):
        raise ApiError("invalid", "override_reason must be a string")
    return value


class ModelPromoteView(APIView):
    """Promote a model if its report reads no worse than the active model's (docs/lifecycle.md);
    409 ``gate_failed`` with the comparison otherwise, unless ``override_reason`` says why."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=PROMOTE_REQUEST, responses={200: ModelVersionSerializer, 409: ErrorResponseSerializer})
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            promote_checked(version, request.user, _reason(request))
        except GateRefused as refused:
            body = {"success": False, "error": {"code": "gate_failed", "message": _refusal(refused.result)}}
            return Response({**body, "gate": refused.result}, status=status.HTTP_409_CONFLICT)
        version.refresh_from_db()
        return Response(ModelVersionSerializer(version).data)


def _refusal(result: dict) -> str:
    if result["problem"]:
        return f"{result['problem']}; promote with an override_reason to go past the gate"
    worse = ", ".join(f"{s['subset']} {s['delta']:+.2f}" for s in result["shortfalls"])
    return (
        f"the candidate reads worse than the active model by more than {result['margin']:g} points "
        f"({worse}); promote with an override_reason to go past the gate"
    )


class ModelReportView(APIView):
    """A model's evaluation report beside the active model's, and what the gate would say."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: GATE})
    def get(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        active = ModelVersion.objects.filter(is_active=True).first()
        return Response(gate(version, active).as_dict(version, active))


class ModelEvaluateView(APIView):
    """Ask for the model's report again (the training queue computes it)."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={202: ModelVersionSerializer, 503: ErrorResponseSerializer})
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        if not request_report(version.pk):
            raise ApiError("unavailable", "the training queue cannot be reached", status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)


class ModelRollbackView(APIView):
    """Promote again the version that was active before the current one (no gate; logged)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=PROMOTE_REQUEST,
        responses={
            200: ModelVersionSerializer,
            409: OpenApiResponse(
                ErrorResponseSerializer, description="nothing_to_roll_back: no earlier promoted version"
            ),
        },
    )
    def post(self, request):
        previous = (
            ModelVersion.objects.filter(is_active=False, promoted_at__isnull=False).order_by("-promoted_at").first()
        )
        if previous is None:
            raise ApiError("nothing_to_roll_back", "no earlier promoted version", status.HTTP_409_CONFLICT)
        roll_back(previous, request.user, _reason(request))
        previous.refresh_from_db()
        return Response(ModelVersionSerializer(previous).data)


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "source", "lines", "characters_outside_charset", "report", "created_at"]


class DatasetListCreateView(generics.ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = DatasetSerializer
    queryset = Dataset.objects.all()
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "DatasetUpload", {"file": serializers.FileField(), "name": serializers.CharField(required=False)}
            )
        },
        responses={201: DatasetSerializer},
    )
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("missing_file", "send the zip in the multipart field file")
        if upload.size > settings.OCR_MAX_DATASET_BYTES:
            raise ApiError("too_large", "the dataset zip is too large", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        try:
            checked = validate_zip(upload.read())
        except DatasetError as exc:
            raise ApiError("invalid_dataset", str(exc)) from None
        dataset = Dataset.objects.create(
            name=str(request.data.get("name") or upload.name)[:120],
            source=Dataset.Source.UPLOAD,
            path=str(checked.path),
            lines=checked.lines,
            characters_outside_charset=checked.characters_outside_charset,
            report=checked.report,
            created_by=request.user,
        )
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetFromJobsView(APIView):
    """Staff choose recognised lines of finished jobs (anyone's); they become a dataset, each line
    with its text as the job holds it (corrections included). What could not be used is reported
    in the dataset's ``report``, nothing is dropped silently."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=inline_serializer(
            "DatasetFromJobs",
            {
                "name": serializers.CharField(required=False),
                "lines": serializers.ListField(
                    child=inline_serializer(
                        "JobLinePick", {"job": serializers.UUIDField(), "line": serializers.IntegerField(min_value=0)}
                    )
                ),
            },
        ),
        responses={201: DatasetSerializer, 400: ErrorResponseSerializer},
    )
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        try:
            dataset = job_lines_dataset(str(data.get("name") or ""), data.get("lines"), request.user)
        except DatasetError as exc:
            raise ApiError("invalid_dataset", str(exc)) from None
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class LineCorrectionView(APIView):
    """A user fixes one recognised line of their own job; fixed lines become labelled data."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("LineCorrection", {"text": serializers.CharField()}),
        responses={
            200: inline_serializer(
                "LineCorrected",
                {
                    "line": serializers.IntegerField(),
                    "text": serializers.CharField(),
                    "original_text": serializers.CharField(),
                },
            )
        },
    )
    def put(self, request, job_id, line: int):
        job = get_object_or_404(jobs_visible_to(request.user), pk=job_id)
        if line >= len(job.lines):
            raise ApiError("not_found", f"the job has {len(job.lines)} lines", status.HTTP_404_NOT_FOUND)
        text = request.data.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > 500:
            raise ApiError("invalid", "text must be a non-empty string of at most 500 characters")
        text = text.strip()
        original = job.lines[line].get("original_text", job.lines[line]["text"])
        with transaction.atomic():
            LineCorrection.objects.update_or_create(
                job=job,
                line_index=line,
                defaults={
                    "box": job.lines[line]["box"],
                    "original_text": original,
                    "corrected_text": text,
                    "corrected_by": request.user,
                },
            )
            lines = list(job.lines)
            # the recogniser's per-character confidences described the old text
            kept = {k: v for k, v in lines[line].items() if k != "chars"}
            lines[line] = {**kept, "text": text, "original_text": original, "corrected": True}
            job.lines = lines
            job.text_content = "\n".join(item["text"] for item in lines)
            job.save(update_fields=["lines", "text_content"])
        return Response({"line": line, "text": text, "original_text": original})
