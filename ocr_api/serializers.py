from __future__ import annotations

import json

from django.conf import settings
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator, RegexValidator
from django.urls import reverse
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from .models import DistillJob, ModelVersion, OcrJob


def pages_of(lines: list[dict]) -> list[dict]:
    """A PDF's text page by page ({"page", "text"}), from the page number every line of it carries;
    empty for an image."""
    pages: dict[int, list[str]] = {}
    for line in lines:
        if "page" in line:
            pages.setdefault(int(line["page"]), []).append(line["text"])
    return [{"page": n, "text": text} for n, text in sorted(pages.items())]


def job_payload(job: OcrJob) -> dict:
    """The one representation of a job, used by every endpoint that returns one."""
    finished = job.is_finished
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    pages = pages_of(job.lines) if finished else []
    return {
        **({"pages": pages} if pages else {}),
        **({"progress": job.progress} if job.progress else {}),
        **({"tables": job.tables} if finished and job.tables else {}),
        **({"batch_id": str(job.batch_id)} if job.batch_id else {}),
        "success": job.status == OcrJob.Status.SUCCEEDED,
        "job_id": str(job.id),
        "status": job.status,
        "text": [line["text"] for line in job.lines] if finished else [],
        "lines": job.lines if finished else [],
        "time_cost": job.time_cost,
        "model_version": job.model_label,
        "cached": job.cached,
        "hotwords": list(job.hotwords or []),
        "filename": job.filename,
        "width": job.width,
        "height": job.height,
        "owner": job.owner.get_username(),
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "status_url": reverse("ocr_api:job-detail", args=[job.id]),
        "image_url": reverse("ocr_api:job-image", args=[job.id]) if job.image_name else None,
        "error": error,
    }


class Base64TextField(serializers.CharField):
    """A string of base64 text. DRF's character checks (NUL, surrogates) walk the string in Python,
    about 1.5 ms per 10 kB here; base64 decoding refuses any such character anyway, in C."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.validators = [
            v
            for v in self.validators
            if not isinstance(v, (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator))
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):  # a number is not base64 text, whatever str() would make of it
            self.fail("invalid")
        return super().to_internal_value(data)


def clean_hotwords(words: list[str]) -> list[str]:
    """Words with their spaces collapsed, empty ones dropped, each once, in the order given."""
    seen: dict[str, None] = {}
    for word in words:
        word = " ".join(str(word).split())
        if word:
            seen.setdefault(word, None)
    return list(seen)


def _json_list_in_one_field(data):
    """A multipart or form client may send the whole list as one JSON field (``hotwords='["a", "b"]'``):
    read it as that list rather than as one word spelled with brackets."""
    if isinstance(data, (list, tuple)) and len(data) == 1 and isinstance(data[0], str):
        text = data[0].strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                return data
            if isinstance(parsed, list):
                return parsed
    return data


class StrictCharField(serializers.CharField):
    """A string that must be sent as one: a number or a boolean is refused, not turned into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class HotwordsField(serializers.ListField):
    """A list of words or phrases the decoder favours: at most OCR_MAX_HOTWORDS, each at most
    OCR_HOTWORD_MAX_CHARS characters (the request's and the portal vocabulary's limits)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "help_text", "Words or phrases to favour while decoding (company names, product codes, field labels)."
        )
        child = StrictCharField(
            allow_blank=True,
            trim_whitespace=True,
            max_length=settings.OCR_HOTWORD_MAX_CHARS,
            validators=[RegexValidator(r"^[^\x00]*$", "NUL characters are not allowed.")],
        )
        kwargs.setdefault("max_length", settings.OCR_MAX_HOTWORDS)
        super().__init__(child=child, **kwargs)
        # the limits are in the schema (maxItems, maxLength); they are checked after cleaning, below,
        # where repeats and runs of spaces no longer count and the message says which limit
        self.validators = [v for v in self.validators if not isinstance(v, MaxLengthValidator)]
        child.validators = [v for v in child.validators if not isinstance(v, MaxLengthValidator)]

    def to_internal_value(self, data):
        data = _json_list_in_one_field(data)
        words = clean_hotwords(super().to_internal_value(data))
        if len(words) > settings.OCR_MAX_HOTWORDS:
            raise serializers.ValidationError(
                f"{len(words)} hotwords; the limit is {settings.OCR_MAX_HOTWORDS}.", code="too_many"
            )
        long = [w for w in words if len(w) > settings.OCR_HOTWORD_MAX_CHARS]
        if long:
            raise serializers.ValidationError(
                f"{long[0][:20]!r}... is longer than {settings.OCR_HOTWORD_MAX_CHARS} characters.", code="too_long"
            )
        return words


class RecognizeRequestSerializer(serializers.Serializer):
    """The body of POST /ocr/v1/recognize (JSON, multipart or form). Sizes are checked against
    the settings when a request arrives; an oversized image is refused before it is decoded."""

    image_base64 = Base64TextField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The image file, base64 (a data: URL is accepted).",
    )
    image = serializers.FileField(required=False, help_text="The image file (multipart).")
    wait = serializers.BooleanField(
        required=False, default=True, help_text="Wait for the result (up to the server's timeout)."
    )
    filename = serializers.CharField(required=False, allow_blank=True, max_length=255)
    hotwords = HotwordsField(required=False)

    def validate_image_base64(self, value: str) -> str:
        # 4 characters per 3 bytes, plus room for a data: prefix and MIME line breaks.
        limit = settings.OCR_MAX_IMAGE_BYTES * 4 // 3 + settings.OCR_MAX_IMAGE_BYTES // 38 + 1024
        if len(value) > limit:
            raise serializers.ValidationError(
                f"The image is larger than the limit of {settings.OCR_MAX_IMAGE_BYTES} bytes.", code="too_large"
            )
        return value

    def validate_image(self, value):
        if value.size > settings.OCR_MAX_IMAGE_BYTES:
            raise serializers.ValidationError(
                f"The image is {value.size} bytes; the limit is {settings.OCR_MAX_IMAGE_BYTES} bytes.", code="too_large"
            )
        return value


class RecognizeJsonSerializer(serializers.Serializer):
    """The JSON body of POST /ocr/v1/recognize, as documented (RecognizeRequestSerializer checks it)."""

    image_base64 = serializers.CharField(
        min_length=1, help_text="The image or PDF file, base64 (a data: URL is accepted)."
    )
    wait = serializers.BooleanField(
        required=False, default=True, help_text="Wait for the result (up to the server's timeout)."
    )
    filename = serializers.CharField(required=False, allow_blank=True, max_length=255)
    hotwords = HotwordsField(required=False)


class RecognizeMultipartSerializer(serializers.Serializer):
    """The multipart body of POST /ocr/v1/recognize, as documented."""

    image = serializers.FileField(help_text="The image or PDF file.")
    wait = serializers.BooleanField(required=False, default=True)
    filename = serializers.CharField(required=False, allow_blank=True, max_length=255)
    hotwords = HotwordsField(required=False)


class CharSerializer(serializers.Serializer):
    text = serializers.CharField()
    confidence = serializers.FloatField()
    box = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=4,
        max_length=4,
        required=False,
        help_text="[x0, y0, x1, y1] of the character in the image (a PDF: its page at 150 dpi), from the "
        "recogniser's time steps that read it",
    )
    polygon = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        min_length=4,
        max_length=4,
        required=False,
        help_text="the character's four corners, on a line that has a polygon",
    )


class LineSerializer(serializers.Serializer):
    text = serializers.CharField()
    confidence = serializers.FloatField()
    box = serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4)
    polygon = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        min_length=4,
        max_length=4,
        required=False,
        help_text="the line's four corners (top-left, top-right, bottom-right, bottom-left as read), "
        "when the detector found it; rotated and photographed lines are not axis-aligned",
    )
    vertical = serializers.BooleanField(required=False, help_text="true for a vertical line, read top to bottom")
    chars = serializers.ListField(
        child=CharSerializer(),
        required=False,
        help_text="the line's characters in order, each with its confidence (0..1): the highest probability "
        "the recogniser gave it; low values mark the characters worth checking",
    )
    model = serializers.CharField(
        required=False,
        help_text="the recogniser that read this line (name@sha256 prefix); a line the served "
        "model doubted and the cascade's stronger model read again names that one",
    )


class CellSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    col = serializers.IntegerField()
    row_span = serializers.IntegerField()
    col_span = serializers.IntegerField()
    bbox = serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4)
    polygon = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()), required=False)
    text = serializers.CharField(allow_blank=True, help_text="the characters read inside the cell; lines apart by \\n")


class TableSerializer(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4)
    rows = serializers.IntegerField()
    cols = serializers.IntegerField()
    page = serializers.IntegerField(required=False, help_text="a PDF's page")
    cells = CellSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobSerializer(serializers.Serializer):
    """Documents job_payload for the OpenAPI schema."""

    success = serializers.BooleanField()
    job_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=OcrJob.Status.choices)
    text = serializers.ListField(child=serializers.CharField())
    lines = LineSerializer(many=True)
    pages = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='a PDF only: [{"page": 1, "text": [lines...]}, ...]; each line also carries its "page"',
    )
    progress = serializers.DictField(
        required=False, help_text='a PDF: {"pages_done": n, "pages": total}, updated as its pages are read'
    )
    batch_id = serializers.UUIDField(required=False, help_text="the batch the job came in (POST /ocr/v1/batches)")
    tables = TableSerializer(many=True, required=False, help_text="the ruled tables found, as cells")
    time_cost = serializers.FloatField(allow_null=True)
    model_version = serializers.CharField()
    cached = serializers.BooleanField()
    hotwords = serializers.ListField(child=serializers.CharField(), help_text="the request's hotwords, as used")
    filename = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.CharField()
    image_url = serializers.CharField(allow_null=True, help_text="null once the image has been deleted")
    error = ErrorSerializer(allow_null=True)

    def to_representation(self, instance):
        return job_payload(instance)


class ErrorResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = ErrorSerializer()


class ModelVersionSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "label",
            "name",
            "kind",
            "sha256",
            "params",
            "size_bytes",
            "metrics",
            "lineage",
            "parent",
            "is_active",
            "created_at",
            "promoted_at",
            "report",
        ]


class DistillJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = DistillJob
        fields = [
            "id",
            "kind",
            "status",
            "params",
            "progress",
            "error_message",
            "checkpoint_path",
            "result_model",
            "cancel_requested",
            "log_tail",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields
