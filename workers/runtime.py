"""Per-process state of an OCR worker: the detector, the decoder, the cascade's recogniser, the
resident model and the batcher. What the web shares with the workers is in ``config.py``.

The model follows the registry: ``ModelHolder`` asks its ``resolve`` callable (the Django app
wires in its registry) for the active model every OCR_MODEL_POLL_S seconds, loads a newly
promoted one beside the old one and swaps the reference; batches already running finish on the
model they started with. Nothing here imports a Django app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import lru_cache

from django.conf import settings

from engine.batcher import LineBatcher
from engine.decoder import LineDecoder
from engine.detect import DirectionClassifier, PageReader, TextDetector
from engine.inference import Recognizer
from engine.lm import CharLM

from .config import cascade_on, decoder_config, lm_sha256

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def page_reader() -> PageReader | None:
    """The detector (and 180° classifier) of this process, or None when OCR_DETECTOR_MODEL is empty."""
    if not settings.OCR_DETECTOR_MODEL:
        return None
    detector = TextDetector(settings.OCR_DETECTOR_MODEL, threads=settings.OCR_ORT_THREADS)
    classifier = (
        DirectionClassifier(settings.OCR_DIRECTION_MODEL, threads=settings.OCR_ORT_THREADS)
        if settings.OCR_DIRECTION_MODEL
        else None
    )
    reader = PageReader(detector, classifier)
    log.info("page reader: %s", reader.label)
    return reader


@lru_cache(maxsize=1)
def line_decoder() -> LineDecoder:
    """The decoder of this process, with the character LM when OCR_LM_MODEL names a file (without it
    the beam runs on the recogniser alone, for hotwords)."""
    lm = CharLM.load(settings.OCR_LM_MODEL) if lm_sha256() else None
    if settings.OCR_LM_MODEL and lm is None:
        log.warning("no language model at %s: decoding without one", settings.OCR_LM_MODEL)
    decoder = LineDecoder(decoder_config(), lm)
    log.info("decoder: %s", decoder.signature)
    return decoder


@lru_cache(maxsize=1)
def cascade_recognizer() -> Recognizer:
    rec = Recognizer(settings.OCR_CASCADE_MODEL, threads=settings.OCR_ORT_THREADS)
    log.info("cascade: lines below %.2f re-read by %s", settings.OCR_CASCADE_BELOW, rec.label)
    return rec


class ModelHolder:
    """The resident recogniser. ``resolve()`` names the model to serve as (label, file path)."""

    def __init__(
        self,
        resolve: Callable[[], tuple[str, str]],
        poll_s: float,
        threads: int,
        on_switch: Callable[[str], None] | None = None,
    ) -> None:
        self.resolve = resolve
        self.poll_s = poll_s
        self.threads = threads
        self.on_switch = on_switch  # told the new label once a swap is done (the worker announces it)
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
        label, path = self.resolve()
        log.info("loading model %s from %s", label, path)
        return Recognizer(path, threads=self.threads, label=label)

    def refresh(self) -> bool:
        """Swap to the registry's active model if it changed. True when a swap happened."""
        label, path = self.resolve()
        if self._model is not None and self._model.label == label:
            return False
        new = Recognizer(path, threads=self.threads, label=label)
        old, self._model = self._model, new
        log.info("model switched from %s to %s", old.label if old else None, new.label)
        if self.on_switch is not None:
            self.on_switch(new.label)
        return True

    def _start_watcher(self) -> None:
        def loop() -> None:
            stop = threading.Event()
            while not stop.wait(self.poll_s):
                try:
                    self.refresh()
                except Exception:
                    log.exception("model refresh failed; keeping %s", self._model.label if self._model else None)

        self._watcher = threading.Thread(target=loop, name="model-watcher", daemon=True)
        self._watcher.start()


def line_batcher(current: Callable[[], Recognizer]) -> LineBatcher:
    """The batcher of this process over the recogniser ``current()`` returns, from the settings."""
    return LineBatcher(
        current,
        max_batch=settings.OCR_BATCH_MAX_SIZE,
        max_wait_ms=settings.OCR_BATCH_MAX_WAIT_MS,
        max_width_ratio=settings.OCR_BATCH_MAX_WIDTH_RATIO,
        binarize=settings.OCR_BINARIZE,
        sharpen=settings.OCR_SHARPEN,
        decoder=line_decoder(),
        cascade=cascade_recognizer if cascade_on() else None,
        cascade_below=settings.OCR_CASCADE_BELOW,
    )
