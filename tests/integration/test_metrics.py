"""GET /metrics with a real Redis and a real OCR worker: the figures move when requests are sent,
whichever process wrote them, and only staff or the metrics token may read them."""

from __future__ import annotations

import re

import pytest

from tests.conftest import b64

pytestmark = [pytest.mark.integration]


def sample(text: str, name: str, **labels) -> float:
    """The value of one series in Prometheus's text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_the_metrics_move_with_requests_and_name_each_workers_model(
    make_user, api_client_for, ocr_worker, invoice_png, redis_server, settings, client
):
    from ocr_api.registry import active_model

    crm = api_client_for(make_user("crm"))
    staff = api_client_for(make_user("ops", is_staff=True))
    before = staff.get("/metrics").content.decode()
    for _ in range(2):  # a miss then a hit
        assert crm.post("/ocr/v1/recognize", {"image_base64": b64(invoice_png)}, format="json").status_code == 200
    assert crm.post("/ocr/v1/recognize", {"image_base64": "not base64!"}, format="json").status_code == 400
    response = staff.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    route = "ocr/v1/recognize"
    ok = sample(text, "ocr_http_requests_total", route=route, method="POST", status="200")
    assert ok - sample(before, "ocr_http_requests_total", route=route, method="POST", status="200") == 2
    assert sample(text, "ocr_http_requests_total", route=route, method="POST", status="400") >= 1
    assert sample(text, "ocr_request_seconds_count", route=route) >= 3
    assert sample(text, "ocr_request_seconds_bucket", route=route, le="+Inf") >= 3
    assert sample(text, "ocr_cache_total", result="miss") >= 1 and sample(text, "ocr_cache_total", result="hit") >= 1
    assert sample(text, "ocr_recognition_seconds_count") >= 1 and sample(text, "ocr_queue_wait_seconds_count") >= 1
    assert sample(text, "ocr_lines_total") >= 1 and sample(text, "ocr_batch_lines_count") >= 1
    assert sample(text, "ocr_workers_live") == 1 and sample(text, "ocr_queue_depth", queue="ocr") == 0
    assert sample(text, "ocr_worker_model_info", model=active_model().label) == 1
    assert sample(text, "ocr_worker_starts_total") >= 1

    # members and strangers may not read them; the scraper's token may
    assert crm.get("/metrics").status_code == 403
    assert client.get("/metrics").status_code == 403
    settings.OCR_METRICS_TOKEN = "s3cret-scrape"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape").status_code == 200


def test_a_failed_job_is_counted_by_its_error_code(make_user, api_client_for, ocr_worker, redis_server):
    from workers.metrics import Metrics

    staff = api_client_for(make_user("ops", is_staff=True))
    Metrics(redis_server).count("ocr_job_failures_total", {"code": "timeout"}, by=2)
    text = staff.get("/metrics").content.decode()
    assert sample(text, "ocr_job_failures_total", code="timeout") >= 2
