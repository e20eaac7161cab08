"""Celery tasks of the OCR queue (routed by name, ``queues.RECOGNIZE``). Tasks take a job id, re-read the row, and are safe to run twice.

A job moves queued -> running -> succeeded/failed by conditional UPDATEs only:

- The claim takes a queued job, or a running one whose claiming worker incarnation has no
  heartbeat any more; it records that incarnation and a fresh claim token. A job running under
  a live worker is refused, so a redelivered or re-sent message does no harm.
- The finish updates the row only while it is still running under this claim. A job deleted
  meanwhile stays deleted (a full-row save would insert it again), and a job taken over by
  another worker keeps that worker's result.
- Every OCR worker runs a recovery sweep every OCR_RECOVERY_SWEEP_S: running jobs whose
  worker's heartbeat is gone go back to the queue at once, queued jobs whose message seems lost
  (queued longer than OCR_REQUEUE_AFTER_S) are sent again.
- The same thread deletes images past OCR_IMAGE_RETENTION_DAYS about once an hour (one worker of
  all does it, by a Redis lock), so the retention holds without a cron job.
- Recognition has a deadline (OCR_TASK_SOFT_TIME_LIMIT_S from the claim), checked between stages
  and before every batch, because the threads pool does not enforce Celery's time limits.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from functools import lru_cache

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_postrun, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, reset_queries
from django.db.models import F
from django.utils import timezone

from engine.batcher import DeadlineExceeded, LineBatcher
from engine.beam import Hotwords
from engine.cachekey import cache_key
from engine.images import ImageError
from engine.pipeline import recognize_bytes
from workers.cache import ResultCache
from workers.config import image_limits, pipeline_signature, redis_client
from workers.metrics import Metrics, announce_model
from workers.presence import Heartbeat, instance_alive, live_instances, new_instance_name, notify_done
from workers.recycle import Recycler
from workers.runtime import ModelHolder, line_batcher, page_reader

from . import webhooks
from .idempotency import purge_expired as purge_expired_keys
from .images import purge_older_than, read_image
from .models import ModelVersion, OcrJob
from .queues import RECOGNIZE
from .registry import active_model

log = logging.getLogger(__name__)
_heartbeat: Heartbeat | None = None
_sweeper: RecoverySweep | None = None
# This process's incarnation; a worker replaces it with "<celery hostname>#<boot id>" when ready.
_instance = new_instance_name()

Status = OcrJob.Status
PURGE_LOCK_KEY = "ocr:image-purge"
PURGE_EVERY_S = 3600


def instance() -> str:
    return _instance


_worker_name = ""  # the Celery hostname, once the worker is ready
_announced = ""


def _announce(label: str) -> None:
    """Say which model this worker serves (``ocr_worker_model_info``): when it is ready, and when
    its model holder swaps in a promoted one (not per job: a job the old model finishes after the
    swap would name it again)."""
    global _announced
    if _worker_name and label != _announced:
        announce_model(redis_client(), _worker_name, label)
        _announced = label


def active_model_file() -> tuple[str, str]:
    """The registry's active model as the worker's model holder wants it: (label, file path)."""
    close_old_connections()
    version = active_model()
    return version.label, version.file_path


@lru_cache(maxsize=1)
def model_holder() -> ModelHolder:
    # a promoted model is announced (ocr_worker_model_info) when it is loaded, not at the next job:
    # an idle worker's figure would otherwise name the old model until traffic came
    return ModelHolder(
        active_model_file, poll_s=settings.OCR_MODEL_POLL_S, threads=settings.OCR_ORT_THREADS, on_switch=_announce
    )


@lru_cache(maxsize=1)
def batcher() -> LineBatcher:
    return line_batcher(model_holder().current)


def claim_job(job_id: str) -> str | None:
    """Take the job for this process. Returns the claim token, or None when the job is finished,
    gone, or running under a worker that is alive."""
    token = uuid.uuid4().hex
    claim = dict(
        status=Status.RUNNING,
        claimed_by=_instance,
        claim_id=token,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    jobs = OcrJob.objects.filter(pk=job_id)
    if jobs.filter(status=Status.QUEUED).update(**claim) == 1:
        return token
    holder = jobs.filter(status=Status.RUNNING).values_list("claimed_by", flat=True).first()
    if holder is None:
        return None
    if holder and instance_alive(redis_client(), holder, settings.OCR_WORKER_HEARTBEAT_TTL_S):
        return None
    # Its worker is gone: take it over, unless someone else just did.
    return token if jobs.filter(status=Status.RUNNING, claimed_by=holder).update(**claim) == 1 else None


@shared_task(name=RECOGNIZE, acks_late=True, reject_on_worker_lost=True)
def recognize(job_id: str) -> str:
    began = time.perf_counter()
    token = claim_job(job_id)
    if token is None:
        log.info("job %s is finished, gone or running elsewhere; nothing to do", job_id)
        return "skipped"
    job = OcrJob.objects.filter(pk=job_id).first()
    if job is None:
        return "skipped"
    mine = OcrJob.objects.filter(pk=job_id, status=Status.RUNNING, claim_id=token)
    deadline = time.monotonic() + settings.OCR_TASK_SOFT_TIME_LIMIT_S
    timings = {"claim_ms": _ms_since(began)}
    waited = (timezone.now() - job.created_at).total_seconds()
    Metrics(redis_client()).observe("ocr_queue_wait_seconds", max(0.0, waited))
    try:
        data = read_image(job.image_name)
        timings["read_ms"] = _ms_since(began) - timings["claim_ms"]
        outcome = recognize_bytes(
            data,
            image_limits(),
            batcher(),
            request_id=job_id,
            deadline=deadline,
            reader=page_reader(),
            hotwords=Hotwords(job.hotwords) if job.hotwords else None,
            on_page=lambda done, total: mine.update(progress={"pages_done": done, "pages": total}),
        )
    except FileNotFoundError:
        return _fail(mine, job, "image_missing", "The stored image of this job is missing.")
    except ImageError as exc:
        return _fail(mine, job, exc.code, exc.message)
    except (DeadlineExceeded, SoftTimeLimitExceeded) as exc:
        log.warning("job %s stopped at its time limit: %s", job_id, exc)
        return _fail(
            mine,
            job,
            "timeout",
            f"Recognition took longer than the time limit ({settings.OCR_TASK_SOFT_TIME_LIMIT_S:g} s).",
            diagnostics={
                "lines_done": getattr(exc, "done", None),
                "lines_total": getattr(exc, "total", None),
                "stage": getattr(exc, "stage", None),
            },
        )
    except Exception as exc:
        log.exception("job %s failed", job_id)
        return _fail(mine, job, "internal_error", f"Recognition failed: {type(exc).__name__}.")
    timings["recognize_ms"] = _ms_since(began) - timings["claim_ms"] - timings["read_ms"]
    _record(outcome, time.perf_counter() - began)
    return _succeed(mine, job, outcome, timings)


def _record(outcome, seconds: float) -> None:
    """The job's figures: recognition time, lines, lines the cascade re-read, its batches' sizes."""
    label = outcome.model_label  # the model that read the job (re-read lines name the cascade's)
    pipe = redis_client().pipeline(transaction=False)
    metrics = Metrics(pipe)
    metrics.observe("ocr_recognition_seconds", seconds)
    metrics.count("ocr_lines_total", by=len(outcome.lines))
    reread = sum(1 for line in outcome.lines if line.get("model") and line["model"] != label)
    if reread:
        metrics.count("ocr_lines_reread_total", by=reread)
    for batch in outcome.batches:
        metrics.observe("ocr_batch_lines", batch["size"])
    metrics.flush()


def _succeed(mine, job: OcrJob, outcome, timings: dict) -> str:
    """Finish the job under its claim with the recognised lines, then cache the text and wake the
    waiting request (with the result, so it need not read the row again) in one round trip."""
    model_label = outcome.model_label or model_holder().current().label
    model_version = job.model_version_id
    if job.model_label != model_label or model_version is None:
        model_version = _version_id(model_label)
    finished = timezone.now()
    time_cost = round((finished - job.created_at).total_seconds(), 4)
    done = mine.update(
        status=Status.SUCCEEDED,
        lines=outcome.lines,
        tables=outcome.tables,
        text_content="\n".join(outcome.text),
        model_label=model_label,
        model_version_id=model_version,
        diagnostics={"batches": outcome.batches, "timings": timings},
        finished_at=finished,
        time_cost=time_cost,
    )
    if done != 1:
        return _dropped(str(job.pk))
    key = cache_key(job.image_sha256, model_label, pipeline_signature(), job.hotwords)
    pipe = redis_client().pipeline(transaction=False)
    ResultCache(pipe, settings.OCR_CACHE_TTL_S).set(
        key,
        {
            "lines": outcome.lines,
            "tables": outcome.tables,
            "model_label": model_label,
            "width": job.width,
            "height": job.height,
        },
    )
    result = {"status": Status.SUCCEEDED, "lines": outcome.lines, "tables": outcome.tables, "model_label": model_label}
    notify_done(pipe, str(job.pk), {**result, "finished_at": finished.isoformat(), "time_cost": time_cost})
    pipe.execute()
    webhooks.announce([(job.owner_id, job.pk)])
    return "succeeded"


def _ms_since(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 2)


_version_ids: dict[str, int] = {}


def _version_id(label: str) -> int | None:
    """The registry id of the model with this label (name@sha256-prefix), remembered per process."""
    if label not in _version_ids:
        pk = (
            ModelVersion.objects.filter(sha256__startswith=label.rsplit("@", 1)[-1])
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None:
            return None
        _version_ids[label] = pk
    return _version_ids[label]


def _fail(mine, job: OcrJob, code: str, message: str, diagnostics: dict | None = None) -> str:
    Metrics(redis_client()).count("ocr_job_failures_total", {"code": code})
    finished = timezone.now()
    done = mine.update(
        status=Status.FAILED,
        error_code=code,
        error_message=message,
        finished_at=finished,
        time_cost=round((finished - job.created_at).total_seconds(), 4),
        diagnostics=diagnostics or {},
    )
    if done != 1:
        return _dropped(str(job.pk))
    notify_done(
        redis_client(),
        str(job.pk),
        {
            "status": Status.FAILED,
            "error_code": code,
            "error_message": message,
            "finished_at": finished.isoformat(),
            "time_cost": round((finished - job.created_at).total_seconds(), 4),
        },
    )
    webhooks.announce([(job.owner_id, job.pk)])
    return "failed"


@shared_task(name=webhooks.DELIVER, acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt at a webhook delivery; a failed one is sent again after its backoff."""
    delay = webhooks.attempt(int(delivery_id))
    if delay is not None:
        webhooks.send([int(delivery_id)], countdown=delay)
        return "retry"
    return "done"


def _dropped(job_id: str) -> str:
    """The row changed under us: deleted (wake a request still waiting for it) or taken over (its new
    worker will answer). Nothing is written: no row, no cached text."""
    if not OcrJob.objects.filter(pk=job_id).exists():
        log.info("job %s was deleted while it ran; its result is dropped", job_id)
        notify_done(redis_client(), job_id)
        return "deleted"
    log.warning("job %s was taken over by another worker; this result is dropped", job_id)
    return "superseded"


# --- recovery ------------------------------------------------------------------------------------
def recover_jobs(now=None) -> dict[str, int]:
    """One sweep: send again the running jobs of dead workers and the queued jobs whose message
    seems lost. Each job is moved by a conditional update first, so of several workers sweeping at
    once only one sends it; the claim makes any other copy harmless."""
    now = now or timezone.now()
    ttl = settings.OCR_WORKER_HEARTBEAT_TTL_S
    alive = live_instances(redis_client(), ttl)
    # A claim younger than one heartbeat period may belong to a worker whose first beat is on its way.
    running = OcrJob.objects.filter(status=Status.RUNNING, started_at__lt=now - timedelta(seconds=ttl))
    orphaned = 0
    for pk, holder in running.exclude(claimed_by__in=alive).values_list("pk", "claimed_by")[:1000]:
        back = OcrJob.objects.filter(pk=pk, status=Status.RUNNING, claimed_by=holder).update(
            status=Status.QUEUED, claimed_by="", claim_id="", queued_at=now
        )
        if back == 1:
            recognize.apply_async(args=[str(pk)])
            orphaned += 1
    lost = 0
    stale = OcrJob.objects.filter(
        status=Status.QUEUED, queued_at__lt=now - timedelta(seconds=settings.OCR_REQUEUE_AFTER_S)
    )
    for pk, queued_at in stale.values_list("pk", "queued_at")[:1000]:
        if OcrJob.objects.filter(pk=pk, status=Status.QUEUED, queued_at=queued_at).update(queued_at=now) == 1:
            recognize.apply_async(args=[str(pk)])
            lost += 1
    if orphaned or lost:
        log.warning("recovery: %d jobs of dead workers and %d jobs queued too long sent again", orphaned, lost)
    return {"orphaned": orphaned, "lost": lost}


def purge_expired_images() -> tuple[int, int] | None:
    """Apply the image retention period, at most once per PURGE_EVERY_S across all workers.
    Returns (jobs cleared, files deleted), or None when it was not this worker's turn."""
    days = settings.OCR_IMAGE_RETENTION_DAYS
    if days <= 0 or not redis_client().set(PURGE_LOCK_KEY, _instance, nx=True, ex=PURGE_EVERY_S):
        return None
    jobs, files = purge_older_than(days)
    if jobs:
        log.info("retention: cleared the image of %d jobs older than %d days, %d files deleted", jobs, days, files)
    return jobs, files


class RecoverySweep:
    """Runs recover_jobs every ``interval`` seconds from a daemon thread."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ocr-recovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            try:
                close_old_connections()
                recover_jobs()
                purge_expired_images()
                purge_expired_keys()
                webhooks.resend_overdue()
            except Exception:
                log.exception("recovery sweep failed")
            if self._stop.wait(self.interval):
                return


def _consumes_ocr_queue(consumer) -> bool:
    queues = consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues
    return "ocr" in queues


@worker_ready.connect
def _warm_up(sender, **kwargs) -> None:
    """Load the model before the first request, start announcing this worker and sweeping for orphans."""
    global _heartbeat, _sweeper, _instance
    if not _consumes_ocr_queue(sender):
        return
    model_holder().current()
    batcher()
    page_reader()
    _instance = new_instance_name(sender.hostname)
    global _worker_name
    _worker_name = sender.hostname
    Metrics(redis_client()).count("ocr_worker_starts_total", {"worker": sender.hostname})
    _announce(model_holder().current().label)
    _heartbeat = Heartbeat(redis_client(), sender.hostname, settings.OCR_WORKER_HEARTBEAT_TTL_S, instance=_instance)
    _heartbeat.start()
    _sweeper = RecoverySweep(settings.OCR_RECOVERY_SWEEP_S)
    _sweeper.start()
    recycler().serving()


@lru_cache(maxsize=1)
def recycler() -> Recycler:
    return Recycler(settings.OCR_WORKER_MAX_TASKS, settings.OCR_WORKER_MAX_RSS_MB)


@task_postrun.connect
def _after_task(sender=None, **kwargs) -> None:
    """Forget the task's queries: with DEBUG on (`make run`'s local settings) Django logs every query
    of a connection until a request starts, and a worker has no requests: 9,000 queries per task
    thread's connection grew the OCR worker by 30 % in a 10-minute soak (docs/running.md, "Memory").
    Then count the task towards recycling."""
    reset_queries()
    if _worker_name and getattr(sender, "name", "") == RECOGNIZE and recycler().task_done():
        Metrics(redis_client()).count("ocr_worker_recycles_total", {"worker": _worker_name})


@worker_shutdown.connect
def _stop_heartbeat(**kwargs) -> None:
    if _sweeper is not None:
        _sweeper.stop()
    if _heartbeat is not None:
        # A recycled worker's replacement already serves under the same name: keep the name announced.
        _heartbeat.stop(keep_name=recycler().recycling)
