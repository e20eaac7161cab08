"""The real path: Django view -> Redis -> Celery worker process -> ONNX Runtime -> back."""

import threading
import time

import pytest
from rest_framework.test import APIClient

from ocr_api.models import OcrJob
from tests.conftest import b64, png_bytes, render_lines

URL = "/ocr/v1/recognize"
pytestmark = [pytest.mark.integration]


@pytest.fixture
def client(make_user, api_client_for) -> APIClient:
    return api_client_for(make_user("erp"))


def test_it_returns_the_text_of_an_invoice_line(client, ocr_worker, invoice_png):
    response = client.post(URL, {"image_base64": b64(invoice_png)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["cached"] is False
    assert body["text"] == ["购买方名称：上海明远科技有限公司"]
    assert body["lines"][0]["confidence"] > 0.8 and len(body["lines"][0]["box"]) == 4
    assert body["time_cost"] > 0 and body["model_version"].startswith("crnn-student@")
    job = OcrJob.objects.get(pk=body["job_id"])
    assert job.status == OcrJob.Status.SUCCEEDED and job.attempts == 1


def test_multipart_upload_works_too(client, ocr_worker, invoice_png):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("invoice.png", invoice_png, content_type="image/png")
    response = client.post(URL, {"image": upload}, format="multipart")
    assert response.status_code == 200
    assert response.json()["text"] == ["购买方名称：上海明远科技有限公司"]
    assert response.json()["filename"] == "invoice.png"


def test_concurrent_requests_share_one_onnx_batch(live_server, make_user, worker_factory):
    """Lines of four simultaneous requests go through ONNX Runtime together."""
    import json
    import urllib.request

    from rest_framework.authtoken.models import Token

    worker_factory(OCR_BATCH_MAX_WAIT_MS="400")
    token = Token.objects.create(user=make_user("crm")).key
    # Equal widths, so the width buckets do not split them.
    texts = ["开票日期二零二六", "金额合计一千二百", "纳税人识别号码九", "上海市浦东新区路"]
    answers: dict[int, dict] = {}

    def call(i: int) -> None:
        data = json.dumps({"image_base64": b64(png_bytes(render_lines([texts[i]])))}).encode()
        request = urllib.request.Request(
            live_server.url + URL, data=data,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answers[i] = json.loads(response.read())

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [answers[i]["text"] for i in range(4)] == [[t] for t in texts]
    batches = [OcrJob.objects.get(pk=answers[i]["job_id"]).diagnostics["batches"] for i in range(4)]
    shared = set.intersection(*({b["id"] for b in jobs} for jobs in batches))
    assert shared, f"no batch shared by all four requests: {batches}"
    assert max(b["requests"] for jobs in batches for b in jobs) == 4


def test_a_repeated_image_is_answered_from_the_cache_without_a_worker(client, ocr_worker, invoice_png):
    first = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()
    assert first["cached"] is False
    ocr_worker.stop()
    again = client.post(URL, {"image_base64": b64(invoice_png)}, format="json")
    assert again.status_code == 200
    body = again.json()
    assert body["cached"] is True and body["text"] == first["text"]
    assert body["job_id"] != first["job_id"]
    # A different image still needs a worker, and none is alive now.
    other = png_bytes(render_lines(["另一张图片"]))
    assert client.post(URL, {"image_base64": b64(other)}, format="json").status_code == 503


def test_a_worker_killed_mid_job_loses_no_job(client, worker_factory, invoice_png, redis_server):
    """Late acknowledgement: the message of a job whose worker died goes back to the queue."""
    # The first worker holds each batch open for 5 s: long enough to kill it mid-job.
    fast_restore = dict(OCR_VISIBILITY_TIMEOUT_S="3", OCR_UNACKED_RESTORE_INTERVAL_S="1")
    doomed = worker_factory(OCR_BATCH_MAX_WAIT_MS="5000", **fast_restore)
    response = client.post(URL, {"image_base64": b64(invoice_png), "wait": False}, format="json")
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 20
    while OcrJob.objects.get(pk=job_id).status != OcrJob.Status.RUNNING:
        assert time.monotonic() < deadline, doomed.log()
        time.sleep(0.05)
    doomed.kill()
    assert OcrJob.objects.get(pk=job_id).status == OcrJob.Status.RUNNING
    worker_factory(**fast_restore)
    deadline = time.monotonic() + 60
    while not OcrJob.objects.get(pk=job_id).is_finished:
        assert time.monotonic() < deadline, "the job was lost"
        time.sleep(0.2)
    job = OcrJob.objects.get(pk=job_id)
    assert job.status == OcrJob.Status.SUCCEEDED
    assert job.text_content == "购买方名称：上海明远科技有限公司"
    assert job.attempts == 2


def test_a_job_run_twice_is_done_once(client, ocr_worker, invoice_png):
    from workers.tasks import recognize

    body = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()
    job = OcrJob.objects.get(pk=body["job_id"])
    assert recognize.run(body["job_id"]) == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1 and job.status == OcrJob.Status.SUCCEEDED


def test_a_job_whose_stored_image_is_corrupt_ends_as_failed(client, ocr_worker, invoice_png):
    """The worker decodes again; a bad image found there ends the job with its error code."""
    from workers.tasks import recognize

    job = OcrJob.objects.create(
        owner=OcrJob._meta.get_field("owner").related_model.objects.get(username="erp"),
        image=b"\x89PNG\r\n\x1a\n" + b"\0" * 64, image_sha256="1" * 64, image_format="PNG", width=10, height=10,
        size_bytes=72, cache_key="k",
    )
    recognize.apply_async(args=[str(job.pk)])
    deadline = time.monotonic() + 30
    while not OcrJob.objects.get(pk=job.pk).is_finished:
        assert time.monotonic() < deadline, ocr_worker.log()[-2000:]
        time.sleep(0.1)
    job.refresh_from_db()
    assert job.status == OcrJob.Status.FAILED and job.error_code in ("truncated_image", "not_an_image")
