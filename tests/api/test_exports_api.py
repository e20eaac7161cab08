"""GET /ocr/v1/jobs/<id>/export: formats, who may fetch which, and the errors."""

from __future__ import annotations

import io
import json

import pytest

from ocr_api.images import image_storage
from ocr_api.models import OcrJob
from tests.api.test_recognize_api import _job, assert_error
from tests.conftest import png_bytes, render_lines

pytestmark = pytest.mark.django_db

LINE = {
    "text": "合计 128",
    "confidence": 0.97,
    "box": [16, 16, 160, 60],
    "chars": [
        {"text": "合", "confidence": 0.99, "box": [16, 16, 44, 60]},
        {"text": "计", "confidence": 0.98, "box": [44, 16, 72, 60]},
        {"text": " ", "confidence": 0.9, "box": [72, 16, 86, 60]},
        {"text": "1", "confidence": 0.97, "box": [86, 16, 110, 60]},
        {"text": "2", "confidence": 0.97, "box": [110, 16, 134, 60]},
        {"text": "8", "confidence": 0.95, "box": [134, 16, 160, 60]},
    ],
}


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def finished(alice):
    image = png_bytes(render_lines(["合计 128"]))
    return _job(alice, LINE["text"], image=image, lines=[LINE], width=200, height=80, filename="收据 07.png")


def url(job, fmt=None):
    return f"/ocr/v1/jobs/{job.pk}/export" + (f"?format={fmt}" if fmt else "")


@pytest.mark.parametrize(
    "fmt, content_type, ext",
    [
        ("pdf", "application/pdf", "pdf"),
        ("hocr", "text/html; charset=utf-8", "hocr"),
        ("alto", "application/xml; charset=utf-8", "alto.xml"),
        ("txt", "text/plain; charset=utf-8", "txt"),
        ("json", "application/json", "json"),
    ],
)
def test_each_format_downloads_with_its_type_and_name(api_client_for, alice, finished, fmt, content_type, ext):
    response = api_client_for(alice).get(url(finished, fmt))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Disposition"].endswith(f'.{ext}"')
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.content
    expected_start = {"pdf": b"%PDF-", "hocr": b"<?xml", "alto": b"<?xml", "txt": "合计 128\n".encode(), "json": b"{"}
    assert body.startswith(expected_start[fmt])
    if fmt == "json":
        assert json.loads(body)["lines"] == [LINE]
    if fmt in ("hocr", "alto"):
        assert "合".encode() in body and b"128" in body


def test_a_format_must_be_named_and_known(api_client_for, alice, finished):
    client = api_client_for(alice)
    assert_error(client.get(url(finished)), 400, "bad_format")
    assert_error(client.get(url(finished, "docx")), 400, "bad_format")


def test_an_unfinished_or_failed_job_does_not_export(api_client_for, alice):
    client = api_client_for(alice)
    for state in (OcrJob.Status.QUEUED, OcrJob.Status.RUNNING, OcrJob.Status.FAILED):
        job = _job(alice, "", status=state, lines=[])
        assert_error(client.get(url(job, "txt")), 409, "not_finished")


def test_the_pdf_goes_to_the_owner_only_and_the_text_to_staff_too(api_client_for, make_user, finished):
    staff = make_user("root", is_staff=True)
    other = make_user("bob")
    assert_error(api_client_for(other).get(url(finished, "txt")), 404, "not_found")
    assert_error(api_client_for(other).get(url(finished, "pdf")), 404, "not_found")
    assert api_client_for(staff).get(url(finished, "hocr")).status_code == 200
    assert_error(api_client_for(staff).get(url(finished, "pdf")), 404, "not_found")


def test_after_the_image_is_deleted_the_pdf_is_gone_and_the_text_stays(api_client_for, alice, finished):
    image_storage().delete(finished.image_name)
    OcrJob.objects.filter(pk=finished.pk).update(image_name="")
    client = api_client_for(alice)
    assert_error(client.get(url(finished, "pdf")), 410, "image_deleted")
    assert client.get(url(finished, "alto")).status_code == 200


def test_the_export_needs_a_login(finished):
    from rest_framework.test import APIClient

    assert_error(APIClient().get(url(finished, "txt")), 401, "not_authenticated")


TABLE = {
    "bbox": [10, 10, 210, 70],
    "rows": 2,
    "cols": 2,
    "cells": [
        {"row": 0, "col": 0, "row_span": 1, "col_span": 1, "bbox": [10, 10, 110, 40], "text": "品名"},
        {"row": 0, "col": 1, "row_span": 1, "col_span": 1, "bbox": [110, 10, 210, 40], "text": "金额"},
        {"row": 1, "col": 0, "row_span": 1, "col_span": 1, "bbox": [10, 40, 110, 70], "text": "办公桌"},
        {"row": 1, "col": 1, "row_span": 1, "col_span": 1, "bbox": [110, 40, 210, 70], "text": "1,280.00"},
    ],
}


def test_a_job_with_a_table_exports_it_as_csv_and_html(api_client_for, alice):
    job = _job(alice, LINE["text"], lines=[LINE], tables=[TABLE], width=220, height=80)
    client = api_client_for(alice)
    assert client.get(f"/ocr/v1/jobs/{job.pk}").json()["tables"] == [TABLE]
    csv_answer = client.get(url(job, "csv"))
    assert csv_answer.status_code == 200 and csv_answer["Content-Type"] == "text/csv; charset=utf-8"
    assert csv_answer.content.decode() == '品名,金额\r\n办公桌,"1,280.00"\r\n'
    html_answer = client.get(url(job, "html"))
    assert '<td data-bbox="10 40 110 70">办公桌</td>' in html_answer.content.decode()
    hocr = client.get(url(job, "hocr")).content
    assert b'class="ocr_table"' in hocr and hocr.count(b"<td ") == 4
    from hocr_spec import HocrValidator

    report = HocrValidator("standard").validate(io.BytesIO(hocr), parse_strict=True)
    assert report.is_valid(), report.format("text")
    from lxml import etree

    from tests.workers.test_exports import ALTO_XSD

    alto = etree.fromstring(client.get(url(job, "alto")).content)
    assert etree.XMLSchema(etree.parse(str(ALTO_XSD))).validate(alto)
    ns = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
    (block,) = alto.findall(".//a:ComposedBlock[@TYPE='table']", ns)
    assert len(block.findall(".//a:TextLine", ns)) == 1  # the one line, inside the table


def test_a_job_without_tables_has_none_to_export(api_client_for, alice, finished):
    assert_error(api_client_for(alice).get(url(finished, "csv")), 409, "no_tables")
    assert "tables" not in api_client_for(alice).get(f"/ocr/v1/jobs/{finished.pk}").json()


def test_a_pdf_jobs_pages_render_for_its_owner_only(api_client_for, alice, make_user):
    from PIL import Image as PILImage

    from tests.workers.test_pdf import scanned_pdf

    pdf = scanned_pdf([["第一页"], ["第二页"]])
    job = _job(alice, "第一页", image=pdf, image_format="PDF", width=1240, height=1754)
    client = api_client_for(alice)
    answer = client.get(f"/ocr/v1/jobs/{job.pk}/pages/2")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    with PILImage.open(io.BytesIO(answer.content)) as png:
        assert abs(png.width - 1240) <= 1 and abs(png.height - 1754) <= 1
    assert_error(client.get(f"/ocr/v1/jobs/{job.pk}/pages/3"), 404, "not_found")
    assert_error(api_client_for(make_user("bob")).get(f"/ocr/v1/jobs/{job.pk}/pages/1"), 404, "not_found")
    image_storage().delete(job.image_name)
    OcrJob.objects.filter(pk=job.pk).update(image_name="")
    assert_error(client.get(f"/ocr/v1/jobs/{job.pk}/pages/1"), 410, "image_deleted")


def test_an_image_jobs_page_one_is_its_image(api_client_for, alice, finished):
    answer = api_client_for(alice).get(f"/ocr/v1/jobs/{finished.pk}/pages/1")
    assert answer.status_code == 302 and answer["Location"].endswith(f"/ocr/v1/jobs/{finished.pk}/image")
    assert_error(api_client_for(alice).get(f"/ocr/v1/jobs/{finished.pk}/pages/2"), 404, "not_found")
