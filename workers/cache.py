"""The result cache in Redis, under the keys of ``engine.cachekey``."""

from __future__ import annotations

import json

import redis


class ResultCache:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def get(self, key: str) -> dict | None:
        raw = self.client.get(key)
        return json.loads(raw) if raw else None

    def set(self, key: str, value: dict) -> None:
        if self.ttl_s > 0:
            self.client.set(key, json.dumps(value, ensure_ascii=False), ex=self.ttl_s)
