"""Per-process state of an OCR worker: the resident model, the batcher, Redis, the heartbeat.

The model follows the registry: a watcher thread looks for a newly promoted
version every OCR_MODEL_POLL_S seconds, loads it beside the old one and swaps
the reference; batches already running finish on the model they started with.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings
from django.db import close_old_connections

from .engine.batcher import LineBatcher
from .engine.beam import BeamSettings
from .engine.decoder import DecoderConfig, LineDecoder, decoder_signature
from .engine.lm import CharLM
from .engine.cachekey import preprocessing_signature
from .cache import ResultCache
from .engine.decode import ImageLimits
from .engine.detect import DirectionClassifier, PageReader, TextDetector
from .engine.inference import Recognizer, file_sha256

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=30, socket_connect_timeout=5)


def image_limits() -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.OCR_MAX_IMAGE_BYTES, max_pixels=settings.OCR_MAX_PIXELS, min_side=settings.OCR_MIN_SIDE,
        max_pages=settings.OCR_MAX_PDF_PAGES,
    )


@lru_cache(maxsize=1)
def page_reader() -> PageReader | None:
    """The detector (and 180° classifier) of this process, or None when OCR_DETECTOR_MODEL is empty."""
    if not settings.OCR_DETECTOR_MODEL:
        return None
    detector = TextDetector(settings.OCR_DETECTOR_MODEL, threads=settings.OCR_ORT_THREADS)
    classifier = (DirectionClassifier(settings.OCR_DIRECTION_MODEL, threads=settings.OCR_ORT_THREADS)
                  if settings.OCR_DIRECTION_MODEL else None)
    reader = PageReader(detector, classifier)
    log.info("page reader: %s", reader.label)
    return reader


def decoder_config() -> DecoderConfig:
    return DecoderConfig(
        mode=settings.OCR_DECODER, doubt=settings.OCR_BEAM_DOUBT,
        beam=BeamSettings(width=settings.OCR_BEAM_WIDTH, alpha=settings.OCR_LM_ALPHA, beta=settings.OCR_LM_BETA,
                          bonus=settings.OCR_HOTWORD_BONUS),
    )


@lru_cache(maxsize=1)
def _lm_sha256() -> str:
    path = settings.OCR_LM_MODEL
    return file_sha256(path) if path and Path(path).is_file() else ""


@lru_cache(maxsize=1)
def line_decoder() -> LineDecoder:
    """The decoder of this process, with the character LM when OCR_LM_MODEL names a file (without it
    the beam runs on the recogniser alone, for hotwords)."""
    lm = CharLM.load(settings.OCR_LM_MODEL) if _lm_sha256() else None
    if settings.OCR_LM_MODEL and lm is None:
        log.warning("no language model at %s: decoding without one", settings.OCR_LM_MODEL)
    decoder = LineDecoder(decoder_config(), lm)
    log.info("decoder: %s", decoder.signature)
    return decoder


@lru_cache(maxsize=1)
def pipeline_signature() -> str:
    """The preprocessing and decoding part of the cache key, the same in the web and the workers: the
    pipeline version, binarisation, the first 8 hex digits of the detector's and the direction
    classifier's files, and the decoder's settings and LM file (files read once per process), so
    changing any of them never serves stale text."""
    decoding = decoder_signature(decoder_config(), _lm_sha256()) + cascade_signature()
    if not settings.OCR_DETECTOR_MODEL:
        return f"{preprocessing_signature(settings.OCR_BINARIZE)}-{decoding}"
    files = [p for p in (settings.OCR_DETECTOR_MODEL, settings.OCR_DIRECTION_MODEL) if p]
    page_models = "+".join(file_sha256(p)[:8] for p in files)
    return f"{preprocessing_signature(settings.OCR_BINARIZE, page_models)}-{decoding}"


def cascade_on() -> bool:
    path = settings.OCR_CASCADE_MODEL
    return bool(path) and settings.OCR_CASCADE_BELOW > 0 and Path(path).is_file()


@lru_cache(maxsize=1)
def cascade_signature() -> str:
    """The cascade's part of the pipeline signature: its model file (8 hex digits) and threshold."""
    if not cascade_on():
        return ""
    return f"-c{file_sha256(settings.OCR_CASCADE_MODEL)[:8]}-{settings.OCR_CASCADE_BELOW:g}"


@lru_cache(maxsize=1)
def cascade_recognizer() -> Recognizer:
    rec = Recognizer(settings.OCR_CASCADE_MODEL, threads=settings.OCR_ORT_THREADS)
    log.info("cascade: lines below %.2f re-read by %s", settings.OCR_CASCADE_BELOW, rec.label)
    return rec


def result_cache() -> ResultCache:
    return ResultCache(redis_client(), settings.OCR_CACHE_TTL_S)


class ModelHolder:
    def __init__(self, poll_s: float, threads: int) -> None:
        self.poll_s = poll_s
        self.threads = threads
        self._model: Recognizer | None = None
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def current(self) -> Recognizer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load_active()
                    self._start_watcher()
        return self._model

    def _load_active(self) -> Recognizer:
        from ocr_api.registry import active_model

        version = active_model()
        log.info("loading model %s from %s", version.label, version.file_path)
        return Recognizer(version.file_path, threads=self.threads, label=version.label)

    def refresh(self) -> bool:
        """Swap to the registry's active model if it changed. True when a swap happened."""
        from ocr_api.registry import active_model

        close_old_connections()
        version = active_model()
        if self._model is not None and self._model.label == version.label:
            return False
        new = Recognizer(version.file_path, threads=self.threads, label=version.label)
        old, self._model = self._model, new
        log.info("model switched from %s to %s", old.label if old else None, new.label)
        return True

    def _start_watcher(self) -> None:
        def loop() -> None:
            stop = threading.Event()
            while not stop.wait(self.poll_s):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - keep serving the current model
                    log.exception("model refresh failed; keeping %s", self._model.label if self._model else None)

        self._watcher = threading.Thread(target=loop, name="model-watcher", daemon=True)
        self._watcher.start()


@lru_cache(maxsize=1)
def model_holder() -> ModelHolder:
    return ModelHolder(poll_s=settings.OCR_MODEL_POLL_S, threads=settings.OCR_ORT_THREADS)


@lru_cache(maxsize=1)
def batcher() -> LineBatcher:
    return LineBatcher(
        model_holder().current,
        max_batch=settings.OCR_BATCH_MAX_SIZE,
        max_wait_ms=settings.OCR_BATCH_MAX_WAIT_MS,
        max_width_ratio=settings.OCR_BATCH_MAX_WIDTH_RATIO,
        binarize=settings.OCR_BINARIZE,
        decoder=line_decoder(),
        cascade=cascade_recognizer if cascade_on() else None,
        cascade_below=settings.OCR_CASCADE_BELOW,
    )
