"""Image in, lines of text out: decode, find lines, recognise through the batcher."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .batcher import LineBatcher
from .decode import ImageLimits, decode_image
from .lines import box_in_original, estimate_skew, find_lines, rotate_upright
from .preprocess import to_gray

# Bump when line finding, preprocessing or decoding changes what a worker returns for the same
# bytes (3: confidence per character, doubled characters kept apart, full-width restoration).
PIPELINE_VERSION = "3"
# Smaller skews do not disturb the line finder; levelling them would only cost time.
MIN_DESKEW_DEGREES = 0.5


@dataclass
class OcrOutcome:
    lines: list[dict]
    model_label: str
    width: int
    height: int
    batches: list[dict] = field(default_factory=list)

    @property
    def text(self) -> list[str]:
        return [line["text"] for line in self.lines]


def recognize_array(rgb: np.ndarray, batcher: LineBatcher, request_id: str, timeout: float | None = None) -> OcrOutcome:
    height, width = rgb.shape[:2]
    angle = estimate_skew(to_gray(rgb))
    if abs(angle) >= MIN_DESKEW_DEGREES:
        upright, rotation = rotate_upright(rgb, angle)
        found = find_lines(to_gray(upright))
        crops = [upright[y0:y1, x0:x1] for x0, y0, x1, y1 in found]
        boxes = [box_in_original(b, rotation, width, height) for b in found]
    else:
        boxes = find_lines(to_gray(rgb))
        crops = [rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
    results = batcher.recognize(crops, request_id, timeout=timeout)
    lines = []
    batches: dict[int, dict] = {}
    model_label = ""
    for box, res in zip(boxes, results):
        model_label = res.model_label
        batches[res.batch_id] = {"id": res.batch_id, "size": res.batch_size, "requests": res.batch_requests}
        if not res.text.strip():
            continue
        lines.append({"text": res.text, "confidence": round(res.confidence, 4), "box": list(box)})
    return OcrOutcome(
        lines=lines, model_label=model_label, width=rgb.shape[1], height=rgb.shape[0], batches=list(batches.values())
    )


def recognize_bytes(
    data: bytes, limits: ImageLimits, batcher: LineBatcher, request_id: str, timeout: float | None = None
) -> OcrOutcome:
    return recognize_array(decode_image(data, limits), batcher, request_id, timeout=timeout)
