"""What the web and the OCR workers must agree on, light enough for the web process (no ONNX
Runtime, no OpenCV): the Redis client, the image limits, the decoder's settings and the pipeline
signature that goes into every cache key, all read from Django's settings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings

from engine.beam import BeamSettings
from engine.cachekey import preprocessing_signature
from engine.decoder import DecoderConfig, decoder_signature
from engine.limits import ImageLimits
from engine.modelfile import file_sha256

from .cache import ResultCache


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30, socket_connect_timeout=5)


def image_limits() -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.OCR_MAX_IMAGE_BYTES,
        max_pixels=settings.OCR_MAX_PIXELS,
        min_side=settings.OCR_MIN_SIDE,
        max_pages=settings.OCR_MAX_PDF_PAGES,
    )


def result_cache() -> ResultCache:
    return ResultCache(redis_client(), settings.OCR_CACHE_TTL_S)


def decoder_config() -> DecoderConfig:
    return DecoderConfig(
        mode=settings.OCR_DECODER,
        doubt=settings.OCR_BEAM_DOUBT,
        beam=BeamSettings(
            width=settings.OCR_BEAM_WIDTH,
            alpha=settings.OCR_LM_ALPHA,
            beta=settings.OCR_LM_BETA,
            bonus=settings.OCR_HOTWORD_BONUS,
        ),
    )


@lru_cache(maxsize=1)
def lm_sha256() -> str:
    path = settings.OCR_LM_MODEL
    return file_sha256(path) if path and Path(path).is_file() else ""


@lru_cache(maxsize=1)
def pipeline_signature() -> str:
    """The preprocessing and decoding part of the cache key, the same in the web and the workers: the
    pipeline version, binarisation and sharpening, the first 8 hex digits of the detector's and the direction
    classifier's files, and the decoder's settings and LM file (files read once per process), so
    changing any of them never serves stale text."""
    decoding = decoder_signature(decoder_config(), lm_sha256()) + cascade_signature()
    page_models = ""  # no detector: no page models in the key
    if settings.OCR_DETECTOR_MODEL:
        files = [p for p in (settings.OCR_DETECTOR_MODEL, settings.OCR_DIRECTION_MODEL) if p]
        page_models = "+".join(file_sha256(p)[:8] for p in files)
    return f"{preprocessing_signature(settings.OCR_BINARIZE, page_models, settings.OCR_SHARPEN)}-{decoding}"


def cascade_on() -> bool:
    path = settings.OCR_CASCADE_MODEL
    return bool(path) and settings.OCR_CASCADE_BELOW > 0 and Path(path).is_file()


@lru_cache(maxsize=1)
def cascade_signature() -> str:
    """The cascade's part of the pipeline signature: its model file (8 hex digits) and threshold."""
    if not cascade_on():
        return ""
    return f"-c{file_sha256(settings.OCR_CASCADE_MODEL)[:8]}-{settings.OCR_CASCADE_BELOW:g}"
