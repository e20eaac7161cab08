"""The OCR task's bookkeeping, with the recognition part faked."""

import pytest

from ocr_api.models import OcrJob
from tests.conftest import png_bytes, render_lines
from workers import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(make_user):
    image = png_bytes(render_lines(["测试"]))
    return OcrJob.objects.create(
        owner=make_user(), image=image, image_sha256="2" * 64, image_format="PNG", width=100, height=50,
        size_bytes=len(image), cache_key="k",
    )


class ExplodingBatcher:
    def recognize(self, *args, **kwargs):
        raise RuntimeError("onnxruntime fell over")


def test_an_unexpected_error_ends_the_job_as_failed(job, monkeypatch, redis_server):
    monkeypatch.setattr(tasks, "batcher", lambda: ExplodingBatcher())
    assert tasks.recognize.run(str(job.pk)) == "failed"
    job.refresh_from_db()
    assert job.status == OcrJob.Status.FAILED and job.error_code == "internal_error"
    assert "RuntimeError" in job.error_message and job.finished_at is not None
    # The waiting request is woken.
    assert redis_server.lpop(f"ocr:done:{job.pk}") == b"1"


def test_a_finished_job_is_not_run_again(job, monkeypatch):
    job.status = OcrJob.Status.SUCCEEDED
    job.save()
    monkeypatch.setattr(tasks, "batcher", lambda: ExplodingBatcher())
    assert tasks.recognize.run(str(job.pk)) == "skipped"


def test_unfinished_jobs_older_than_the_redelivery_timeout_are_queued_again(job, make_user, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    sent = []
    monkeypatch.setattr(tasks.recognize, "apply_async", lambda args: sent.append(args[0]))
    OcrJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=2))
    fresh = OcrJob.objects.create(
        owner=job.owner, image=job.image, image_sha256="3" * 64, image_format="PNG", width=1, height=1,
        size_bytes=1, cache_key="k",
    )
    done = OcrJob.objects.create(
        owner=job.owner, image=job.image, image_sha256="4" * 64, image_format="PNG", width=1, height=1,
        size_bytes=1, cache_key="k", status=OcrJob.Status.SUCCEEDED,
    )
    OcrJob.objects.filter(pk=done.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert tasks.requeue_stale_jobs() == 1
    assert sent == [str(job.pk)] and str(fresh.pk) not in sent
