"""Dynamic batching of text lines across concurrent requests inside one worker process.

With ``max_batch`` 1 (batching off, the default on CPUs) each task thread runs its own lines
through the recogniser, one call per line. Otherwise task threads hand in line crops and wait
on futures; one batching thread collects
lines for at most ``max_wait_ms`` after the first arrives (or until ``max_batch``
lines are waiting), sorts them by width and cuts them into runs whose widest line
is at most ``max_width_ratio`` times the narrowest, so padding stays small, and
sends each run through the recogniser in one ONNX Runtime call.

Why not a task-level batching library: one request brings several lines of very
different widths, and it is lines, not task messages, that need grouping; task
messages also keep their own late acknowledgement and time limits this way.

Deadlines: a request may give a deadline (a ``time.monotonic()`` value). Its lines still
waiting when it passes are dropped before they reach the recogniser, the batching thread
checks again before every run, and the request gets ``DeadlineExceeded``. This is what stops
a runaway page: a run already inside ONNX Runtime finishes (at most ``max_batch`` lines), no
further run of that request starts.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import numpy as np

from .beam import Hotwords
from .decoder import LineDecoder, chars_payload
from .inference import LineText, Recognizer
from .preprocess import content_share, prepare_line


@dataclass(frozen=True)
class BatchedLine:
    text: str
    confidence: float
    model_label: str
    batch_id: int
    batch_size: int
    batch_requests: int
    chars: tuple[tuple[str, float], ...] = ()
    searched: bool = False
    reread: bool = False  # read again by the cascade's recogniser (``model_label`` is that one's)
    spans: tuple[tuple[float, float], ...] = ()  # each char's extent [a, b], fractions of the crop's width

    @classmethod
    def of(
        cls,
        read: LineText,
        model_label: str,
        batch_id: int,
        batch_size: int = 1,
        batch_requests: int = 1,
        reread: bool = False,
        share: float = 1.0,
    ) -> BatchedLine:
        """``share``: how much of the width the line was read over is the crop's own
        (``preprocess.content_share``); the characters' extents become fractions of the crop."""
        return cls(
            text=read.text,
            confidence=read.confidence,
            model_label=model_label,
            batch_id=batch_id,
            batch_size=batch_size,
            batch_requests=batch_requests,
            chars=read.chars,
            searched=read.searched,
            reread=reread,
            spans=tuple((min(1.0, a / share), min(1.0, b / share)) for a, b in read.spans),
        )

    def chars_payload(self) -> list[dict]:
        return chars_payload(self.chars)


class DeadlineExceeded(TimeoutError):
    """A request's deadline passed before all of its lines were recognised."""

    def __init__(self, done: int = 0, total: int = 0, stage: str = "recognition") -> None:
        super().__init__(f"deadline passed at {stage}, {done} of {total} lines recognised")
        self.done = done
        self.total = total
        self.stage = stage


@dataclass
class _Item:
    crop: np.ndarray
    request_id: str
    future: Future
    deadline: float | None = None
    hotwords: Hotwords | None = None

    def expired(self, now: float) -> bool:
        return self.future.cancelled() or (self.deadline is not None and now >= self.deadline)


def _settle(future: Future, result=None, exc: BaseException | None = None) -> None:
    """Set a future's outcome unless its waiter gave up (cancelled it) in the meantime."""
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class LineBatcher:
    # The defaults are those of the settings (OCR_BATCH_MAX_SIZE, OCR_BATCH_MAX_WAIT_MS,
    # OCR_BATCH_MAX_WIDTH_RATIO, OCR_BINARIZE, OCR_SHARPEN; a test holds them equal): batching off, as measured
    # on CPUs (docs/serving.md).
    def __init__(
        self,
        recognizer: Callable[[], Recognizer],
        max_batch: int = 1,
        max_wait_ms: float = 0.0,
        max_width_ratio: float = 1.15,
        binarize: bool = False,
        sharpen: bool = True,
        decoder: LineDecoder | None = None,
        cascade: Callable[[], Recognizer] | None = None,
        cascade_below: float = 0.0,
    ) -> None:
        self._recognizer = recognizer
        self.decoder = decoder
        self._cascade = cascade
        self.cascade_below = cascade_below
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_width_ratio = max_width_ratio
        self.binarize = binarize
        self.sharpen = sharpen
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="line-batcher", daemon=True)
        self._thread.start()

    def submit(
        self, crops: list[np.ndarray], request_id: str, deadline: float | None = None, hotwords: Hotwords | None = None
    ) -> list[Future]:
        futures = []
        for crop in crops:
            fut: Future = Future()
            self._queue.put(_Item(crop=crop, request_id=request_id, future=fut, deadline=deadline, hotwords=hotwords))
            futures.append(fut)
        return futures

    def recognize(
        self,
        crops: list[np.ndarray],
        request_id: str,
        timeout: float | None = None,
        deadline: float | None = None,
        hotwords: Hotwords | None = None,
    ) -> list[BatchedLine]:
        """The lines' texts in order. ``timeout`` (seconds from now) or ``deadline`` (a monotonic time)
        bounds the whole request; past it the remaining lines are dropped and DeadlineExceeded raised.
        ``hotwords`` are the request's, favoured by the decoder."""
        if timeout is not None:
            deadline = min(deadline or float("inf"), time.monotonic() + timeout)
        if self.max_batch <= 1:
            results = self._recognize_here(crops, deadline, hotwords)
        else:
            results = self._recognize_batched(crops, request_id, deadline, hotwords)
        return self._reread(crops, results, deadline, hotwords)

    def _recognize_batched(
        self, crops: list[np.ndarray], request_id: str, deadline: float | None, hotwords: Hotwords | None
    ) -> list[BatchedLine]:
        futures = self.submit(crops, request_id, deadline, hotwords)
        results: list[BatchedLine] = []
        try:
            for fut in futures:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                results.append(fut.result(timeout=remaining))
        except TimeoutError:  # the wait ran out, or the batching thread dropped an expired line
            for fut in futures:
                fut.cancel()
            raise DeadlineExceeded(done=len(results), total=len(futures)) from None
        return results

    def _reread(
        self, crops: list[np.ndarray], results: list[BatchedLine], deadline: float | None, hotwords: Hotwords | None
    ) -> list[BatchedLine]:
        """The cascade: lines read with a confidence below ``cascade_below`` are read again by the
        cascade recogniser (a stronger, slower model), in runs of similar widths, and its answer
        replaces the first one (each answer names the model that read it). Past the deadline the
        first answers stand."""
        doubtful = [i for i, r in enumerate(results) if r.confidence < self.cascade_below]
        if self._cascade is None or not doubtful:
            return results
        model = self._cascade()
        prepared = sorted(
            ((prepare_line(crops[i], model.spec, self.binarize, self.sharpen), i) for i in doubtful),
            key=lambda pair: pair[0].shape[2],
        )
        results = list(results)
        for group in self._groups(prepared):
            if deadline is not None and time.monotonic() >= deadline:
                break
            reads = model.recognize([a for a, _ in group], self.decoder, [hotwords] * len(group) if hotwords else None)
            batch_id = next(self._ids)
            for (_, i), res in zip(group, reads):
                share = content_share(crops[i], model.spec)
                results[i] = BatchedLine.of(res, model.label, batch_id, len(group), 1, reread=True, share=share)
        return results

    def _recognize_here(
        self, crops: list[np.ndarray], deadline: float | None, hotwords: Hotwords | None = None
    ) -> list[BatchedLine]:
        """Batching off: each line straight through the recogniser in the calling thread, so the
        requests of several task threads run side by side (ONNX Runtime releases the GIL) and no
        hand-over to the batching thread is paid."""
        model = self._recognizer()
        results = []
        for crop in crops:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(done=len(results), total=len(crops))
            (res,) = model.recognize(
                [prepare_line(crop, model.spec, self.binarize, self.sharpen)],
                self.decoder,
                [hotwords] if hotwords else None,
            )
            results.append(BatchedLine.of(res, model.label, next(self._ids), share=content_share(crop, model.spec)))
        return results

    # --- the batching thread -------------------------------------------------------------
    def _collect(self) -> list[_Item]:
        items = [self._queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(items) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                items.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _loop(self) -> None:
        while True:
            items = self._collect()
            try:
                self._run(items)
            except BaseException as exc:
                for item in items:
                    if not item.future.done():
                        _settle(item.future, exc=exc)

    def _drop_expired(self, items: list[_Item]) -> list[_Item]:
        now = time.monotonic()
        live = []
        for item in items:
            if item.expired(now):
                _settle(item.future, exc=DeadlineExceeded())
            else:
                live.append(item)
        return live

    def _run(self, items: list[_Item]) -> None:
        items = self._drop_expired(items)
        if not items:
            return
        model = self._recognizer()
        prepared = []
        for item in items:
            try:
                prepared.append((prepare_line(item.crop, model.spec, self.binarize, self.sharpen), item))
            except Exception as exc:
                _settle(item.future, exc=exc)
        prepared.sort(key=lambda pair: pair[0].shape[2])
        for group in self._groups(prepared):
            now = time.monotonic()
            for _, item in group:
                if item.expired(now):
                    _settle(item.future, exc=DeadlineExceeded())
            group = [pair for pair in group if not pair[1].future.done()]
            if not group:
                continue
            arrays = [a for a, _ in group]
            results: list[LineText] = model.recognize(arrays, self.decoder, [item.hotwords for _, item in group])
            batch_id = next(self._ids)
            requests = len({item.request_id for _, item in group})
            for (_, item), res in zip(group, results):
                share = content_share(item.crop, model.spec)
                _settle(item.future, BatchedLine.of(res, model.label, batch_id, len(group), requests, share=share))

    def _groups(self, prepared: list) -> list[list]:
        groups: list[list] = []
        for pair in prepared:
            width = pair[0].shape[2]
            if (
                groups
                and len(groups[-1]) < self.max_batch
                and width <= groups[-1][0][0].shape[2] * self.max_width_ratio
            ):
                groups[-1].append(pair)
            else:
                groups.append([pair])
        return groups
