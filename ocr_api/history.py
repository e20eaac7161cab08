"""History rows of cache hits, written after the answer instead of before it.

A cache hit is answered from one Redis call: a Lua script that reads the cached result and, when
there is one, appends the request's history record (with the cached result beside it) to the list
``ocr:history-pending``, atomically. No database row is written while the client waits.

The list is turned into ``OcrJob`` rows (``cached=True``, succeeded) in batches by a
``HistoryWriter`` thread in every gunicorn worker process (started by ``post_worker_init`` in
``ocrsite/gunicorn_conf.py``); records are taken with LPOP, so each goes to one writer. A process
that runs no writer (the test client, ``runserver``) writes its own pending records once the
response has been sent (``request_finished``). The records are in Redis, so a web process that
dies after answering loses none: another writer takes them. A writer that dies between taking a
batch and committing it loses that batch (at most ``BATCH`` history rows, never a result).

A hit's row names the stored image file of that content; when the file is gone (its last job was
deleted, or the retention period cleared it) the row keeps the text and has no image. Rows are
written before the file is checked, as ``ocr_api.images`` requires.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import datetime

import redis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished
from django.db import close_old_connections, transaction
from django.dispatch import receiver

log = logging.getLogger(__name__)

PENDING_KEY = "ocr:history-pending"
BATCH = 200

# KEYS[1] the cache key, KEYS[2] the pending list, KEYS[3] the OCR workers' heartbeat set;
# ARGV[1] the record (JSON), ARGV[2] the oldest heartbeat that counts as alive. Both record and
# cached value are JSON, so their concatenation is JSON too; the cached value is passed through
# unparsed. A miss also counts the live workers, which it needs next: still one round trip.
_HIT_SCRIPT = """
local cached = redis.call('GET', KEYS[1])
if cached then
  redis.call('RPUSH', KEYS[2], '{"r":' .. ARGV[1] .. ',"v":' .. cached .. '}')
  return {cached, 1}
end
return {false, redis.call('ZCOUNT', KEYS[3], ARGV[2], '+inf')}
"""

_local = threading.local()
_writers: list[HistoryWriter] = []
_script_lock = threading.Lock()
_scripts: dict[int, object] = {}


def _hit_script(client: redis.Redis):
    with _script_lock:
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_HIT_SCRIPT)
        return script


def lookup_and_record(client: redis.Redis, key: str, record: dict, ttl_s: float) -> tuple[dict | None, int]:
    """(the cached result under ``key`` or None, the number of OCR workers with a heartbeat in the
    last ``ttl_s`` seconds). On a hit the record is queued for the history in the same round trip
    (and the workers are not counted: 1)."""
    from workers.presence import WORKERS_KEY

    raw, live = _hit_script(client)(
        keys=[key, PENDING_KEY, WORKERS_KEY], args=[json.dumps(record, ensure_ascii=False), time.time() - ttl_s]
    )
    if raw is None:
        return None, int(live)
    _local.pending = True
    return json.loads(raw), 1


def hit_record(
    *,
    job_id: uuid.UUID,
    owner_id: int,
    created_at: datetime,
    image_name: str,
    sha256: str,
    image_format: str,
    filename: str,
    size_bytes: int,
    width: int,
    height: int,
    cache_key: str,
    model_label: str,
    time_cost: float,
    hotwords: list[str] | None = None,
    batch_id: uuid.UUID | None = None,
) -> dict:
    return {
        **({"hotwords": hotwords} if hotwords else {}),
        **({"batch": str(batch_id)} if batch_id else {}),
        "id": str(job_id),
        "owner": owner_id,
        "at": created_at.isoformat(),
        "image_name": image_name,
        "sha256": sha256,
        "format": image_format,
        "filename": filename,
        "size": size_bytes,
        "width": width,
        "height": height,
        "key": cache_key,
        "model": model_label,
        "cost": time_cost,
    }


def _row(r: dict, v: dict, label: str, version_id: int | None):
    """The job row of one pending record (``r``: the request, ``v``: the cached answer)."""
    from .models import OcrJob

    at = datetime.fromisoformat(r["at"])
    lines = v.get("lines") or []
    return OcrJob(
        id=uuid.UUID(r["id"]),
        owner_id=r["owner"],
        status=OcrJob.Status.SUCCEEDED,
        cached=True,
        image_name=r["image_name"],
        image_sha256=r["sha256"],
        image_format=r["format"],
        filename=r["filename"],
        width=v.get("width") or r["width"],
        height=v.get("height") or r["height"],
        size_bytes=r["size"],
        cache_key=r["key"],
        model_version_id=version_id,
        model_label=label,
        hotwords=r.get("hotwords") or [],
        batch_id=uuid.UUID(r["batch"]) if r.get("batch") else None,
        lines=lines,
        tables=v.get("tables") or [],
        text_content="\n".join(line["text"] for line in lines),
        queued_at=at,
        finished_at=at,
        time_cost=r.get("cost"),
    )


def write(raw_records: list[bytes | str]) -> int:
    """Insert the rows of these pending records. Returns how many rows were written (records whose
    owner is gone are dropped)."""
    from . import webhooks
    from .images import image_storage
    from .models import ModelVersion, OcrJob

    entries = [json.loads(raw) for raw in raw_records]
    owners = {e["r"]["owner"] for e in entries}
    live_owners = set(get_user_model().objects.filter(pk__in=owners).values_list("pk", flat=True))
    versions: dict[str, int | None] = {}
    rows = []
    for entry in entries:
        r, v = entry["r"], entry["v"]
        if r["owner"] not in live_owners:
            continue
        label = v.get("model_label") or r["model"]
        if label not in versions:
            sha_prefix = label.rsplit("@", 1)[-1]
            versions[label] = (
                ModelVersion.objects.filter(sha256__startswith=sha_prefix).values_list("pk", flat=True).first()
            )
        rows.append(_row(r, v, label, versions[label]))
    if not rows:
        return 0
    with transaction.atomic():
        OcrJob.objects.bulk_create(rows, ignore_conflicts=True)  # a record written twice is one row
        # auto_now_add would stamp the insert time; the history is ordered by the request's time.
        for row in rows:
            OcrJob.objects.filter(pk=row.pk).update(created_at=row.queued_at)
    storage = image_storage()
    gone = [n for n in {row.image_name for row in rows if row.image_name} if not storage.exists(n)]
    if gone:
        OcrJob.objects.filter(pk__in=[row.pk for row in rows], image_name__in=gone).update(image_name="")
    webhooks.announce([(row.owner_id, row.pk) for row in rows])  # each of these jobs ended as it was answered
    return len(rows)


def drain(client: redis.Redis, limit: int = BATCH) -> int:
    """Write up to ``limit`` pending records now. Returns the rows written."""
    raw = client.lpop(PENDING_KEY, limit)
    if not raw:
        return 0
    try:
        return write(raw)
    except Exception:
        client.rpush(PENDING_KEY, *raw)  # the next drain tries again
        raise


class HistoryWriter:
    """Writes pending history records from a daemon thread, a batch at a time."""

    def __init__(self, client: redis.Redis, poll_s: float = 1.0) -> None:
        self.client = client
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ocr-history-writer", daemon=True)

    def start(self) -> HistoryWriter:
        _writers.append(self)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self in _writers:
            _writers.remove(self)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.client.blpop([PENDING_KEY], timeout=self.poll_s)
                if first is None:
                    continue
                close_old_connections()
                rest = self.client.lpop(PENDING_KEY, BATCH - 1) or []
                raw = [first[1], *rest]
                try:
                    write(raw)
                except Exception:
                    self.client.rpush(PENDING_KEY, *raw)
                    raise
            except Exception:
                log.exception("writing cache hits to the history failed; retrying")
                self._stop.wait(1.0)


def writer_running() -> bool:
    return any(w._thread.is_alive() for w in _writers)


@receiver(request_finished)
def _write_after_response(**kwargs) -> None:
    """Without a writer thread in this process, the request that queued a record writes it once
    its response has gone out."""
    if not getattr(_local, "pending", False):
        return
    _local.pending = False
    if writer_running():
        return
    from workers.config import redis_client

    try:
        drain(redis_client())
    except Exception:
        log.exception("writing cache hits to the history failed; they stay queued")
