"""Idempotency-Key on POST /ocr/v1/recognize: the same key and request make one job, however often and
however concurrently they are sent; another request under the key is refused; a failed request
gives its key back."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from ocr_api.models import IdempotencyKey, OcrJob
from tests.api.test_recognize_api import assert_error
from tests.conftest import b64, png_bytes, render_lines

URL = "/ocr/v1/recognize"


@pytest.fixture
def image() -> bytes:
    return png_bytes(render_lines(["发货单号 SO-2026-1207"]))


def post(client, image: bytes, key: str | None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, {"image_base64": b64(image), "wait": False, **extra}, format="json", **headers)


@pytest.mark.django_db
def test_a_resubmitted_request_answers_with_the_first_job(api_client_for, make_user, image, fake_worker_heartbeat):
    client = api_client_for(make_user("alice"))
    first = post(client, image, "order-1207-a")
    assert first.status_code == 202, first.content
    again = post(client, image, "order-1207-a")
    assert again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert OcrJob.objects.count() == 1
    other = post(client, image, "order-1207-b")  # another key: another job
    assert other.json()["job_id"] != first.json()["job_id"]
    assert OcrJob.objects.count() == 2


@pytest.mark.django_db
def test_the_same_key_with_another_request_is_a_conflict(api_client_for, make_user, image, fake_worker_heartbeat):
    client = api_client_for(make_user("alice"))
    assert post(client, image, "k-1").status_code == 202
    assert_error(post(client, png_bytes(render_lines(["另一张图"])), "k-1"), 409, "idempotency_conflict")
    assert_error(post(client, image, "k-1", hotwords=["发货单"]), 409, "idempotency_conflict")
    assert OcrJob.objects.count() == 1


@pytest.mark.django_db
def test_keys_belong_to_their_client(api_client_for, make_user, image, fake_worker_heartbeat):
    a = post(api_client_for(make_user("alice")), image, "shared-key")
    b = post(api_client_for(make_user("bob")), image, "shared-key")
    assert a.json()["job_id"] != b.json()["job_id"]


@pytest.mark.django_db
def test_a_request_that_fails_gives_its_key_back(api_client_for, make_user, image, redis_server):
    client = api_client_for(make_user("alice"))
    assert_error(post(client, image, "retry-me"), 503, "unavailable")  # no worker alive
    assert not IdempotencyKey.objects.exists()
    assert_error(post(client, b"not an image at all", "retry-me"), 400, "not_an_image")
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_an_expired_key_makes_a_new_job(api_client_for, make_user, image, fake_worker_heartbeat, settings):
    client = api_client_for(make_user("alice"))
    first = post(client, image, "old-key").json()["job_id"]
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=settings.OCR_IDEMPOTENCY_TTL_H + 1))
    assert post(client, image, "old-key").json()["job_id"] != first


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "键"])
def test_a_malformed_key_is_refused(api_client_for, make_user, image, key):
    assert_error(post(api_client_for(make_user("alice")), image, key), 400, "bad_idempotency_key")


@pytest.mark.django_db(transaction=True)
def test_concurrent_resubmits_make_one_job(api_client_for, make_user, image, fake_worker_heartbeat):
    """Eight clients send the same request with the same key at once: one job, every answer names it."""
    user = make_user("alice")
    answers, barrier = [], threading.Barrier(8)

    def send():
        client = api_client_for(user)
        barrier.wait()
        answers.append(post(client, image, "burst-1"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 8
    assert {a.status_code for a in answers} == {202}, [a.content for a in answers]
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert OcrJob.objects.count() == 1
