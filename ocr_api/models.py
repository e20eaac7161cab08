import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class OcrJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ocr_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # The uploaded bytes live in file storage (ocr_api.images), once per content; the row names the file.
    # Blank once the retention period has deleted it (the text stays).
    image_name = models.CharField(max_length=200, blank=True, db_index=True)
    image_sha256 = models.CharField(max_length=64, db_index=True)
    image_format = models.CharField(max_length=16)
    filename = models.CharField(max_length=255, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveIntegerField()
    cache_key = models.CharField(max_length=1000)  # ocr:result:<sha256>:<model>:<pipeline and decoder>[:hotwords]
    model_version = models.ForeignKey("ModelVersion", null=True, on_delete=models.SET_NULL, related_name="+")
    model_label = models.CharField(max_length=120, blank=True)
    lines = models.JSONField(default=list, blank=True)
    # ruled tables as cells (engine.tables): [{"bbox", "rows", "cols", "cells": [...], "page"?}]
    tables = models.JSONField(default=list, blank=True)
    # The request's hotwords (words the decoder favours); part of the cache key, kept for a re-queued job.
    hotwords = models.JSONField(default=list, blank=True)
    text_content = models.TextField(blank=True)
    time_cost = models.FloatField(null=True)
    cached = models.BooleanField(default=False)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Who runs it: the worker incarnation ("hostname#instance") and a token of this claim, so that only
    # the claim that holds the job can finish it (ocr_api.recognition).
    claimed_by = models.CharField(max_length=200, blank=True)
    claim_id = models.CharField(max_length=32, blank=True)
    # When the job was last put on the queue (at creation, and again by the recovery sweep).
    queued_at = models.DateTimeField(default=timezone.now)
    diagnostics = models.JSONField(default=dict, blank=True)
    # a PDF being read: {"pages_done": n, "pages": total}, updated by the worker after each page
    progress = models.JSONField(default=dict, blank=True)
    batch = models.ForeignKey("Batch", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"OcrJob {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        STUDENT = "student"
        TEACHER = "teacher"
        REFERENCE = "reference"

    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STUDENT)
    file_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, unique=True)
    params = models.PositiveBigIntegerField(null=True)
    size_bytes = models.PositiveBigIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    lineage = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    # the evaluation report (ocr_api.reports): char accuracy per subset of the frozen suite, ms per line
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model")
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"


class DistillJob(models.Model):
    class Kind(models.TextChoices):
        TEACHER = "teacher"
        DISTILL = "distill"
        ADAPT = "adapt"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    result_model = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    cancel_requested = models.BooleanField(default=False)
    curves_png = models.BinaryField(null=True, blank=True)
    log_tail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"DistillJob {self.pk} {self.kind} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)


class Dataset(models.Model):
    """A labelled line dataset on disk (a folder with labels.tsv): uploaded, or made from corrections."""

    class Source(models.TextChoices):
        UPLOAD = "upload"
        CORRECTIONS = "corrections"
        JOBS = "jobs"

    name = models.CharField(max_length=120)
    source = models.CharField(max_length=16, choices=Source.choices)
    path = models.CharField(max_length=500)
    lines = models.PositiveIntegerField()
    characters_outside_charset = models.JSONField(default=list, blank=True)
    # what was left out (duplicates, lines that could not be cut) and the lines with characters the
    # served model cannot produce (kept: a model with more classes can learn them), each with why
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.lines} lines)"


class LineCorrection(models.Model):
    """A user's fix of one recognised line: the crop and its right text become labelled data."""

    job = models.ForeignKey(OcrJob, on_delete=models.CASCADE, related_name="corrections")
    line_index = models.PositiveIntegerField()
    box = models.JSONField()
    original_text = models.TextField()
    corrected_text = models.TextField()
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["job", "line_index"], name="one_correction_per_line")]


class Vocabulary(models.Model):
    """A user's own words and phrases (company names, product codes, field labels), kept on the server:
    the portal sends them as the hotwords of every upload. Edited through /ocr/v1/vocabulary, which
    checks them as it checks a request's hotwords (ocr_api.serializers.HotwordsField)."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ocr_vocabulary")
    words = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "vocabularies"

    def __str__(self) -> str:
        return f"Vocabulary of {self.owner_id} ({len(self.words)} words)"


class PromotionEvent(models.Model):
    """The audit log of the registry: every promotion, rollback and promotion the gate refused, who,
    when, why, and the reports the decision was made on."""

    class Action(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"
        REFUSED = "refused"  # a promotion the gate stopped (nothing changed)

    action = models.CharField(max_length=16, choices=Action.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    previous = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True)
    overridden = models.BooleanField(default=False)  # promoted although the gate refused it
    gate = models.JSONField(default=dict, blank=True)  # the comparison: both reports and the shortfalls

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} {self.version.label} by {self.user} at {self.created_at:%Y-%m-%d %H:%M}"


class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key`` on a submission, and the job it made: the same key with the
    same request answers with that job (one job, however many times and however concurrently it is
    sent); with another request, 409. Keys expire after OCR_IDEMPOTENCY_TTL_H hours."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_sha256 = models.CharField(max_length=64)  # what the request asked for (ocr_api.idempotency)
    job_id = models.UUIDField()  # no foreign key: a cache hit's job row is written after its answer
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="one_job_per_idempotency_key")]

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key!r} of {self.owner_id} -> {self.job_id}"


class Webhook(models.Model):
    """An API client's callback: when one of its jobs ends, the job object is POSTed to ``url``,
    signed with ``secret`` (ocr_api.webhooks, docs/api.md "Webhooks")."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ocr_webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)  # of ocr_api.webhooks.EVENTS
    secret = models.CharField(max_length=64)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} of {self.owner_id} -> {self.url}"


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one webhook: the body is fixed when the job ends, every
    attempt signs it afresh; the client reads this log through the API."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up: OCR_WEBHOOK_RETRY_FOR_S passed without a 2xx, or the URL was refused

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32)
    job_id = models.UUIDField(db_index=True)
    body = models.TextField()  # the JSON POSTed, the same bytes on every attempt
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} of {self.job_id} to webhook {self.webhook_id} ({self.status})"


class Batch(models.Model):
    """Many images or PDFs sent in one request (POST /ocr/v1/batches): one job each; the items that
    could not become a job are kept with why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ocr_batches")
    items = models.PositiveIntegerField()
    # one per item, in order: {"index", "filename", "job_id"} or {"index", "filename", "code", "message"}
    entries = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Batch {self.id} of {self.owner_id} ({self.items} items)"
