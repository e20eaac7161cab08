"""REST API behaviour without a worker process: validation, auth, errors, history, cache, 202 and 503."""

import time

import pytest
from kombu.exceptions import OperationalError
from PIL import Image

from ocr_api.images import image_storage, store
from ocr_api.models import OcrJob
from tests.conftest import b64, png_bytes

URL = "/ocr/v1/recognize"
pytestmark = pytest.mark.django_db


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def client(api_client_for, user):
    return api_client_for(user)


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_it_requires_a_token(invoice_png):
    from rest_framework.test import APIClient

    assert_error(APIClient().post(URL, {"image_base64": b64(invoice_png)}, format="json"), 401, "not_authenticated")


def test_it_rejects_a_bad_token(invoice_png):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(client.post(URL, {"image_base64": b64(invoice_png)}, format="json"), 401, "authentication_failed")


def test_it_rejects_bad_base64(client):
    assert_error(client.post(URL, {"image_base64": "this is %% not base64"}, format="json"), 400, "bad_base64")


def test_it_rejects_data_that_is_not_an_image(client):
    assert_error(
        client.post(URL, {"image_base64": b64(b"hello world, no pixels here")}, format="json"), 400, "not_an_image"
    )


def test_it_rejects_unsupported_formats(client):
    import io

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buf, format="ICO")
    assert_error(client.post(URL, {"image_base64": b64(buf.getvalue())}, format="json"), 400, "unsupported_format")


def test_it_rejects_truncated_png(client):
    data = png_bytes(Image.effect_noise((300, 120), 60).convert("RGB"))
    assert_error(client.post(URL, {"image_base64": b64(data[:-400])}, format="json"), 400, "truncated_image")


def test_it_rejects_a_missing_image(client):
    assert_error(client.post(URL, {}, format="json"), 400, "missing_image")


def test_it_rejects_too_large_images_with_413(client, settings):
    settings.OCR_MAX_IMAGE_BYTES = 5_000
    data = png_bytes(Image.effect_noise((200, 200), 80).convert("RGB"))
    assert len(data) > 5_000
    assert_error(client.post(URL, {"image_base64": b64(data)}, format="json"), 413, "too_large")
    upload = client.post(URL, {"image": _file(data)}, format="multipart")
    assert_error(upload, 413, "too_large")
    assert not OcrJob.objects.exists()


def test_it_rejects_a_body_over_the_upload_limit_with_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert_error(client.post(URL, {"image_base64": "A" * 5000}, format="json"), 413, "too_large")


def test_it_rejects_tiny_images(client):
    data = png_bytes(Image.new("RGB", (3, 3), "white"))
    assert_error(client.post(URL, {"image_base64": b64(data)}, format="json"), 400, "image_too_small")


def test_it_throttles_with_429(client, settings, invoice_png, fake_worker_heartbeat):
    settings.OCR_THROTTLE_PER_MINUTE = 2
    settings.OCR_SYNC_TIMEOUT_S = 0
    for _ in range(2):
        assert client.post(URL, {"image_base64": b64(invoice_png)}, format="json").status_code == 202
    response = client.post(URL, {"image_base64": b64(invoice_png)}, format="json")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_it_answers_503_when_no_worker_is_alive(client, invoice_png):
    assert_error(client.post(URL, {"image_base64": b64(invoice_png)}, format="json"), 503, "unavailable")
    assert not OcrJob.objects.exists()


def test_it_answers_503_when_the_broker_refuses_and_keeps_no_orphan(
    client, invoice_png, fake_worker_heartbeat, monkeypatch
):
    from celery import current_app

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(current_app, "send_task", refuse)
    assert_error(client.post(URL, {"image_base64": b64(invoice_png)}, format="json"), 503, "unavailable")
    assert not OcrJob.objects.exists()


def test_it_answers_202_with_a_status_url_past_the_timeout(client, settings, invoice_png, fake_worker_heartbeat):
    settings.OCR_SYNC_TIMEOUT_S = 0.2
    response = client.post(URL, {"image_base64": b64(invoice_png), "filename": "a.png"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["job_id"]
    status = client.get(body["status_url"])
    assert status.status_code == 200 and status.json()["status"] == "queued"
    assert status.json()["filename"] == "a.png"


def test_wait_false_answers_at_once(client, invoice_png, fake_worker_heartbeat):
    started = time.monotonic()
    response = client.post(URL, {"image_base64": b64(invoice_png), "wait": False}, format="json")
    assert response.status_code == 202 and time.monotonic() - started < 5


def test_it_answers_from_the_cache_without_a_worker(client, user, invoice_png):
    """A cached result is served even with no worker alive."""
    import hashlib

    from engine.cachekey import cache_key
    from ocr_api.registry import active_model
    from workers.config import pipeline_signature, result_cache

    lines = [{"text": "购买方名称：上海明远科技有限公司", "confidence": 0.99, "box": [1, 2, 3, 4]}]
    model = active_model()
    key = cache_key(hashlib.sha256(invoice_png).hexdigest(), model.label, pipeline_signature())
    result_cache().set(key, {"lines": lines, "model_label": model.label})
    response = client.post(URL, {"image_base64": b64(invoice_png)}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["cached"] is True
    assert body["text"] == ["购买方名称：上海明远科技有限公司"]
    assert body["model_version"] == model.label
    assert OcrJob.objects.get(pk=body["job_id"]).owner == user


def test_another_users_job_is_404(client, make_user, api_client_for, invoice_png, fake_worker_heartbeat, settings):
    settings.OCR_SYNC_TIMEOUT_S = 0
    job_id = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["job_id"]
    mallory = api_client_for(make_user("mallory"))
    assert_error(mallory.get(f"/ocr/v1/jobs/{job_id}"), 404, "not_found")
    assert_error(mallory.get(f"/ocr/v1/jobs/{job_id}/image"), 404, "not_found")
    assert mallory.delete(f"/ocr/v1/jobs/{job_id}").status_code == 404
    assert _body(client.get(f"/ocr/v1/jobs/{job_id}/image")) == invoice_png


def test_history_is_own_newest_first_paginated_and_searchable(client, make_user, api_client_for, user):
    other = make_user("bob")
    for i in range(25):
        _job(user, f"发票 {i}")
    _job(other, "发票 of bob")
    page1 = client.get("/ocr/v1/jobs").json()
    assert page1["count"] == 25 and len(page1["results"]) == 20
    assert page1["results"][0]["text"] == ["发票 24"]
    page2 = client.get(page1["next"]).json()
    assert len(page2["results"]) == 5
    found = client.get("/ocr/v1/jobs", {"search": "发票 7"}).json()
    assert [r["text"] for r in found["results"]] == [["发票 7"]]
    staff = api_client_for(make_user("root", is_staff=True))
    assert staff.get("/ocr/v1/jobs").json()["count"] == 26


def test_a_user_can_delete_a_job(client, user):
    job = _job(user, "删除我")
    assert client.delete(f"/ocr/v1/jobs/{job.pk}").status_code == 204
    assert not OcrJob.objects.filter(pk=job.pk).exists()


def test_duplicate_uploads_share_one_file_deleted_with_its_last_job(
    client, user, fake_worker_heartbeat, settings, invoice_png, django_capture_on_commit_callbacks
):
    settings.OCR_SYNC_TIMEOUT_S = 0
    first = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["job_id"]
    second = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["job_id"]
    names = set(OcrJob.objects.values_list("image_name", flat=True))
    assert len(names) == 1
    (name,) = names
    assert name.startswith("images/") and name.endswith(".png") and "/" + user.username not in name
    assert image_storage().open(name).read() == invoice_png
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/ocr/v1/jobs/{first}").status_code == 204
    assert image_storage().exists(name)  # the second job still shows it
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/ocr/v1/jobs/{second}").status_code == 204
    assert not image_storage().exists(name)


def test_the_image_is_served_to_its_owner_only_as_an_inline_image(client, user, make_user, api_client_for):
    job = _job(user, "图", image=png_bytes(Image.new("RGB", (20, 20), "white")), filename='../evil "x".html')
    response = client.get(f"/ocr/v1/jobs/{job.pk}/image")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("inline;") and 'filename="evil_x.png"' in disposition
    assert "sandbox" in response["Content-Security-Policy"]
    # Staff see everyone's history, but not their uploads.
    staff = api_client_for(make_user("admin", is_staff=True))
    assert staff.get(f"/ocr/v1/jobs/{job.pk}").status_code == 200
    assert_error(staff.get(f"/ocr/v1/jobs/{job.pk}/image"), 404, "not_found")


def test_an_image_of_an_unexpected_format_is_a_download_not_a_page(client, user):
    job = _job(user, "图", image=b"<html><script>alert(1)</script></html>", image_format="SVG")
    response = client.get(f"/ocr/v1/jobs/{job.pk}/image")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


def test_a_user_can_delete_their_whole_history_with_its_images(
    client, user, make_user, api_client_for, django_capture_on_commit_callbacks
):
    bob = make_user("bob")
    mine = [_job(user, f"我的 {i}", image=f"mine-{i}".encode()) for i in range(3)]
    shared = _job(user, "共享", image=b"shared")
    theirs = _job(bob, "bob 的", image=b"shared")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/ocr/v1/jobs")
    assert response.status_code == 200 and response.json() == {"deleted": 4}
    assert not OcrJob.objects.filter(owner=user).exists()
    assert OcrJob.objects.filter(pk=theirs.pk).exists()
    assert not any(image_storage().exists(job.image_name) for job in mine)
    assert image_storage().exists(shared.image_name)  # bob's job names the same bytes
    assert api_client_for(bob).get("/ocr/v1/jobs").json()["count"] == 1


def test_purging_old_images_keeps_the_text(client, user, settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    old = _job(user, "旧发票", image=b"old")
    old_shared = _job(user, "旧的共享", image=b"both")
    recent = _job(user, "新发票", image=b"both")
    running = _job(user, "", image=b"running", status=OcrJob.Status.RUNNING)
    long_ago = timezone.now() - timedelta(days=31)
    OcrJob.objects.filter(pk__in=[old.pk, old_shared.pk, running.pk]).update(created_at=long_ago)
    settings.OCR_IMAGE_RETENTION_DAYS = 0
    call_command("purge_images")
    assert image_storage().exists(old.image_name)
    settings.OCR_IMAGE_RETENTION_DAYS = 30
    call_command("purge_images")
    assert not image_storage().exists(old.image_name)
    assert image_storage().exists(recent.image_name) and image_storage().exists(running.image_name)
    body = client.get(f"/ocr/v1/jobs/{old.pk}").json()
    assert body["text"] == ["旧发票"] and body["image_url"] is None
    assert_error(client.get(f"/ocr/v1/jobs/{old.pk}/image"), 410, "image_deleted")
    assert client.get(f"/ocr/v1/jobs/{recent.pk}").json()["image_url"]


def test_a_job_that_timed_out_answers_504_to_a_waiting_client(client, invoice_png, fake_worker_heartbeat, monkeypatch):
    from ocr_api import views

    def worker_gives_up(redis_client, job_id, timeout):
        OcrJob.objects.filter(pk=job_id).update(
            status=OcrJob.Status.FAILED,
            error_code="timeout",
            error_message="Recognition took longer than the time limit.",
        )
        return True

    monkeypatch.setattr(views, "wait_done", worker_gives_up)
    assert_error(client.post(URL, {"image_base64": b64(invoice_png)}, format="json"), 504, "timeout")


def test_a_job_deleted_while_its_client_waits_answers_404(client, invoice_png, fake_worker_heartbeat, monkeypatch):
    from ocr_api import views

    def deleted_meanwhile(redis_client, job_id, timeout):
        OcrJob.objects.filter(pk=job_id).delete()
        return True

    monkeypatch.setattr(views, "wait_done", deleted_meanwhile)
    assert_error(client.post(URL, {"image_base64": b64(invoice_png)}, format="json"), 404, "not_found")


def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/ocr/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/ocr/v1/recognize" in schema.json()["paths"]
    assert client.get("/ocr/v1/docs").status_code == 200


def _file(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("x.png", data, content_type="image/png")


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _job(owner, text: str, image: bytes = b"x", image_format: str = "PNG", **fields) -> OcrJob:
    defaults = dict(
        owner=owner,
        status=OcrJob.Status.SUCCEEDED,
        image_name=store(image, image_format),
        image_sha256="0" * 64,
        image_format=image_format,
        width=10,
        height=10,
        size_bytes=1,
        cache_key="k",
        lines=[{"text": text, "confidence": 0.9, "box": [0, 0, 1, 1]}],
        text_content=text,
    )
    job = OcrJob.objects.create(**{**defaults, **fields})
    time.sleep(0.002)  # distinct created_at
    return job


# --- cache hits: answered from Redis, history written after the answer ---------------------------
def _prime_cache(image: bytes, lines: list[dict], **extra) -> str:
    import hashlib

    from engine.cachekey import cache_key
    from ocr_api.registry import active_model
    from workers.config import pipeline_signature, result_cache

    label = active_model().label
    key = cache_key(hashlib.sha256(image).hexdigest(), label, pipeline_signature())
    result_cache().set(key, {"lines": lines, "model_label": label, "width": 420, "height": 86, **extra})
    return label


HIT_LINES = [{"text": "金额合计：¥1,280.00", "confidence": 0.98, "box": [16, 16, 300, 60]}]


def test_a_cache_hit_is_answered_before_its_history_row_is_written(
    client, user, invoice_png, monkeypatch, redis_server
):
    from ocr_api import history

    label = _prime_cache(invoice_png, HIT_LINES)
    monkeypatch.setattr(history, "writer_running", lambda: True)  # as under gunicorn: a thread writes rows
    response = client.post(URL, {"image_base64": b64(invoice_png), "filename": "hit.png"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["cached"] is True and body["text"] == ["金额合计：¥1,280.00"] and body["model_version"] == label
    assert body["width"] == 420 and body["filename"] == "hit.png"
    assert not OcrJob.objects.exists()  # nothing was written while the client waited
    assert redis_server.llen(history.PENDING_KEY) == 1
    assert history.drain(redis_server) == 1
    job = OcrJob.objects.get(pk=body["job_id"])
    assert job.owner == user and job.cached and job.status == OcrJob.Status.SUCCEEDED
    assert job.text_content == "金额合计：¥1,280.00" and job.filename == "hit.png" and job.model_label == label
    assert job.created_at.isoformat() == body["created_at"]
    assert redis_server.llen(history.PENDING_KEY) == 0


def test_the_history_lists_cache_hits(client, user, invoice_png):
    _prime_cache(invoice_png, HIT_LINES)
    ids = [client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["job_id"] for _ in range(3)]
    listed = client.get("/ocr/v1/jobs").json()
    assert [r["job_id"] for r in listed["results"]] == ids[::-1]  # newest first
    assert all(r["cached"] and r["text"] == ["金额合计：¥1,280.00"] for r in listed["results"])
    detail = client.get(f"/ocr/v1/jobs/{ids[0]}").json()
    assert detail["status"] == "succeeded" and detail["lines"] == HIT_LINES


def test_a_hit_names_the_stored_image_only_while_it_exists(client, user, invoice_png):
    _prime_cache(invoice_png, HIT_LINES)
    name = store(invoice_png, "PNG")
    kept = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()
    assert OcrJob.objects.get(pk=kept["job_id"]).image_name == name
    assert _body(client.get(f"/ocr/v1/jobs/{kept['job_id']}/image")) == invoice_png
    image_storage().delete(name)
    gone = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()
    assert OcrJob.objects.get(pk=gone["job_id"]).image_name == ""
    assert client.get(f"/ocr/v1/jobs/{gone['job_id']}").json()["image_url"] is None


def test_pending_hits_of_a_deleted_user_are_dropped_and_the_others_written(
    client, user, make_user, api_client_for, invoice_png, monkeypatch, redis_server
):
    from ocr_api import history

    _prime_cache(invoice_png, HIT_LINES)
    monkeypatch.setattr(history, "writer_running", lambda: True)
    leaving = make_user("leaving")
    api_client_for(leaving).post(URL, {"image_base64": b64(invoice_png)}, format="json")
    mine = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["job_id"]
    leaving.delete()
    assert history.drain(redis_server) == 1
    assert list(OcrJob.objects.values_list("pk", flat=True)) == [__import__("uuid").UUID(mine)]


def test_a_failed_history_write_keeps_the_records_for_the_next_drain(client, invoice_png, monkeypatch, redis_server):
    from ocr_api import history

    _prime_cache(invoice_png, HIT_LINES)
    monkeypatch.setattr(history, "writer_running", lambda: True)
    client.post(URL, {"image_base64": b64(invoice_png)}, format="json")

    def broken(raw):
        raise RuntimeError("database went away")

    monkeypatch.setattr(history, "write", broken)
    with pytest.raises(RuntimeError):
        history.drain(redis_server)
    assert redis_server.llen(history.PENDING_KEY) == 1
    monkeypatch.undo()
    assert history.drain(redis_server) == 1 and OcrJob.objects.count() == 1


def test_a_promoted_model_changes_the_key_of_the_next_request(client, invoice_png, tmp_path):
    """The web process keeps the active label briefly, but forgets it when a model row changes."""
    from ocr_api.registry import promote, register_model
    from tests.api.test_lifecycle_api import _copy_model

    _prime_cache(invoice_png, HIT_LINES)
    assert client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["cached"] is True
    promote(register_model(_copy_model(tmp_path, "candidate")))
    # Under the new model the cached text does not apply: no worker is alive, so 503.
    assert_error(client.post(URL, {"image_base64": b64(invoice_png)}, format="json"), 503, "unavailable")


# --- request validation (serializer), same error envelope ----------------------------------------
@pytest.mark.parametrize("wait", ["maybe", None, [True], {"x": 1}])
def test_it_rejects_a_wait_that_is_not_a_boolean(client, invoice_png, fake_worker_heartbeat, wait):
    assert_error(client.post(URL, {"image_base64": b64(invoice_png), "wait": wait}, format="json"), 400, "invalid")
    assert not OcrJob.objects.exists()


def test_it_accepts_wait_false_as_a_form_string(client, invoice_png, fake_worker_heartbeat):
    response = client.post(URL, {"image": _file(invoice_png), "wait": "false"}, format="multipart")
    assert response.status_code == 202 and response.json()["status"] == "queued"


@pytest.mark.parametrize("value", [["aGVsbG8="], {"b64": "aGVsbG8="}])
def test_it_rejects_image_base64_that_is_not_a_string(client, value):
    assert_error(client.post(URL, {"image_base64": value}, format="json"), 400, "bad_base64")


def test_it_rejects_a_filename_over_255_characters(client, invoice_png):
    response = client.post(URL, {"image_base64": b64(invoice_png), "filename": "a" * 256}, format="json")
    assert_error(response, 400, "invalid")
    assert "filename" in response.json()["error"]["message"]


def test_it_refuses_oversized_base64_before_decoding_it(client, settings, monkeypatch):
    from ocr_api import views

    settings.OCR_MAX_IMAGE_BYTES = 5_000
    monkeypatch.setattr(views, "_decode_base64", lambda text: pytest.fail("decoded an oversized image"))
    assert_error(client.post(URL, {"image_base64": "A" * 20_000}, format="json"), 413, "too_large")


def test_it_accepts_base64_with_line_breaks_and_a_data_url(client, invoice_png, fake_worker_heartbeat, settings):
    import base64 as b64lib

    settings.OCR_SYNC_TIMEOUT_S = 0
    mime = b64lib.encodebytes(invoice_png).decode()  # lines of 76 characters
    assert "\n" in mime
    assert client.post(URL, {"image_base64": mime}, format="json").status_code == 202
    url = "data:image/png;base64," + b64(invoice_png)
    assert client.post(URL, {"image_base64": url}, format="json").status_code == 202
    assert OcrJob.objects.filter(image_sha256=__import__("hashlib").sha256(invoice_png).hexdigest()).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_history_writer_thread_writes_the_hits(make_user, api_client_for, invoice_png, redis_server):
    """What each gunicorn worker process runs: the rows appear without any request draining them."""
    from ocr_api import history

    user = make_user("writer")
    client = api_client_for(user)
    _prime_cache(invoice_png, HIT_LINES)
    writer = history.HistoryWriter(redis_server, poll_s=0.1).start()
    try:
        ids = {client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()["job_id"] for _ in range(5)}
        deadline = time.monotonic() + 30
        while OcrJob.objects.filter(owner=user).count() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        writer.stop()
    assert {str(pk) for pk in OcrJob.objects.filter(owner=user, cached=True).values_list("pk", flat=True)} == ids
    assert redis_server.llen(history.PENDING_KEY) == 0


@pytest.mark.django_db(transaction=True)
def test_a_recognised_image_sent_again_is_a_hit_listed_in_the_history(make_user, api_client_for, worker_factory):
    """Real Redis, a real OCR worker: the miss goes through the worker, the repeat is a hit, and the
    history lists both with the same text."""
    from tests.conftest import render_lines

    worker_factory()
    user = make_user("repeat")
    client = api_client_for(user)
    image = png_bytes(render_lines(["订单编号 2026113001"]))
    first = client.post(URL, {"image_base64": b64(image)}, format="json").json()
    second = client.post(URL, {"image_base64": b64(image)}, format="json").json()
    assert first["cached"] is False and second["cached"] is True
    assert first["text"] == second["text"] and first["text"]
    assert second["model_version"] == first["model_version"]
    listed = client.get("/ocr/v1/jobs").json()["results"]
    assert [(r["job_id"], r["cached"]) for r in listed] == [(second["job_id"], True), (first["job_id"], False)]
    first_job = OcrJob.objects.get(pk=first["job_id"])
    assert first_job.model_version is not None and first_job.model_version.label == first["model_version"]
    assert OcrJob.objects.get(pk=second["job_id"]).image_name == first_job.image_name


def test_the_throttle_counts_per_user_and_weighs_the_previous_minute(
    make_user, api_client_for, settings, redis_server, monkeypatch
):
    from ocr_api import throttling

    settings.OCR_THROTTLE_PER_MINUTE = 4
    now = [120 * 60 + 30.0]  # half-way through a minute
    monkeypatch.setattr(throttling.time, "time", lambda: now[0])
    alice_user = make_user("t-alice")
    alice, bob = api_client_for(alice_user), api_client_for(make_user("t-bob"))
    # 4 requests in the previous minute count half now: 2, so 2 more are allowed.
    redis_server.set(f"ocr:throttle:user:{alice_user.pk}:{120 - 1}", 4)
    assert [alice.get("/ocr/v1/jobs").status_code for _ in range(3)] == [200, 200, 429]
    assert bob.get("/ocr/v1/jobs").status_code == 200  # counted apart
    response = alice.get("/ocr/v1/jobs")
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 30
    now[0] += 60  # a minute later the old counts weigh less
    assert alice.get("/ocr/v1/jobs").status_code == 200


@pytest.mark.parametrize("escaped", ["aGVsbG8=\\u0000", "aGVs\\ud800bG8="])
def test_it_rejects_base64_with_nul_or_surrogate_characters(client, escaped):
    body = '{"image_base64": "' + escaped + '"}'
    assert_error(client.post(URL, body, content_type="application/json"), 400, "bad_base64")


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height over a few bytes of pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [30000, 12000])
def test_it_refuses_a_decompression_bomb_with_413(client, fake_worker_heartbeat, side):
    """Found by bench/soak.py: the header is read before the cache lookup, and Pillow refuses such
    a canvas there with an exception of its own; the answer must still be the pixel cap's 413."""
    response = client.post(URL, {"image_base64": b64(_png_claiming(side, side))}, format="json")
    assert_error(response, 413, "image_too_large")
    assert not OcrJob.objects.exists()


def test_a_pdf_over_the_page_limit_or_broken_is_refused_before_any_work(client, settings):
    from tests.workers.test_pdf import scanned_pdf

    settings.OCR_MAX_PDF_PAGES = 2
    too_many = scanned_pdf([["一页"], ["二页"], ["三页"]])
    assert_error(client.post(URL, {"image_base64": b64(too_many)}, format="json"), 413, "too_many_pages")
    broken = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF"
    assert_error(client.post(URL, {"image_base64": b64(broken)}, format="json"), 400, "bad_pdf")
    assert not OcrJob.objects.exists()
