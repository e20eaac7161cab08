"""The OCR task's bookkeeping, with the recognition part faked: claims, conditional finishes,
deleted jobs, timeouts and the recovery sweep."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from engine.batcher import BatchedLine, DeadlineExceeded
from ocr_api import recognition as tasks
from ocr_api.images import image_storage, store
from ocr_api.models import OcrJob
from tests.conftest import png_bytes, render_lines
from workers.presence import INSTANCES_KEY

pytestmark = pytest.mark.django_db


def make_job(owner, text: str = "测试", **fields) -> OcrJob:
    image = png_bytes(render_lines([text]))
    defaults = dict(
        owner=owner,
        image_name=store(image, "PNG"),
        image_sha256="2" * 64,
        image_format="PNG",
        width=100,
        height=50,
        size_bytes=len(image),
        cache_key="k",
    )
    return OcrJob.objects.create(**{**defaults, **fields})


@pytest.fixture
def job(make_user):
    return make_job(make_user())


class FakeBatcher:
    """Answers every line with "ok"; ``during`` runs while the lines are being recognised."""

    def __init__(self, during=None, error: Exception | None = None):
        self.during = during
        self.error = error

    def recognize(self, crops, request_id, timeout=None, deadline=None, hotwords=None):
        if self.during is not None:
            self.during()
        if self.error is not None:
            raise self.error
        return [BatchedLine("ok", 0.9, "fake@000", 1, len(crops), 1) for _ in crops]


def use(monkeypatch, fake: FakeBatcher) -> None:
    monkeypatch.setattr(tasks, "batcher", lambda: fake)


def alive(redis_server, instance: str) -> None:
    redis_server.zadd(INSTANCES_KEY, {instance: time.time()})


def test_a_recognised_job_is_finished_by_its_claim(job, monkeypatch, redis_server):
    use(monkeypatch, FakeBatcher())
    assert tasks.recognize.run(str(job.pk)) == "succeeded"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.SUCCEEDED and job.text_content == "ok" and job.attempts == 1
    assert job.claimed_by == tasks.instance() and job.claim_id
    # The waiting request is woken with the finished row's fields, so it need not read the row.
    sent = json.loads(redis_server.lpop(f"ocr:done:{job.pk}"))
    assert sent["status"] == "succeeded" and sent["lines"] == job.lines and sent["model_label"] == job.model_label
    assert sent["finished_at"] == job.finished_at.isoformat() and sent["time_cost"] == job.time_cost
    # Where the worker's time went, for profiling a slow job.
    timings = job.diagnostics["timings"]
    assert set(timings) == {"claim_ms", "read_ms", "recognize_ms"} and all(v >= 0 for v in timings.values())


def test_an_unexpected_error_ends_the_job_as_failed(job, monkeypatch, redis_server):
    use(monkeypatch, FakeBatcher(error=RuntimeError("onnxruntime fell over")))
    assert tasks.recognize.run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.FAILED and job.error_code == "internal_error"
    assert "RuntimeError" in job.error_message and job.finished_at is not None
    # The waiting request is woken, with the failure.
    sent = json.loads(redis_server.lpop(f"ocr:done:{job.pk}"))
    assert sent["status"] == "failed" and sent["error_code"] == "internal_error"
    assert sent["error_message"] == job.error_message


def test_a_recognition_past_its_deadline_ends_as_timeout(job, monkeypatch, redis_server):
    use(monkeypatch, FakeBatcher(error=DeadlineExceeded(done=3, total=40)))
    assert tasks.recognize.run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.FAILED and job.error_code == "timeout"
    assert job.diagnostics["lines_done"] == 3 and job.diagnostics["lines_total"] == 40


def test_a_finished_job_is_not_run_again(job, monkeypatch):
    OcrJob.objects.filter(pk=job.pk).update(status=OcrJob.Status.SUCCEEDED)
    use(monkeypatch, FakeBatcher(error=RuntimeError("must not run")))
    assert tasks.recognize.run(str(job.pk)) == "skipped"


@pytest.mark.django_db(transaction=True)
def test_a_job_deleted_while_it_is_recognised_stays_deleted(make_user, monkeypatch, redis_server):
    job = make_job(make_user(), "删除中")
    assert image_storage().exists(job.image_name)
    use(monkeypatch, FakeBatcher(during=lambda: OcrJob.objects.filter(pk=job.pk).delete()))
    assert tasks.recognize.run(str(job.pk)) == "deleted"
    assert not OcrJob.objects.filter(pk=job.pk).exists()
    assert not image_storage().exists(job.image_name)
    assert not redis_server.keys("ocr:result:*")  # no text of a deleted image is cached
    # A request still waiting for it wakes up (and answers 404).
    assert redis_server.lpop(f"ocr:done:{job.pk}") == b"1"


@pytest.mark.django_db(transaction=True)
def test_a_job_deleted_while_it_fails_stays_deleted(make_user, monkeypatch):
    job = make_job(make_user())

    def delete():
        OcrJob.objects.filter(pk=job.pk).delete()

    use(monkeypatch, FakeBatcher(during=delete, error=RuntimeError("boom")))
    assert tasks.recognize.run(str(job.pk)) == "deleted"
    assert not OcrJob.objects.filter(pk=job.pk).exists()


def test_a_job_taken_over_keeps_the_result_of_its_new_claim(job, monkeypatch):
    def taken_over():
        OcrJob.objects.filter(pk=job.pk).update(claimed_by="other#1", claim_id="other-claim")

    use(monkeypatch, FakeBatcher(during=taken_over))
    assert tasks.recognize.run(str(job.pk)) == "superseded"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.RUNNING and job.claim_id == "other-claim" and job.text_content == ""


def test_a_job_running_under_a_live_worker_is_not_claimed_again(job, monkeypatch, redis_server):
    OcrJob.objects.filter(pk=job.pk).update(status=OcrJob.Status.RUNNING, claimed_by="w1@host#aaa", attempts=1)
    alive(redis_server, "w1@host#aaa")
    use(monkeypatch, FakeBatcher(error=RuntimeError("must not run")))
    assert tasks.recognize.run(str(job.pk)) == "skipped"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.RUNNING and job.attempts == 1 and job.claimed_by == "w1@host#aaa"


def test_a_job_of_a_dead_incarnation_is_taken_over_even_if_its_name_lives_on(job, monkeypatch, redis_server):
    """A worker restarted under the same name is a new incarnation: the old one's jobs are orphans."""
    OcrJob.objects.filter(pk=job.pk).update(status=OcrJob.Status.RUNNING, claimed_by="w1@host#old", attempts=1)
    alive(redis_server, "w1@host#new")
    use(monkeypatch, FakeBatcher())
    assert tasks.recognize.run(str(job.pk)) == "succeeded"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.SUCCEEDED and job.attempts == 2 and job.claimed_by == tasks.instance()


@pytest.fixture
def sent(monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr(tasks.recognize, "apply_async", lambda args: sent.append(args[0]))
    return sent


def test_the_sweep_sends_again_the_jobs_of_dead_workers_only(make_user, redis_server, sent, settings):
    owner = make_user()
    long_ago = timezone.now() - timedelta(seconds=settings.OCR_WORKER_HEARTBEAT_TTL_S + 5)
    dead = make_job(owner, "甲")
    live = make_job(owner, "乙")
    fresh = make_job(owner, "丙")
    running = OcrJob.objects.filter(pk__in=[dead.pk, live.pk])
    running.update(status=OcrJob.Status.RUNNING, started_at=long_ago, attempts=1)
    OcrJob.objects.filter(pk=dead.pk).update(claimed_by="gone@host#1")
    OcrJob.objects.filter(pk=live.pk).update(claimed_by="here@host#2")
    # Just claimed by a worker whose first heartbeat may still be on its way.
    OcrJob.objects.filter(pk=fresh.pk).update(
        status=OcrJob.Status.RUNNING, started_at=timezone.now(), claimed_by="new@host#3"
    )
    alive(redis_server, "here@host#2")
    assert tasks.recover_jobs() == {"orphaned": 1, "lost": 0}
    assert sent == [str(dead.pk)]
    dead.refresh_from_db()
    assert dead.status == OcrJob.Status.QUEUED and dead.claimed_by == "" and dead.attempts == 1
    # A second sweep (another worker's) finds nothing more to send.
    assert tasks.recover_jobs() == {"orphaned": 0, "lost": 0}
    assert OcrJob.objects.get(pk=live.pk).status == OcrJob.Status.RUNNING
    assert OcrJob.objects.get(pk=fresh.pk).status == OcrJob.Status.RUNNING


def test_the_sweep_sends_again_jobs_queued_too_long_once_per_period(make_user, sent, settings):
    owner = make_user()
    settings.OCR_REQUEUE_AFTER_S = 60
    lost = make_job(owner, "丢失")
    waiting = make_job(owner, "排队")
    done = make_job(owner, "完成", status=OcrJob.Status.SUCCEEDED)
    old = timezone.now() - timedelta(seconds=120)
    OcrJob.objects.filter(pk__in=[lost.pk, done.pk]).update(queued_at=old)
    assert tasks.recover_jobs() == {"orphaned": 0, "lost": 1}
    assert sent == [str(lost.pk)] and str(waiting.pk) not in sent
    assert tasks.recover_jobs()["lost"] == 0
    # Still queued a period later: sent once more.
    assert tasks.recover_jobs(now=timezone.now() + timedelta(seconds=61))["lost"] == 2


@pytest.mark.django_db(transaction=True)
def test_workers_apply_the_image_retention_once_an_hour_between_them(make_user, settings, redis_server):
    owner = make_user()
    old = make_job(owner, "旧的", status=OcrJob.Status.SUCCEEDED, text_content="旧的")
    OcrJob.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    name = old.image_name
    settings.OCR_IMAGE_RETENTION_DAYS = 0
    assert tasks.purge_expired_images() is None
    settings.OCR_IMAGE_RETENTION_DAYS = 7
    assert tasks.purge_expired_images() == (1, 1)
    old.refresh_from_db()
    assert old.image_name == "" and old.text_content == "旧的"
    assert not image_storage().exists(name)
    # Another worker's sweep within the hour does nothing.
    assert tasks.purge_expired_images() is None
    assert redis_server.ttl(tasks.PURGE_LOCK_KEY) > 3000


def test_sqlite_commits_do_not_wait_for_fsync_in_wal_mode():
    """Three commits per recognised image (row, claim, finish): WAL with synchronous=NORMAL, which
    no crash can corrupt (docs/serving.md)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL


def test_a_finished_task_leaves_no_logged_queries_behind(settings):
    """With DEBUG on, Django logs a connection's queries until a request starts; a worker thread
    has no requests, so each task's queries are forgotten when it ends."""
    from celery.signals import task_postrun
    from django.db import connection

    from ocr_api.recognition import recognize

    settings.DEBUG = True
    OcrJob.objects.count()
    assert len(connection.queries) >= 1
    task_postrun.send(sender=recognize, task_id="t", task=recognize, args=(), kwargs={}, retval=None, state="SUCCESS")
    assert connection.queries == []
