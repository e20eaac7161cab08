"""The result cache in Redis: same bytes + same model + same preprocessing = same answer."""

from __future__ import annotations

import json

import redis

from .pipeline import PIPELINE_VERSION


def preprocessing_signature(binarize: bool) -> str:
    return f"p{PIPELINE_VERSION}-bin{int(binarize)}"


def cache_key(image_sha256: str, model_label: str, signature: str) -> str:
    return f"ocr:result:{image_sha256}:{model_label}:{signature}"


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
