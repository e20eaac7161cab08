import time

import pytest

from workers.presence import WORKERS_KEY


@pytest.fixture
def fake_worker_heartbeat(redis_server):
    """A worker that says it is alive but never takes a job (nothing consumes the queue)."""
    redis_server.zadd(WORKERS_KEY, {"ghost@test": time.time() + 3600})
