"""POST /ocr/v1/recognize with hotwords, JSON and multipart (as the portal sends them), without a
worker: the job is queued with its hotwords and nothing takes it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ocr_api.models import OcrJob
from tests.conftest import b64

URL = "/ocr/v1/recognize"
pytestmark = pytest.mark.django_db


@pytest.fixture
def client(api_client_for, make_user):
    return api_client_for(make_user("alice"))


def upload(data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile("invoice.png", data, content_type="image/png")


def queued_job(response) -> OcrJob:
    assert response.status_code == 202, response.content
    return OcrJob.objects.get(pk=response.json()["job_id"])


def test_multipart_hotwords_as_repeated_fields_are_stored_on_the_job(client, invoice_png, fake_worker_heartbeat):
    body = {"image": upload(invoice_png), "wait": "false", "hotwords": ["明远科技", " 发票  号码 ", "明远科技"]}
    job = queued_job(client.post(URL, body, format="multipart"))
    assert job.hotwords == ["明远科技", "发票 号码"]


def test_a_multipart_field_holding_a_json_list_is_read_as_the_list(client, invoice_png, fake_worker_heartbeat):
    body = {"image": upload(invoice_png), "wait": "false", "hotwords": '["明远科技", "发票号码"]'}
    assert queued_job(client.post(URL, body, format="multipart")).hotwords == ["明远科技", "发票号码"]
    body = {"image": upload(invoice_png), "wait": "false", "hotwords": "[型号]"}  # not JSON: one word
    assert queued_job(client.post(URL, body, format="multipart")).hotwords == ["[型号]"]


def test_json_hotwords_are_stored_on_the_job(client, invoice_png, fake_worker_heartbeat):
    body = {"image_base64": b64(invoice_png), "wait": False, "hotwords": ["上海明远科技有限公司"]}
    response = client.post(URL, body, format="json")
    assert queued_job(response).hotwords == ["上海明远科技有限公司"] == response.json()["hotwords"]


def test_an_upload_without_hotwords_stores_none(client, invoice_png, fake_worker_heartbeat):
    response = client.post(URL, {"image": upload(invoice_png), "wait": "false"}, format="multipart")
    assert queued_job(response).hotwords == []


def test_the_same_image_with_other_hotwords_is_another_job(client, invoice_png, fake_worker_heartbeat):
    first = queued_job(client.post(URL, {"image_base64": b64(invoice_png), "wait": False}, format="json"))
    second = queued_job(
        client.post(URL, {"image_base64": b64(invoice_png), "wait": False, "hotwords": ["明远"]}, format="json")
    )
    assert first.cache_key != second.cache_key


@pytest.mark.parametrize("how", ["json", "multipart"])
def test_too_many_hotwords_are_refused_with_bad_hotwords_before_any_work(client, invoice_png, settings, how):
    settings.OCR_MAX_HOTWORDS = 2
    words = ["甲", "乙", "丙"]
    image = {"image_base64": b64(invoice_png)} if how == "json" else {"image": upload(invoice_png)}
    response = client.post(URL, {**image, "hotwords": words}, format=how)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == {"code": "bad_hotwords", "message": "hotwords: 3 hotwords; the limit is 2."}
    assert not OcrJob.objects.exists()


def test_a_hotword_that_is_too_long_is_refused_with_bad_hotwords(client, invoice_png, settings):
    settings.OCR_HOTWORD_MAX_CHARS = 4
    response = client.post(URL, {"image_base64": b64(invoice_png), "hotwords": ["一二三四五"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_hotwords"
