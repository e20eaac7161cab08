"""Webhooks: when a client's job ends, the job object goes to the client's callback URL, signed.

- **Events**: ``job.succeeded`` and ``job.failed``, for every job of the webhook's owner (cache hits
  included: their job ends as it is answered, and is announced when its history row is written,
  off the answer's path). The body is fixed when the job ends
  (``{"event", "delivery_id", "created_at", "job"}``) and is the same bytes on every attempt.
- **Signature**: ``OCR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the
  webhook's secret>``, plus ``OCR-Event`` and ``OCR-Delivery``; ``verify`` is the check a receiver
  makes (docs/api.md has the same few lines for clients).
- **Retries**: a non-2xx answer, a timeout or a refused connection is tried again after
  OCR_WEBHOOK_RETRY_BASE_S, doubling up to OCR_WEBHOOK_RETRY_MAX_S apart, until
  OCR_WEBHOOK_RETRY_FOR_S after the job ended; then the delivery is ``failed``. Every attempt is in
  the delivery log (``WebhookDelivery``). Redirects are not followed.
- **No SSRF**: a callback's host must resolve only to public addresses (not loopback, private,
  link-local, shared, multicast or reserved ones) unless an admin allows the network
  (OCR_WEBHOOK_ALLOWED_NETWORKS). It is checked when the webhook is registered and again at every
  attempt, and the connection goes to the address that was checked (no second lookup a
  rebinding DNS server could answer differently).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from .models import OcrJob, Webhook, WebhookDelivery

EVENTS = ("job.succeeded", "job.failed")
SIGNATURE_HEADER = "OCR-Signature"
DELIVER = "ocr_api.recognition.deliver_webhook"  # the task, on the "ocr" queue, sent by name
log = logging.getLogger(__name__)


class Refused(ValueError):
    """A callback URL the platform will not call."""


def new_secret() -> str:
    return secrets.token_hex(32)


def _allowed(ip) -> bool:
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(net, strict=False) for net in settings.OCR_WEBHOOK_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def vet(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path with query, the address to connect to) of a URL the platform may
    call, else Refused saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must be http:// or https://")
    if parts.username or parts.password:
        raise Refused("the URL must not carry a user name or password")
    if not parts.hostname:
        raise Refused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the URL's port is not a number") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Refused(f"{parts.hostname} does not resolve") from None
    addresses = sorted({info[4][0] for info in infos})
    refused = [a for a in addresses if not _allowed(ipaddress.ip_address(a.split("%", 1)[0]))]
    if refused:
        raise Refused(f"{parts.hostname} resolves to {', '.join(refused)}, not a public address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path, addresses[0]


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver checks: the signature is ours over this body, and not older than ``tolerance_s``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the address that was vetted (the Host header still names the URL's host)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the address that was vetted, the certificate checked for the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to ``url`` at its vetted address; the answer's status (Refused, OSError)."""
    scheme, host, port, path, address = vet(url)
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = kind(host, port, address, settings.OCR_WEBHOOK_TIMEOUT_S)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        conn.close()


def job_ended(owner_id: int, job_id, payload: dict | None = None) -> list[int]:
    """Make the deliveries of a job that ended for every active webhook of its owner that wants
    the event (``payload``: its job object, read from its row when not given); the ids to send."""
    hooks = list(Webhook.objects.filter(owner_id=owner_id, active=True))
    if not hooks:
        return []
    if payload is None:
        from .serializers import job_payload

        payload = job_payload(OcrJob.objects.select_related("owner").get(pk=job_id))
    event = "job.succeeded" if payload.get("status") == OcrJob.Status.SUCCEEDED else "job.failed"
    ids = []
    for hook in hooks:
        if event not in (hook.events or EVENTS):
            continue
        delivery = WebhookDelivery.objects.create(webhook=hook, event=event, job_id=job_id, body="")
        message = {"event": event, "delivery_id": delivery.pk, "created_at": delivery.created_at.isoformat()}
        delivery.body = json.dumps({**message, "job": payload}, ensure_ascii=False)
        delivery.save(update_fields=["body"])
        ids.append(delivery.pk)
    return ids


def announce(ended: list[tuple[int, object]]) -> None:
    """Make and send the deliveries of jobs that ended, as (owner id, job id) pairs: one query finds
    which owners have an active webhook, only their jobs go further. A failure is logged, never
    raised: the jobs' end stands, and the recovery sweep sends the deliveries already made."""
    try:
        owners = {owner for owner, _ in ended}
        hooked = set(Webhook.objects.filter(owner_id__in=owners, active=True).values_list("owner_id", flat=True))
        for owner, job_id in ended:
            if owner in hooked:
                send(job_ended(owner, job_id))
    except Exception:
        log.exception("webhooks of %d ended job(s) not sent", len(ended))


def send(delivery_ids: list[int], countdown: float = 0.0) -> None:
    from celery import current_app

    for pk in delivery_ids:
        current_app.send_task(DELIVER, args=[pk], countdown=countdown or None, retry=False)


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``."""
    return min(settings.OCR_WEBHOOK_RETRY_MAX_S, settings.OCR_WEBHOOK_RETRY_BASE_S * 2 ** max(0, attempts - 1))


def attempt(delivery_id: int) -> float | None:
    """One attempt at a pending delivery, recorded in its row. Seconds until the next attempt when
    it should be tried again, else None (delivered, given up, or another attempt has it)."""
    d = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if d is None or d.status != WebhookDelivery.Status.PENDING:
        return None
    # claim this attempt: of two senders (a retry and the recovery sweep) one goes on
    claimed = WebhookDelivery.objects.filter(pk=d.pk, status=d.status, attempts=d.attempts).update(
        attempts=d.attempts + 1
    )
    if claimed != 1:
        return None
    body = d.body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ocr-platform-webhooks/1",
        SIGNATURE_HEADER: sign(d.webhook.secret, body),
        "OCR-Event": d.event,
        "OCR-Delivery": str(d.pk),
    }
    code, error, refused = None, "", False
    try:
        code = post(d.webhook.url, body, headers)
    except Refused as exc:
        error, refused = f"refused: {exc}", True
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    now = timezone.now()
    fields = {"last_status_code": code, "last_error": error if code is None else ""}
    if code is not None and 200 <= code < 300:
        WebhookDelivery.objects.filter(pk=d.pk).update(status="delivered", delivered_at=now, **fields)
        return None
    if code is not None:
        fields["last_error"] = f"HTTP {code}"
    delay = backoff(d.attempts + 1)
    if refused or (now - d.created_at).total_seconds() + delay > settings.OCR_WEBHOOK_RETRY_FOR_S:
        WebhookDelivery.objects.filter(pk=d.pk).update(status="failed", **fields)
        return None
    WebhookDelivery.objects.filter(pk=d.pk).update(next_attempt_at=now + timedelta(seconds=delay), **fields)
    return delay


def resend_overdue(grace_s: float = 60.0) -> int:
    """Send again the pending deliveries whose next attempt is over ``grace_s`` late (a worker that
    held its retry died); each is moved on first, so two sweeps send it once."""
    now = timezone.now()
    overdue = WebhookDelivery.objects.filter(status="pending", next_attempt_at__lt=now - timedelta(seconds=grace_s))
    sent = []
    for pk, due in overdue.values_list("pk", "next_attempt_at")[:500]:
        later = now + timedelta(seconds=settings.OCR_WEBHOOK_RETRY_BASE_S)
        if WebhookDelivery.objects.filter(pk=pk, next_attempt_at=due).update(next_attempt_at=later) == 1:
            sent.append(pk)
    send(sent)
    return len(sent)
