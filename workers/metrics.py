"""Operational metrics, kept in Redis so that every web process and every worker on every host
adds to the same figures, and ``GET /metrics`` on any web process shows them all (Prometheus's
text format, through ``prometheus_client``'s exposition).

Writers (``Metrics.count`` / ``Metrics.observe``) add to Redis hashes: one hash per counter, its
fields the label sets; one hash per histogram and label set, its fields the bucket counts, the
sum and the count. A metric that cannot be written (Redis down) is dropped with a debug log: a
figure is never worth a failed request.

Read at scrape time (``RedisCollector``): those hashes, the length of each Celery queue, and the
live OCR workers with the model each one serves.
"""

from __future__ import annotations

import json
import logging
import time

import redis

log = logging.getLogger(__name__)

PREFIX = "ocr:metrics"
MODELS_KEY = "ocr:worker-models"  # worker name -> the label of the model it serves
# seconds: a cache hit takes milliseconds, a page a second, a long PDF a minute
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
LINE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)  # lines in one batch
HISTOGRAM_BUCKETS = {"ocr_batch_lines": LINE_BUCKETS}
QUEUES = ("ocr", "training")

HELP = {
    "ocr_http_requests_total": "HTTP requests answered by the web, by route, method and status",
    "ocr_request_seconds": "Whole-request time of the API's routes, by route",
    "ocr_queue_wait_seconds": "Time from a recognition job's creation to a worker starting it",
    "ocr_recognition_seconds": "Time a worker spends recognising one job (reading the image to the result)",
    "ocr_cache_total": "Recognition result cache lookups by the web, by result (hit, miss)",
    "ocr_batch_lines": "Lines in one recognition batch",
    "ocr_lines_total": "Lines recognised by the workers",
    "ocr_lines_reread_total": "Lines re-read by the cascade's stronger recogniser",
    "ocr_job_failures_total": "Recognition jobs that failed, by error code",
    "ocr_worker_starts_total": "OCR worker processes started (restarts and recycles included), by worker",
    "ocr_worker_recycles_total": "OCR worker processes that asked to be replaced (OCR_WORKER_MAX_TASKS/_RSS_MB), by worker",
}


def _labels(labels: dict | None) -> str:
    return json.dumps(labels or {}, sort_keys=True, separators=(",", ":"))


class Metrics:
    """Adds to the shared figures through ``client`` (a Redis client or a pipeline)."""

    def __init__(self, client) -> None:
        self.client = client

    def count(self, name: str, labels: dict | None = None, by: int = 1) -> None:
        self._write(lambda c: c.hincrby(f"{PREFIX}:c:{name}", _labels(labels), by))

    def observe(self, name: str, value: float, labels: dict | None = None) -> None:
        buckets = HISTOGRAM_BUCKETS.get(name, BUCKETS)
        index = next((i for i, edge in enumerate(buckets) if value <= edge), len(buckets))
        key = f"{PREFIX}:h:{name}:{_labels(labels)}"

        def write(c) -> None:
            pipe = c if isinstance(c, redis.client.Pipeline) else c.pipeline(transaction=False)
            pipe.hincrby(key, str(index), 1)
            pipe.hincrbyfloat(key, "sum", float(value))
            pipe.hincrby(key, "count", 1)
            if pipe is not c:
                pipe.execute()

        self._write(write)

    def flush(self) -> None:
        """Send what was added through a pipeline (a no-op for a plain client)."""
        if isinstance(self.client, redis.client.Pipeline):
            self._write(lambda pipe: pipe.execute())

    def _write(self, action) -> None:
        try:
            action(self.client)
        except redis.RedisError as exc:
            log.debug("metric dropped: %s", exc)


def announce_model(client, worker: str, label: str) -> None:
    """The model ``worker`` serves now (shown as ``ocr_worker_model_info``)."""
    try:
        client.hset(MODELS_KEY, worker, json.dumps({"model": label, "at": time.time()}))
    except redis.RedisError as exc:
        log.debug("model announcement dropped: %s", exc)


class RedisCollector:
    """A ``prometheus_client`` collector over the figures in Redis, read at each scrape."""

    def __init__(self, client, heartbeat_ttl_s: float) -> None:
        self.client = client
        self.ttl = heartbeat_ttl_s

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield from self._counters(CounterMetricFamily)
        yield from self._histograms()
        depth = GaugeMetricFamily("ocr_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue], self.client.llen(queue))
        yield depth
        yield from self._workers(GaugeMetricFamily)

    def _counters(self, family):
        for key in sorted(self.client.scan_iter(f"{PREFIX}:c:*")):
            name = key.decode().split(":", 3)[3]
            rows = [(json.loads(k), int(v)) for k, v in self.client.hgetall(key).items()]
            names = sorted({label for labels, _ in rows for label in labels})
            metric = family(name.removesuffix("_total"), HELP.get(name, name), labels=names)
            for labels, value in rows:
                metric.add_metric([str(labels.get(n, "")) for n in names], value)
            yield metric

    def _histograms(self):
        from prometheus_client.core import HistogramMetricFamily

        by_name: dict[str, list] = {}
        for key in sorted(self.client.scan_iter(f"{PREFIX}:h:*")):
            _, _, _, name, labels = key.decode().split(":", 4)
            by_name.setdefault(name, []).append((json.loads(labels), self.client.hgetall(key)))
        for name, series in by_name.items():
            names = sorted({label for labels, _ in series for label in labels})
            metric = HistogramMetricFamily(name, HELP.get(name, name), labels=names)
            edges = HISTOGRAM_BUCKETS.get(name, BUCKETS)
            for labels, fields in series:
                counts = {k.decode(): v for k, v in fields.items()}
                cumulative, buckets = 0, []
                for i, edge in enumerate(edges):
                    cumulative += int(counts.get(str(i), 0))
                    buckets.append((repr(float(edge)), cumulative))
                buckets.append(("+Inf", int(counts.get("count", 0))))
                metric.add_metric([str(labels.get(n, "")) for n in names], buckets, float(counts.get("sum", 0.0)))
            yield metric

    def _workers(self, family):
        from .presence import live_workers

        live = live_workers(self.client, self.ttl)
        up = family("ocr_workers_live", "OCR workers whose heartbeat is fresh")
        up.add_metric([], len(live))
        yield up
        info = family(
            "ocr_worker_model_info", "The model each live OCR worker serves (value 1)", labels=["worker", "model"]
        )
        models = {k.decode(): json.loads(v) for k, v in self.client.hgetall(MODELS_KEY).items()}
        for worker in live:
            info.add_metric([worker, models.get(worker, {}).get("model", "")], 1)
        yield info
