"""Training jobs are started and cancelled in one place (ocr_api.training), whether an admin uses
the admin site or the API; who sees which OCR jobs is decided in one place (ocr_api.access)."""

import pytest

from ocr_api.access import jobs_visible_to
from ocr_api.models import DistillJob, OcrJob
from ocr_api.training import ParamError, cancel_jobs, start_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(make_user):
    return make_user("boss", is_staff=True)


def _job(user, status=DistillJob.Status.QUEUED):
    return DistillJob.objects.create(kind="teacher", params={"steps": 5}, created_by=user, status=status)


@pytest.fixture
def queued_calls(monkeypatch):
    from ocr_api import queues

    sent = []
    monkeypatch.setattr(queues, "send", lambda task, job_id: sent.append(job_id))
    return sent


def test_it_starts_a_job_with_checked_parameters_and_queues_it_after_commit(
    admin, queued_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = start_job(DistillJob(kind="distill", params={"steps": 7}), admin)
    job.refresh_from_db()
    assert job.created_by == admin and job.params["steps"] == 7 and job.params["teacher"] == "reference"
    assert queued_calls == [job.pk]


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("nonsense", {}, "kind must be one of"),
        (None, {}, "kind must be one of"),
        ("teacher", ["steps", 5], "params must be an object"),
        ("teacher", {"steps": -1}, "steps must lie in"),
        ("teacher", {"stepz": 5}, "unknown parameters: stepz"),
    ],
)
def test_it_refuses_bad_jobs_before_saving_or_queueing_them(
    admin, queued_calls, kind, params, message, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ParamError, match=message):
        start_job(DistillJob(kind=kind, params=params), admin)
    assert not DistillJob.objects.exists() and queued_calls == []


def test_cancelling_ends_queued_jobs_flags_running_ones_and_leaves_finished_ones(admin):
    queued, running = _job(admin), _job(admin, DistillJob.Status.RUNNING)
    done = _job(admin, DistillJob.Status.SUCCEEDED)
    assert cancel_jobs(DistillJob.objects.all()) == 2
    queued.refresh_from_db(), running.refresh_from_db(), done.refresh_from_db()
    assert queued.status == "cancelled" and queued.finished_at is not None
    assert running.status == "running" and running.cancel_requested
    assert done.status == "succeeded" and not done.cancel_requested


def test_the_admin_action_and_the_api_cancel_alike(admin_user, client, api_client_for):
    admin = admin_user
    by_admin, by_api = _job(admin, DistillJob.Status.RUNNING), _job(admin, DistillJob.Status.RUNNING)
    client.force_login(admin)
    response = client.post(
        "/admin/ocr_api/distilljob/", {"action": "cancel_selected", "_selected_action": [by_admin.pk]}
    )
    assert response.status_code == 302
    assert api_client_for(admin).post(f"/ocr/v1/distill-jobs/{by_api.pk}/cancel").status_code == 202
    rows = {j.pk: (j.status, j.cancel_requested) for j in DistillJob.objects.all()}
    assert rows[by_admin.pk] == rows[by_api.pk] == ("running", True)


def test_the_api_refuses_a_body_that_is_not_an_object(admin, api_client_for):
    response = api_client_for(admin).post("/ocr/v1/distill-jobs", ["teacher"], format="json")
    assert response.status_code == 400 and not DistillJob.objects.exists()


def _ocr_job(owner) -> OcrJob:
    return OcrJob.objects.create(
        owner=owner, image_sha256="0" * 64, image_format="PNG", width=1, height=1, size_bytes=1, cache_key="k"
    )


def test_members_see_their_own_jobs_and_staff_see_all(make_user, admin):
    alice, bob = make_user("alice"), make_user("bob")
    mine, theirs = _ocr_job(alice), _ocr_job(bob)
    assert list(jobs_visible_to(alice)) == [mine]
    assert set(jobs_visible_to(admin)) == {mine, theirs}
    assert list(jobs_visible_to(bob, OcrJob.objects.filter(pk=mine.pk))) == []


def test_a_stale_job_is_failed_once_and_a_finished_one_is_left_alone(admin):
    from datetime import timedelta

    from django.utils import timezone

    from ocr_api.tasks import reap_stale_jobs

    old = timezone.now() - timedelta(hours=1)
    stale = _job(admin, DistillJob.Status.RUNNING)
    DistillJob.objects.filter(pk=stale.pk).update(heartbeat_at=old, cancel_requested=True)
    assert reap_stale_jobs() == 1 and reap_stale_jobs() == 0
    stale.refresh_from_db()
    assert stale.status == "failed" and "heartbeat" in stale.error_message and stale.finished_at is not None
    assert stale.cancel_requested  # the end touches only its own fields


def test_each_task_the_web_sends_by_name_goes_to_its_queue():
    """The web sends tasks by name (ocr_api.queues); the routes put them on the workers' queues."""
    from ocr_api import queues
    from ocr_api.recognition import recognize
    from ocr_api.tasks import run_training_job
    from ocrsite.celery import app

    assert (recognize.name, run_training_job.name) == (queues.RECOGNIZE, queues.TRAIN)
    assert app.amqp.router.route({}, queues.RECOGNIZE)["queue"].name == "ocr"
    assert app.amqp.router.route({}, queues.TRAIN)["queue"].name == "training"
