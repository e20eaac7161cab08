"""POST /ocr/v1/batches: many images or PDFs at once, a job each, bad items reported in place;
GET the batch for its jobs; PDFs report their pages as they are read."""

from __future__ import annotations

import io
import time

import pytest

from ocr_api.models import Batch, OcrJob
from tests.api.test_recognize_api import _prime_cache, assert_error
from tests.conftest import b64, png_bytes, render_lines
from tests.workers.test_pdf import scanned_pdf

URL = "/ocr/v1/batches"


def image(text: str) -> bytes:
    return png_bytes(render_lines([text]))


@pytest.mark.django_db
def test_a_json_batch_queues_the_good_items_and_reports_the_bad_in_place(
    api_client_for, make_user, fake_worker_heartbeat
):
    client = api_client_for(make_user("erp"))
    body = {
        "images": [
            {"image_base64": b64(image("第一张 发票")), "filename": "a.png"},
            {"image_base64": "%% not base64 %%", "filename": "b.png"},
            {"image_base64": b64(b"plain text, no pixels"), "filename": "c.txt"},
            {"image_base64": b64(image("第四张 收据")), "filename": "d.png"},
        ],
        "hotwords": ["发票"],
    }
    answer = client.post(URL, body, format="json")
    assert answer.status_code == 202, answer.content
    batch = answer.json()
    assert batch["status"] == "running"
    assert batch["counts"] == {"queued": 2, "running": 0, "succeeded": 0, "failed": 0, "refused": 2}
    items = batch["items"]
    assert [i["index"] for i in items] == [0, 1, 2, 3]
    assert [i.get("error", {}).get("code") for i in items] == [None, "bad_base64", "not_an_image", None]
    assert items[0]["job"]["filename"] == "a.png" and items[0]["job"]["hotwords"] == ["发票"]
    assert items[0]["job"]["batch_id"] == batch["batch_id"]
    assert client.get(batch["status_url"]).json() == batch
    assert OcrJob.objects.filter(batch_id=batch["batch_id"]).count() == 2


@pytest.mark.django_db
def test_a_multipart_batch_takes_repeated_image_fields(api_client_for, make_user, fake_worker_heartbeat):
    client = api_client_for(make_user("erp"))
    files = [io.BytesIO(image("一")), io.BytesIO(image("二"))]
    for f, name in zip(files, ("one.png", "two.png")):
        f.name = name
    answer = client.post(URL, {"images": files}, format="multipart")
    assert answer.status_code == 202, answer.content
    assert [i["job"]["filename"] for i in answer.json()["items"]] == ["one.png", "two.png"]


@pytest.mark.django_db
def test_a_cached_item_is_finished_in_the_batch_at_once(api_client_for, make_user, fake_worker_heartbeat):
    client = api_client_for(make_user("erp"))
    known = image("已经识别过的图片")
    _prime_cache(known, [{"text": "已经识别过的图片", "confidence": 0.99, "box": [0, 0, 10, 10]}])
    answer = client.post(URL, {"images": [{"image_base64": b64(known)}]}, format="json").json()
    assert answer["counts"]["succeeded"] == 1 and answer["status"] == "finished"
    assert answer["items"][0]["job"]["text"] == ["已经识别过的图片"] and answer["items"][0]["job"]["cached"]


@pytest.mark.django_db
def test_limits_no_worker_and_empty_batches(api_client_for, make_user, settings, redis_server):
    client = api_client_for(make_user("erp"))
    one = {"image_base64": b64(image("一"))}
    assert_error(client.post(URL, {"images": []}, format="json"), 400, "missing_image")
    settings.OCR_MAX_BATCH_ITEMS = 2
    assert_error(client.post(URL, {"images": [one] * 3}, format="json"), 413, "too_many_items")
    assert_error(client.post(URL, {"images": [one]}, format="json"), 503, "unavailable")  # no worker alive
    assert not Batch.objects.exists() and not OcrJob.objects.exists()


@pytest.mark.django_db
def test_an_idempotent_batch_is_made_once(api_client_for, make_user, fake_worker_heartbeat):
    client = api_client_for(make_user("erp"))
    body = {"images": [{"image_base64": b64(image("一")), "filename": "1.png"}]}
    first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-42").json()
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-42").json()
    assert again["batch_id"] == first["batch_id"] and Batch.objects.count() == 1 and OcrJob.objects.count() == 1
    other = {"images": [{"image_base64": b64(image("二")), "filename": "1.png"}]}
    assert_error(client.post(URL, other, format="json", HTTP_IDEMPOTENCY_KEY="batch-42"), 409, "idempotency_conflict")


@pytest.mark.django_db
def test_another_users_batch_is_404(api_client_for, make_user, fake_worker_heartbeat):
    mine = api_client_for(make_user("a")).post(URL, {"images": [{"image_base64": b64(image("一"))}]}, format="json")
    assert_error(api_client_for(make_user("b")).get(mine.json()["status_url"]), 404, "not_found")
    assert api_client_for(make_user("root", is_staff=True)).get(mine.json()["status_url"]).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_finishes_a_batch_and_a_pdf_reports_its_pages(api_client_for, make_user, worker_factory):
    worker_factory()
    client = api_client_for(make_user("erp"))
    pdf = scanned_pdf([["第一页 增值税专用发票"], ["第二页 开户银行"], ["第三页 价税合计"]])
    body = {
        "images": [
            {"image_base64": b64(image("送货单 No. 1207")), "filename": "note.png"},
            {"image_base64": b64(pdf), "filename": "invoice.pdf"},
        ]
    }
    batch = client.post(URL, body, format="json").json()
    deadline = time.monotonic() + 120
    while batch["status"] != "finished" and time.monotonic() < deadline:
        time.sleep(0.3)
        batch = client.get(batch["status_url"]).json()
    assert batch["counts"]["succeeded"] == 2, batch
    note, invoice = (item["job"] for item in batch["items"])
    assert note["text"] and note["text"][0].replace(" ", "").startswith("送货单")
    assert invoice["progress"] == {"pages_done": 3, "pages": 3}
    assert [p["page"] for p in invoice["pages"]] == [1, 2, 3]
