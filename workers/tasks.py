"""Celery tasks of the OCR queue. Tasks take a job id, re-read the row, and are safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from ocr_api.models import OcrJob

from .cache import cache_key, preprocessing_signature
from .decode import ImageError
from .pipeline import recognize_bytes
from .presence import Heartbeat, notify_done
from .runtime import batcher, image_limits, model_holder, redis_client, result_cache

log = logging.getLogger(__name__)
_heartbeat: Heartbeat | None = None


@shared_task(name="workers.tasks.recognize", acks_late=True, reject_on_worker_lost=True)
def recognize(job_id: str) -> str:
    claimed = OcrJob.objects.filter(
        pk=job_id, status__in=[OcrJob.Status.QUEUED, OcrJob.Status.RUNNING]
    ).update(status=OcrJob.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1)
    if claimed != 1:
        log.info("job %s is finished or gone; nothing to do", job_id)
        return "skipped"
    job = OcrJob.objects.get(pk=job_id)
    try:
        outcome = recognize_bytes(
            bytes(job.image), image_limits(), batcher(), request_id=job_id, timeout=settings.OCR_TASK_SOFT_TIME_LIMIT_S
        )
    except ImageError as exc:
        _finish(job, status=OcrJob.Status.FAILED, error_code=exc.code, error_message=exc.message)
        return "failed"
    except SoftTimeLimitExceeded:
        _finish(job, status=OcrJob.Status.FAILED, error_code="timeout",
                error_message="Recognition took longer than the time limit.")
        return "failed"
    except Exception as exc:  # noqa: BLE001 - the job must end, not stay "running" forever
        log.exception("job %s failed", job_id)
        _finish(job, status=OcrJob.Status.FAILED, error_code="internal_error",
                error_message=f"Recognition failed: {type(exc).__name__}.")
        return "failed"
    model_label = outcome.model_label or model_holder().current().label
    finished = timezone.now()
    job.status = OcrJob.Status.SUCCEEDED
    job.lines = outcome.lines
    job.text_content = "\n".join(outcome.text)
    job.model_label = model_label
    if job.model_version is None or job.model_version.label != model_label:
        from ocr_api.models import ModelVersion

        job.model_version = ModelVersion.objects.filter(sha256__startswith=model_label.rsplit("@", 1)[-1]).first()
    job.diagnostics = {"batches": outcome.batches}
    job.finished_at = finished
    job.time_cost = round((finished - job.created_at).total_seconds(), 4)
    job.save()
    key = cache_key(job.image_sha256, model_label, preprocessing_signature(settings.OCR_BINARIZE))
    result_cache().set(key, {"lines": outcome.lines, "model_label": model_label, "width": job.width, "height": job.height})
    notify_done(redis_client(), job_id)
    return "succeeded"


def _finish(job: OcrJob, *, status: str, error_code: str = "", error_message: str = "") -> None:
    job.status = status
    job.error_code = error_code
    job.error_message = error_message
    job.finished_at = timezone.now()
    job.time_cost = round((job.finished_at - job.created_at).total_seconds(), 4)
    job.save()
    notify_done(redis_client(), str(job.pk))


def requeue_stale_jobs() -> int:
    """Safety net for messages lost outside a worker (the web process died between saving the job
    and queueing it, or Redis lost its data): unfinished jobs older than the redelivery timeout and
    the task time limit are queued again. The claim makes a duplicate harmless."""
    from datetime import timedelta

    age = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] + settings.CELERY_TASK_TIME_LIMIT
    cutoff = timezone.now() - timedelta(seconds=age)
    stale = list(
        OcrJob.objects.filter(
            status__in=[OcrJob.Status.QUEUED, OcrJob.Status.RUNNING], created_at__lt=cutoff
        ).values_list("pk", flat=True)[:1000]
    )
    for job_id in stale:
        recognize.apply_async(args=[str(job_id)])
    if stale:
        log.warning("queued %d stale OCR jobs again", len(stale))
    return len(stale)


def _consumes_ocr_queue(consumer) -> bool:
    queues = consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues
    return "ocr" in queues


@worker_ready.connect
def _warm_up(sender, **kwargs) -> None:
    """Load the model before the first request and start announcing this worker."""
    global _heartbeat
    if not _consumes_ocr_queue(sender):
        return
    model_holder().current()
    batcher()
    requeue_stale_jobs()
    _heartbeat = Heartbeat(redis_client(), sender.hostname, settings.OCR_WORKER_HEARTBEAT_TTL_S)
    _heartbeat.start()


@worker_shutdown.connect
def _stop_heartbeat(**kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
