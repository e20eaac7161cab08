"""gunicorn settings for the web process, used by `make run` and the web Docker image.

    gunicorn -c python:ocrsite.gunicorn_conf ocrsite.wsgi:application --bind HOST:PORT

Sizing. A request spends almost all its time waiting: on Redis for the OCR worker's
answer (BLPOP, up to OCR_SYNC_TIMEOUT_S), on the database, on the socket. The web
process's own CPU work (base64, reading the image header, one row) is small. So
concurrency comes from threads (gthread), and processes only spread the Python work
over cores: one process per core, at least 2 (one can restart while the other
serves) and at most 4 (the OCR workers need the rest of the machine). 16 threads each
let 2 processes hold 32 waiting requests on a 2-core machine without queueing.
OCR_WEB_WORKERS and OCR_WEB_THREADS override both.

History. Each worker process runs a thread that writes the history rows of cache hits, which
are answered before their row exists (ocr_api/history.py).

Logs. The access log uses gunicorn's default format (client, time, request line,
status, size, referer, user agent): no request header but those two is written, so
the Authorization header with the API token never reaches a log. API tokens travel
only in that header, never in the URL.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise SystemExit(f"{name}={value} must be at least 1")
    return value


def default_workers(cores: int | None) -> int:
    return max(2, min(cores or 1, 4))


worker_class = "gthread"
# Each worker process is replaced after about this many requests (10 % jitter, so two are not
# replaced at once): whatever a long-lived Python process keeps growing (heap fragmentation, caches)
# is given back, while the other processes serve (docs/running.md, "Memory").
max_requests = _env_int("OCR_WEB_MAX_REQUESTS", 2000)
max_requests_jitter = max(1, max_requests // 10)
workers = _env_int("OCR_WEB_WORKERS", default_workers(os.cpu_count()))
threads = _env_int("OCR_WEB_THREADS", 16)
# gthread workers heartbeat from their main thread, so a request waiting 20 s for the OCR
# worker does not trip this; it only catches a worker process that hangs as a whole.
timeout = 60
# On SIGTERM, requests already waiting for a result get this long to finish (> OCR_SYNC_TIMEOUT_S).
graceful_timeout = 25
keepalive = 5
accesslog = "-"
errorlog = "-"
# Headers this long or this many are not from our clients (an image goes in the body).
limit_request_field_size = 8190
limit_request_fields = 100


def post_worker_init(worker) -> None:
    """Django is loaded in this worker process now: start its writer of cache-hit history rows."""
    from ocr_api.history import HistoryWriter
    from workers.config import redis_client

    HistoryWriter(redis_client()).start()
