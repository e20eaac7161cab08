"""Small Redis conventions between the web process and the OCR workers.

- Workers announce themselves in a sorted set scored by the time of their last heartbeat.
- A finished job pushes to a per-job list, so a waiting request wakes at once (BLPOP).
"""

from __future__ import annotations

import threading
import time

import redis

WORKERS_KEY = "ocr:workers"


def done_key(job_id: str) -> str:
    return f"ocr:done:{job_id}"


def notify_done(client: redis.Redis, job_id: str) -> None:
    pipe = client.pipeline()
    pipe.rpush(done_key(job_id), "1")
    pipe.expire(done_key(job_id), 120)
    pipe.execute()


def wait_done(client: redis.Redis, job_id: str, timeout: float) -> bool:
    if timeout <= 0:
        return False
    # BLPOP takes whole or fractional seconds; 0 would mean "forever".
    return client.blpop([done_key(job_id)], timeout=max(timeout, 0.01)) is not None


def live_workers(client: redis.Redis, ttl_s: float) -> list[str]:
    now = time.time()
    return [m.decode() for m in client.zrangebyscore(WORKERS_KEY, now - ttl_s, "+inf")]


class Heartbeat:
    """Refreshes this worker's entry every ttl/3 seconds from a daemon thread."""

    def __init__(self, client: redis.Redis, name: str, ttl_s: float) -> None:
        self.client = client
        self.name = name
        self.interval = max(0.5, ttl_s / 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ocr-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        now = time.time()
        pipe = self.client.pipeline()
        pipe.zadd(WORKERS_KEY, {self.name: now})
        pipe.zremrangebyscore(WORKERS_KEY, 0, now - 100 * self.interval)  # long-gone workers
        pipe.execute()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.client.zrem(WORKERS_KEY, self.name)
        except redis.RedisError:
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except redis.RedisError:
                pass
