"""The real path: Django view -> Redis -> Celery worker process -> ONNX Runtime -> back."""

import threading
import time

import pytest
from rest_framework.test import APIClient

from ocr_api.images import image_storage, store
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
    from ocr_api.registry import active_model

    assert body["time_cost"] > 0 and body["model_version"] == active_model().label
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

    worker_factory(OCR_BATCH_MAX_SIZE="32", OCR_BATCH_MAX_WAIT_MS="400")  # batching is off by default
    token = Token.objects.create(user=make_user("crm")).key
    # Equal widths, so the width buckets do not split them.
    texts = ["开票日期二零二六", "金额合计一千二百", "纳税人识别号码九", "上海市浦东新区路"]
    answers: dict[int, dict] = {}

    def call(i: int) -> None:
        data = json.dumps({"image_base64": b64(png_bytes(render_lines([texts[i]])))}).encode()
        request = urllib.request.Request(
            live_server.url + URL,
            data=data,
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
    doomed = worker_factory(OCR_BATCH_MAX_SIZE="32", OCR_BATCH_MAX_WAIT_MS="5000", **fast_restore)
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
    from ocr_api.recognition import recognize

    body = client.post(URL, {"image_base64": b64(invoice_png)}, format="json").json()
    job = OcrJob.objects.get(pk=body["job_id"])
    assert recognize.run(body["job_id"]) == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1 and job.status == OcrJob.Status.SUCCEEDED


def test_a_job_whose_stored_image_is_corrupt_ends_as_failed(client, ocr_worker, invoice_png):
    """The worker decodes again; a bad image found there ends the job with its error code."""
    from ocr_api.recognition import recognize

    job = OcrJob.objects.create(
        owner=OcrJob._meta.get_field("owner").related_model.objects.get(username="erp"),
        image_name=store(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG"),
        image_sha256="1" * 64,
        image_format="PNG",
        width=10,
        height=10,
        size_bytes=72,
        cache_key="k",
    )
    recognize.apply_async(args=[str(job.pk)])
    deadline = time.monotonic() + 30
    while not OcrJob.objects.get(pk=job.pk).is_finished:
        assert time.monotonic() < deadline, ocr_worker.log()[-2000:]
        time.sleep(0.1)
    job.refresh_from_db()
    assert job.status == OcrJob.Status.FAILED and job.error_code in ("truncated_image", "not_an_image")


def _wait_until(condition, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s\n{log()[-3000:]}"
        time.sleep(0.05)


def test_a_job_deleted_while_it_is_recognised_stays_deleted(client, worker_factory, redis_server):
    """The worker finishes with a conditional update: the row is not inserted again, the image
    file goes with the row, and no text of the deleted image is cached."""
    # Each batch is held open for 3 s: time to delete the job while its lines are in the batcher.
    worker = worker_factory(OCR_BATCH_MAX_SIZE="32", OCR_BATCH_MAX_WAIT_MS="3000")
    image = png_bytes(render_lines(["请删除这张发票"]))
    job_id = client.post(URL, {"image_base64": b64(image), "wait": False}, format="json").json()["job_id"]
    _wait_until(lambda: OcrJob.objects.get(pk=job_id).status == OcrJob.Status.RUNNING, 20, "claimed", worker.log)
    name = OcrJob.objects.get(pk=job_id).image_name
    assert image_storage().exists(name)
    assert client.delete(f"/ocr/v1/jobs/{job_id}").status_code == 204
    assert not image_storage().exists(name)
    # The worker tells waiting requests when it drops the result of a deleted job.
    _wait_until(lambda: redis_server.exists(f"ocr:done:{job_id}"), 30, "the worker finished", worker.log)
    time.sleep(0.5)
    assert not OcrJob.objects.filter(pk=job_id).exists()
    assert client.get(f"/ocr/v1/jobs/{job_id}").status_code == 404
    assert not image_storage().exists(name)
    assert not redis_server.keys("ocr:result:*")


def test_a_runaway_recognition_is_stopped_at_the_time_limit(client, worker_factory):
    """The threads pool enforces no Celery time limit; the recognition deadline does: a page of
    150 long lines, one line per batch (seconds of work), under a 1.5 s limit ends as a timeout (504)."""
    worker = worker_factory(OCR_TASK_SOFT_TIME_LIMIT_S="1.5", OCR_BATCH_MAX_SIZE="1", OCR_BATCH_MAX_WAIT_MS="0")
    page = png_bytes(render_lines([f"上海明远科技有限公司发票金额合计上海明远科技有限公司{i:03d}" for i in range(150)]))
    response = client.post(URL, {"image_base64": b64(page)}, format="json")
    assert response.status_code == 504, (response.content, worker.log()[-2000:])
    assert response.json()["error"]["code"] == "timeout"
    job = OcrJob.objects.get(owner__username="erp")
    assert job.status == OcrJob.Status.FAILED and job.error_code == "timeout"
    stopped = job.diagnostics
    print("stopped at", stopped)
    if stopped["stage"] == "recognition":  # stopped inside the batcher, not before it
        assert stopped["lines_done"] < stopped["lines_total"] == 150


def test_jobs_of_a_worker_killed_under_load_finish_once_on_another_within_30_s(
    client, worker_factory, redis_server, api_client_for
):
    """20 jobs queued; the first worker holds 4 of them in a batch that never closes and is
    SIGKILLed. The second worker runs the other 16 and, once the first's heartbeat is gone, its
    recovery sweep sends the 4 orphans again: every job ends once, with one result."""
    doomed = worker_factory(OCR_BATCH_MAX_SIZE="32", OCR_BATCH_MAX_WAIT_MS="60000")
    texts = [f"发票号码{i:02d}号" for i in range(20)]
    ids = []
    for text in texts:
        response = client.post(
            URL, {"image_base64": b64(png_bytes(render_lines([text]))), "wait": False}, format="json"
        )
        assert response.status_code == 202
        ids.append(response.json()["job_id"])
    held = OcrJob.objects.filter(claimed_by__startswith=doomed.name + "#", status=OcrJob.Status.RUNNING)
    _wait_until(lambda: held.count() == 4, 30, "4 jobs claimed by the first worker", doomed.log)
    orphans = set(map(str, held.values_list("pk", flat=True)))
    rescuer = worker_factory()
    doomed.kill()
    killed_at = time.monotonic()
    unfinished = OcrJob.objects.filter(pk__in=ids, status__in=[OcrJob.Status.QUEUED, OcrJob.Status.RUNNING])
    _wait_until(lambda: not unfinished.exists(), 60, "all jobs finished", rescuer.log)
    recovery_s = time.monotonic() - killed_at
    print(f"all 20 jobs finished {recovery_s:.1f} s after the SIGKILL")
    assert recovery_s <= 30
    by_id = {str(j.pk): j for j in OcrJob.objects.filter(pk__in=ids)}
    for job_id, text in zip(ids, texts):
        job = by_id[job_id]
        assert job.status == OcrJob.Status.SUCCEEDED, (job.error_code, job.error_message)
        assert job.text_content == text
        assert job.claimed_by.startswith(rescuer.name + "#")
        assert job.attempts == (2 if job_id in orphans else 1)
    assert client.get("/ocr/v1/jobs").json()["count"] == 20  # no duplicate in the user's history


def test_jobs_of_a_killed_worker_are_finished_by_its_restart_under_the_same_name(
    transactional_db, client, tmp_path, redis_server
):
    """A supervisor restarts a killed worker under its old name; the restarted process is a new
    incarnation, so it recovers what its previous life held, within 30 s of the kill."""
    import subprocess
    import sys

    from tests.conftest import ROOT, WorkerProcess, wait_for_ocr_worker, worker_env

    name = "ocr-restarted@test"

    def start(**env) -> WorkerProcess:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "ocrsite",
                "worker",
                "-Q",
                "ocr",
                "--pool",
                "threads",
                "--concurrency",
                "2",
                "-n",
                name,
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=worker_env(**env),
            stdout=open(log_path, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(WorkerProcess(name=name, proc=proc, log_path=log_path))
        return started[-1]

    started: list[WorkerProcess] = []
    try:
        first = start(OCR_BATCH_MAX_SIZE="32", OCR_BATCH_MAX_WAIT_MS="60000")
        wait_for_ocr_worker(first, redis_server)
        texts = ["重启前的第一张", "重启前的第二张", "重启后的第三张"]
        ids = [
            client.post(URL, {"image_base64": b64(png_bytes(render_lines([t]))), "wait": False}, format="json").json()[
                "job_id"
            ]
            for t in texts
        ]
        held = OcrJob.objects.filter(pk__in=ids, status=OcrJob.Status.RUNNING)
        _wait_until(lambda: held.count() == 2, 30, "2 jobs claimed", first.log)
        old_incarnation = held.first().claimed_by
        first.kill()
        killed_at = time.monotonic()
        second = start()
        unfinished = OcrJob.objects.filter(pk__in=ids, status__in=[OcrJob.Status.QUEUED, OcrJob.Status.RUNNING])
        _wait_until(lambda: not unfinished.exists(), 60, "all jobs finished", second.log)
        recovery_s = time.monotonic() - killed_at
        print(f"restart under the same name: all jobs finished {recovery_s:.1f} s after the SIGKILL")
        assert recovery_s <= 30
        for job_id, text in zip(ids, texts):
            job = OcrJob.objects.get(pk=job_id)
            assert job.status == OcrJob.Status.SUCCEEDED and job.text_content == text
            assert job.claimed_by.startswith(name + "#") and job.claimed_by != old_incarnation
        assert sorted(OcrJob.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == [1, 2, 2]
    finally:
        for worker in started:
            worker.stop()


def test_a_pdf_comes_back_page_by_page(client, ocr_worker):
    from tests.workers.test_pdf import scanned_pdf, text_layer_pdf

    scanned = client.post(
        URL,
        {
            "image_base64": b64(
                scanned_pdf([["第一页 增值税专用发票"], ["第二页 开户银行招商银行"], ["第三页 价税合计"]])
            )
        },
        format="json",
    )
    assert scanned.status_code == 200, scanned.content
    pages = scanned.json()["pages"]
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert [[t.replace(" ", "") for t in p["text"]] for p in pages] == [
        ["第一页增值税专用发票"],
        ["第二页开户银行招商银行"],
        ["第三页价税合计"],
    ]
    layered = client.post(
        URL, {"image_base64": b64(text_layer_pdf([["购买方名称：上海明远科技有限公司"]]))}, format="json"
    )
    assert layered.status_code == 200, layered.content
    assert layered.json()["pages"] == [{"page": 1, "text": ["购买方名称：上海明远科技有限公司"]}]
    assert layered.json()["lines"][0]["source"] == "text_layer"


# A photographed invoice line (the decoding benchmark's hotword set, bench/decoding.py) whose company
# name the recogniser misreads: 绥 as 续, and 有限责任 as 有辰走任, which the language model puts right.
COMPANY_LINE = "收款单位：碑绥垛实业有限责任公司"


def test_hotwords_fix_a_company_name_the_decoder_gets_wrong(client, worker_factory, settings):
    from pathlib import Path

    from workers.config import cascade_signature, pipeline_signature

    # the served model alone misreads the name; the cascade reads it right (tests/workers/test_line_images.py
    # holds that), so it is off here, in the worker and in the web's cache keys
    worker_factory(OCR_CASCADE_MODEL="")
    settings.OCR_CASCADE_MODEL = ""
    cascade_signature.cache_clear()
    pipeline_signature.cache_clear()
    image = (Path(__file__).resolve().parents[1] / "fixtures" / "company_photo.png").read_bytes()
    plain = client.post(URL, {"image_base64": b64(image)}, format="json").json()
    assert plain["text"] != [COMPANY_LINE]
    boosted = client.post(
        URL, {"image_base64": b64(image), "hotwords": ["碑绥垛实业有限责任公司", "华为"]}, format="json"
    )
    assert boosted.status_code == 200, boosted.content
    body = boosted.json()
    assert body["text"] == [COMPANY_LINE] and body["cached"] is False  # its own cache entry
    chars = body["lines"][0]["chars"]
    assert "".join(c["text"] for c in chars) == COMPANY_LINE
    assert all(0.0 <= c["confidence"] <= 1.0 for c in chars)
    assert OcrJob.objects.get(pk=body["job_id"]).hotwords == ["碑绥垛实业有限责任公司", "华为"]
    cascade_signature.cache_clear()
    pipeline_signature.cache_clear()
