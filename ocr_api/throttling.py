"""Per-user request throttling in Redis, one round trip per request.

At most OCR_THROTTLE_PER_MINUTE requests per user (per client address when anonymous) over a
sliding minute, estimated from two fixed one-minute counters: the current minute's count plus
the previous minute's, weighted by how much of it the sliding minute still covers. INCR of the
current counter, its expiry and the read of the previous one go in one pipeline. (DRF's
SimpleRateThrottle reads and writes a list of timestamps: two round trips and a pickled list
that grows with the rate.) The rate is read from settings when a request arrives; 0 turns it off.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

WINDOW_S = 60


class UserBurstThrottle(BaseThrottle):
    scope = "user"

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        limit = settings.OCR_THROTTLE_PER_MINUTE
        if not limit:
            return True
        from workers.config import redis_client

        now = time.time()
        window, into = divmod(now, WINDOW_S)
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        prefix = f"ocr:throttle:{self.scope}:{ident}:"
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(f"{prefix}{int(window)}")
        pipe.expire(f"{prefix}{int(window)}", 2 * WINDOW_S)
        pipe.get(f"{prefix}{int(window) - 1}")
        current, _, previous = pipe.execute()
        estimate = int(previous or 0) * (1 - into / WINDOW_S) + current
        if estimate <= limit:
            return True
        # When the weighted previous minute will have dropped enough for one more request.
        excess = estimate - limit
        self._wait = max(1.0, min(WINDOW_S - into, excess * WINDOW_S / max(int(previous or 0), 1)))
        return False

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait is not None else None
