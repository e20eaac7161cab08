"""Webhooks: registration refuses internal addresses unless an admin allows them, deliveries are
signed, retried when the receiver fails, logged; a real OCR worker sends one when a job ends."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from ocr_api import webhooks
from ocr_api.models import Webhook, WebhookDelivery
from tests.api.test_recognize_api import assert_error
from tests.conftest import b64, png_bytes, render_lines

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


class Receiver:
    """An HTTP receiver on loopback that answers each POST with the next of ``codes`` (then 200)."""

    def __init__(self, codes=()):
        self.codes, self.got = list(codes), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                self.send_response(outer.codes.pop(0) if outer.codes else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ocr?source=test"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = []

    def make(codes=()):
        made.append(Receiver(codes))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://100.64.0.1/x",  # carrier-grade NAT
        "http://0.0.0.0/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fd00::1]/x",
        "ftp://93.184.216.34/x",
        "http://user:pw@93.184.216.34/x",
        "http:///x",
    ],
)
def test_internal_and_odd_urls_are_refused(url):
    with pytest.raises(webhooks.Refused):
        webhooks.vet(url)


def test_a_public_address_passes_and_an_admin_can_allow_a_network(settings):
    assert webhooks.vet("https://93.184.216.34/hook?a=1") == (
        "https",
        "93.184.216.34",
        443,
        "/hook?a=1",
        "93.184.216.34",
    )
    settings.OCR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert webhooks.vet("http://127.0.0.1:9/x")[4] == "127.0.0.1"
    with pytest.raises(webhooks.Refused):
        webhooks.vet("http://10.0.0.1/x")  # only the allowed network


def test_signatures_verify_and_tampering_or_age_fails():
    body = b'{"event": "job.succeeded"}'
    header = webhooks.sign("s3cret", body)
    assert webhooks.verify("s3cret", header, body)
    assert not webhooks.verify("s3cret", header, body + b" ")
    assert not webhooks.verify("other", header, body)
    old = webhooks.sign("s3cret", body, timestamp=int(time.time()) - 3600)
    assert not webhooks.verify("s3cret", old, body)


def test_the_documented_verification_snippet_accepts_our_signature():
    """docs/api.md shows receivers how to check a delivery: that code, run as written, accepts ours."""
    snippet = re.search(r"```python\n(# verify an OCR-Signature.*?)```", DOCS.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "docs/api.md", "exec"), namespace)
    body = b'{"event": "job.failed", "job": {}}'
    assert namespace["verify_ocr_signature"]("k3y", webhooks.sign("k3y", body), body)
    assert not namespace["verify_ocr_signature"]("k3y", webhooks.sign("k3y", body), body[:-1])


@pytest.mark.django_db
def test_registration_refuses_loopback_until_an_admin_allows_it(api_client_for, make_user, settings):
    client = api_client_for(make_user("erp"))
    assert_error(
        client.post("/ocr/v1/webhooks", {"url": "http://127.0.0.1:9000/x"}, format="json"), 400, "webhook_url_refused"
    )
    settings.OCR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    made = client.post("/ocr/v1/webhooks", {"url": "http://127.0.0.1:9000/x", "events": ["job.failed"]}, format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["events"] == ["job.failed"] and len(body["secret"]) == 64 and body["owner"] == "erp"
    assert client.get("/ocr/v1/webhooks").json()["results"][0]["id"] == body["id"]


@pytest.mark.django_db
def test_clients_see_their_own_webhooks_and_staff_see_all(api_client_for, make_user):
    a, b, staff = make_user("a"), make_user("b"), make_user("root", is_staff=True)
    hook = Webhook.objects.create(owner=a, url="http://93.184.216.34/", events=list(webhooks.EVENTS), secret="x")
    assert api_client_for(b).get("/ocr/v1/webhooks").json()["count"] == 0
    assert api_client_for(b).get(f"/ocr/v1/webhooks/{hook.pk}/deliveries").status_code == 404
    assert api_client_for(staff).get("/ocr/v1/webhooks").json()["count"] == 1
    assert api_client_for(a).delete(f"/ocr/v1/webhooks/{hook.pk}").status_code == 204


def _delivery(owner, url: str, secret: str = "k") -> WebhookDelivery:
    Webhook.objects.create(owner=owner, url=url, events=list(webhooks.EVENTS), secret=secret)
    job = {"job_id": "8d1c0000-0000-4000-8000-000000000001", "status": "succeeded", "text": ["合计"]}
    (pk,) = webhooks.job_ended(owner.pk, job["job_id"], job)
    return WebhookDelivery.objects.get(pk=pk)


@pytest.mark.django_db
def test_a_failed_delivery_is_retried_with_the_same_signed_body(make_user, receiver, settings):
    settings.OCR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    rx = receiver(codes=[500, 503])
    d = _delivery(make_user("erp"), rx.url, secret="abc")
    first = webhooks.attempt(d.pk)
    assert first == pytest.approx(settings.OCR_WEBHOOK_RETRY_BASE_S)
    second = webhooks.attempt(d.pk)
    assert second == pytest.approx(2 * settings.OCR_WEBHOOK_RETRY_BASE_S)  # backing off
    assert webhooks.attempt(d.pk) is None
    d.refresh_from_db()
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("delivered", 3, 200, "")
    assert len(rx.got) == 3 and len({body for _, body in rx.got}) == 1
    for headers, body in rx.got:
        assert webhooks.verify("abc", headers["OCR-Signature"], body)
        assert headers["OCR-Event"] == "job.succeeded" and headers["OCR-Delivery"] == str(d.pk)
    message = json.loads(rx.got[0][1])
    assert message["event"] == "job.succeeded" and message["job"]["text"] == ["合计"]


@pytest.mark.django_db
def test_retries_stop_after_the_retry_period(make_user, receiver, settings):
    settings.OCR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    rx = receiver(codes=[500] * 5)
    d = _delivery(make_user("erp"), rx.url)
    WebhookDelivery.objects.filter(pk=d.pk).update(created_at=timezone.now() - timedelta(hours=7))
    assert webhooks.attempt(d.pk) is None
    d.refresh_from_db()
    assert (d.status, d.last_error) == ("failed", "HTTP 500")


@pytest.mark.django_db
def test_a_delivery_never_reaches_a_private_address_without_the_allowance(make_user, receiver):
    """Checked again at delivery time (a webhook made before the allowance was withdrawn, or a
    name that now resolves inside): nothing is sent, the delivery fails with the reason."""
    rx = receiver()
    d = _delivery(make_user("erp"), rx.url)
    assert webhooks.attempt(d.pk) is None
    d.refresh_from_db()
    assert d.status == "failed" and d.last_error.startswith("refused:") and "127.0.0.1" in d.last_error
    assert rx.got == []


@pytest.mark.django_db
def test_overdue_deliveries_are_sent_once_by_the_sweep(make_user, monkeypatch):
    sent = []
    monkeypatch.setattr(webhooks, "send", lambda ids, countdown=0.0: sent.extend(ids))
    d = _delivery(make_user("erp"), "http://93.184.216.34/")
    WebhookDelivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    assert webhooks.resend_overdue() == 1 and sent == [d.pk]
    assert webhooks.resend_overdue() == 0  # moved on: not sent twice


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_posts_the_finished_job_and_retries_a_failing_receiver(
    make_user, api_client_for, worker_factory, receiver, settings
):
    settings.OCR_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    worker_factory(OCR_WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32", OCR_WEBHOOK_RETRY_BASE_S="0.5")
    rx = receiver(codes=[502])
    client = api_client_for(make_user("erp"))
    hook = client.post("/ocr/v1/webhooks", {"url": rx.url}, format="json").json()
    image = png_bytes(render_lines(["送货单 No. 20261207"]))
    job = client.post("/ocr/v1/recognize", {"image_base64": b64(image)}, format="json").json()
    assert job["status"] == "succeeded"
    deadline = time.monotonic() + 60
    while len(rx.got) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(rx.got) == 2, rx.got
    headers, body = rx.got[-1]
    assert webhooks.verify(hook["secret"], headers["OCR-Signature"], body)
    message = json.loads(body)
    assert message["event"] == "job.succeeded"
    assert message["job"]["job_id"] == job["job_id"] and message["job"]["text"] == job["text"]
    log = client.get(f"/ocr/v1/webhooks/{hook['id']}/deliveries").json()["results"]
    assert [(r["status"], r["attempts"], r["last_status_code"]) for r in log] == [("delivered", 2, 200)]


@pytest.mark.django_db
def test_a_cache_hit_is_announced_when_its_history_row_is_written(api_client_for, make_user, redis_server, monkeypatch):
    """A cache hit's job ends as it is answered; its delivery is made off the answer's path, when
    the history writer writes the job's row, from that row."""
    from ocr_api import history
    from tests.api.test_recognize_api import _prime_cache

    sent = []
    monkeypatch.setattr(webhooks, "send", lambda ids, countdown=0.0: sent.extend(ids))
    user = make_user("erp")
    Webhook.objects.create(owner=user, url="http://93.184.216.34/", events=list(webhooks.EVENTS), secret="k")
    image = png_bytes(render_lines(["已经识别过的发票"]))
    _prime_cache(image, [{"text": "已经识别过的发票", "confidence": 0.99, "box": [0, 0, 10, 10]}])
    answer = api_client_for(user).post("/ocr/v1/recognize", {"image_base64": b64(image)}, format="json").json()
    assert answer["cached"] is True
    history.drain(redis_server)
    (delivery,) = WebhookDelivery.objects.all()
    assert sent == [delivery.pk] and str(delivery.job_id) == answer["job_id"]
    message = json.loads(delivery.body)
    assert message["event"] == "job.succeeded" and message["job"]["text"] == ["已经识别过的发票"]
