"""Dynamic batching of text lines across concurrent requests inside one worker process.

Task threads hand in line crops and wait on futures; one batching thread collects
lines for at most ``max_wait_ms`` after the first arrives (or until ``max_batch``
lines are waiting), sorts them by width and cuts them into runs whose widest line
is at most ``max_width_ratio`` times the narrowest, so padding stays small, and
sends each run through the recogniser in one ONNX Runtime call.

Why not a task-level batching library: one request brings several lines of very
different widths, and it is lines, not task messages, that need grouping; task
messages also keep their own late acknowledgement and time limits this way.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from .inference import LineText, Recognizer
from .preprocess import prepare_line


@dataclass(frozen=True)
class BatchedLine:
    text: str
    confidence: float
    model_label: str
    batch_id: int
    batch_size: int
    batch_requests: int


@dataclass
class _Item:
    crop: np.ndarray
    request_id: str
    future: Future


class LineBatcher:
    def __init__(
        self,
        recognizer: Callable[[], Recognizer],
        max_batch: int = 32,
        max_wait_ms: float = 15.0,
        max_width_ratio: float = 1.5,
        binarize: bool = False,
    ) -> None:
        self._recognizer = recognizer
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_width_ratio = max_width_ratio
        self.binarize = binarize
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="line-batcher", daemon=True)
        self._thread.start()

    def submit(self, crops: list[np.ndarray], request_id: str) -> list[Future]:
        futures = []
        for crop in crops:
            fut: Future = Future()
            self._queue.put(_Item(crop=crop, request_id=request_id, future=fut))
            futures.append(fut)
        return futures

    def recognize(self, crops: list[np.ndarray], request_id: str, timeout: float | None = None) -> list[BatchedLine]:
        return [f.result(timeout=timeout) for f in self.submit(crops, request_id)]

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
            except BaseException as exc:  # noqa: BLE001 - every waiter must hear about it
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)

    def _run(self, items: list[_Item]) -> None:
        model = self._recognizer()
        prepared = []
        for item in items:
            try:
                prepared.append((prepare_line(item.crop, model.spec, self.binarize), item))
            except Exception as exc:  # noqa: BLE001
                item.future.set_exception(exc)
        prepared.sort(key=lambda pair: pair[0].shape[2])
        for group in self._groups(prepared):
            arrays = [a for a, _ in group]
            results: list[LineText] = model.recognize(arrays)
            batch_id = next(self._ids)
            requests = len({item.request_id for _, item in group})
            for (_, item), res in zip(group, results):
                item.future.set_result(
                    BatchedLine(
                        text=res.text,
                        confidence=res.confidence,
                        model_label=model.label,
                        batch_id=batch_id,
                        batch_size=len(group),
                        batch_requests=requests,
                    )
                )

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
