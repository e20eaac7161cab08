"""Small Redis conventions between the web process and the OCR workers.

- Workers announce themselves in a sorted set scored by the time of their last heartbeat.
- So does each worker incarnation ("hostname#boot-id"): a job records the incarnation that
  claimed it, and a worker restarted under the same name is a new incarnation, so the jobs
  its previous life held are seen as orphaned.
- A finished job pushes its outcome to a per-job list, so a waiting request wakes at once (BLPOP)
  and answers without reading the row again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

import redis

WORKERS_KEY = "ocr:workers"
INSTANCES_KEY = "ocr:worker-instances"


def new_instance_name(hostname: str | None = None) -> str:
    host = hostname or f"{socket.gethostname()}:{os.getpid()}"
    return f"{host}#{uuid.uuid4().hex[:12]}"


def done_key(job_id: str) -> str:
    return f"ocr:done:{job_id}"


def notify_done(client, job_id: str, outcome: dict | None = None) -> None:
    """Wake the request waiting for this job. ``outcome`` (the fields of the finished row) spares it
    reading the row again; without one it reads the row. ``client`` may be a pipeline, which the
    caller then executes."""
    message = json.dumps(outcome, ensure_ascii=False) if outcome is not None else "1"
    if isinstance(client, redis.client.Pipeline):
        client.rpush(done_key(job_id), message)
        client.expire(done_key(job_id), 120)
        return
    pipe = client.pipeline(transaction=False)
    pipe.rpush(done_key(job_id), message)
    pipe.expire(done_key(job_id), 120)
    pipe.execute()


def wait_done(client: redis.Redis, job_id: str, timeout: float) -> dict | bool:
    """False when the wait ran out; the outcome the worker sent, or True when it sent none."""
    if timeout <= 0:
        return False
    # BLPOP takes whole or fractional seconds; 0 would mean "forever".
    popped = client.blpop([done_key(job_id)], timeout=max(timeout, 0.01))
    if popped is None:
        return False
    try:
        outcome = json.loads(popped[1])
    except ValueError:
        return True
    return outcome if isinstance(outcome, dict) else True


def live_workers(client: redis.Redis, ttl_s: float) -> list[str]:
    now = time.time()
    return [m.decode() for m in client.zrangebyscore(WORKERS_KEY, now - ttl_s, "+inf")]


def live_instances(client: redis.Redis, ttl_s: float) -> set[str]:
    now = time.time()
    return {m.decode() for m in client.zrangebyscore(INSTANCES_KEY, now - ttl_s, "+inf")}


def instance_alive(client: redis.Redis, instance: str, ttl_s: float) -> bool:
    score = client.zscore(INSTANCES_KEY, instance)
    return score is not None and score >= time.time() - ttl_s


class Heartbeat:
    """Refreshes this worker's entries (its name and its incarnation) every ttl/3 seconds from a daemon thread."""

    def __init__(self, client: redis.Redis, name: str, ttl_s: float, instance: str | None = None) -> None:
        self.client = client
        self.name = name
        self.instance = instance
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
        if self.instance:
            pipe.zadd(INSTANCES_KEY, {self.instance: now})
            pipe.zremrangebyscore(INSTANCES_KEY, 0, now - 100 * self.interval)
        pipe.execute()

    def stop(self, keep_name: bool = False) -> None:
        self._stop.set()
        try:
            if not keep_name:
                self.client.zrem(WORKERS_KEY, self.name)
            if self.instance:
                self.client.zrem(INSTANCES_KEY, self.instance)
        except redis.RedisError:
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except redis.RedisError:
                pass
