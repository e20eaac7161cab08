"""Image in, lines of text out: decode, find lines, recognise through the batcher.

Lines are found by the learned detector (``detect.PageReader``: quadrilaterals, reading order,
upside-down and vertical lines) when the worker has one, or else by the projection line finder.
An image that looks like a single line (short and wide: ``is_single_line``) is read whole unless
two or more rows of text are found in it (``_read_line_image``; docs/serving.md gives the figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .batcher import DeadlineExceeded, LineBatcher
from .beam import Hotwords
from .detect import PageReader
from .images import ImageLimits, decode_image
from .lines import (
    MIN_DESKEW_DEGREES,
    box_in_original,
    corners_in_original,
    estimate_skew,
    find_lines,
    rotate_upright,
    rounded_points,
)
from .pdf import is_pdf, pdf_pages
from .preprocess import to_gray
from .tables import find_tables


@dataclass
class OcrOutcome:
    lines: list[dict]
    model_label: str
    width: int
    height: int
    batches: list[dict] = field(default_factory=list)
    pages: list[dict] = field(default_factory=list)  # a PDF's pages: number, size, source
    tables: list[dict] = field(default_factory=list)  # ruled tables as cells (engine.tables; a PDF's carry "page")

    @property
    def text(self) -> list[str]:
        return [line["text"] for line in self.lines]


def _until(timeout: float | None, deadline: float | None) -> float | None:
    """The earlier of ``deadline`` and ``timeout`` seconds from now, as a monotonic time."""
    if timeout is None:
        return deadline
    return min(deadline or float("inf"), time.monotonic() + timeout)


def check_deadline(deadline: float | None, stage: str) -> None:
    """Raise DeadlineExceeded when the monotonic ``deadline`` has passed (checked between stages)."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded(stage=stage)


# An image at most this high and at least twice as wide is one line: no detector needed.
SINGLE_LINE_MAX_HEIGHT = 160


def is_single_line(rgb: np.ndarray) -> bool:
    height, width = rgb.shape[:2]
    return height <= SINGLE_LINE_MAX_HEIGHT and width >= 2 * height


def recognize_array(
    rgb: np.ndarray,
    batcher: LineBatcher,
    request_id: str,
    timeout: float | None = None,
    deadline: float | None = None,
    reader: PageReader | None = None,
    hotwords: Hotwords | None = None,
) -> OcrOutcome:
    """``timeout`` (seconds from now) or ``deadline`` (a ``time.monotonic()`` value) bounds the work:
    it is checked between stages and before every batch, and DeadlineExceeded is raised past it.
    ``hotwords`` (the request's) are favoured by the decoder."""
    deadline = _until(timeout, deadline)
    if is_single_line(rgb):
        return _read_line_image(rgb, batcher, request_id, deadline, reader, hotwords)
    if reader is not None:
        return _read_page(rgb, batcher, request_id, deadline, reader, hotwords)
    crops, boxes, quads = _projection_lines(rgb, deadline)
    results = batcher.recognize(crops, request_id, deadline=deadline, hotwords=hotwords)
    places = [{"box": list(b), **({"polygon": q} if q else {})} for b, q in zip(boxes, quads)]
    return _outcome(rgb, places, results)


def row_spans(boxes: list, min_height: float) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) around each row the boxes (x0, y0, x1, y1) at least ``min_height`` high stand
    in, top to bottom: boxes share a row when their heights overlap by half the smaller one."""
    rows: list[list[float]] = []
    for x0, y0, x1, y1 in sorted((b for b in boxes if b[3] - b[1] >= min_height), key=lambda b: (b[1] + b[3]) / 2):
        if rows and min(rows[-1][3], y1) - max(rows[-1][1], y0) > 0.5 * min(rows[-1][3] - rows[-1][1], y1 - y0):
            row = rows[-1]
            rows[-1] = [min(row[0], x0), min(row[1], y0), max(row[2], x1), max(row[3], y1)]
        else:
            rows.append([x0, y0, x1, y1])
    return [tuple(r) for r in rows]


def row_bands(rgb: np.ndarray, rows: list[tuple[float, float, float, float]]) -> list[tuple[int, int, int, int]]:
    """A band around each of ``rows``: cut halfway between neighbouring rows, and from half the row's
    height before its first ink to half after its last (the margin a line image is read with)."""
    height, width = rgb.shape[:2]
    cuts = [0] + [int(round((a[3] + b[1]) / 2)) for a, b in zip(rows, rows[1:])] + [height]
    bands = []
    for (x0, y0, x1, y1), top, bottom in zip(rows, cuts, cuts[1:]):
        margin = 0.5 * (y1 - y0)
        band = (max(0, int(x0 - margin)), max(0, top), min(width, int(np.ceil(x1 + margin))), min(height, bottom))
        if band[3] - band[1] >= 4 and band[2] - band[0] >= 4:
            bands.append(band)
    return bands


def _read_line_image(
    rgb, batcher: LineBatcher, request_id: str, deadline, reader: PageReader | None, hotwords: Hotwords | None
) -> OcrOutcome:
    """A short, wide image is read whole, as the recogniser was trained to read a line, unless the
    detector (or, without one, the projection finder) sees two or more rows of text in it; then each
    row is read as a band cut halfway between rows (``row_bands``; the detector's own crops when a
    line stands vertical or upside down). Cutting a photographed line to its ink loses its first and
    last characters; reading two rows as one loses both (bench/single_lines.py, docs/serving.md)."""
    height, width = rgb.shape[:2]
    if reader is not None:
        regions = reader.regions(rgb)
        check_deadline(deadline, "detect")
        boxes = [r.box for r in regions]
    else:
        regions, boxes = [], _projection_lines(rgb, deadline)[1]
    rows = row_spans(boxes, 0.2 * height)
    if len(rows) >= 2 and any(r.vertical or r.turned for r in regions):
        return _recognize_regions(rgb, regions, batcher, request_id, deadline, hotwords)
    bands = row_bands(rgb, rows) if len(rows) >= 2 else [(0, 0, width, height)]
    crops = [rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in bands]
    results = batcher.recognize(crops, request_id, deadline=deadline, hotwords=hotwords)
    return _outcome(rgb, [{"box": list(b)} for b in bands], results)


def _read_page(
    rgb, batcher: LineBatcher, request_id: str, deadline, reader: PageReader, hotwords: Hotwords | None
) -> OcrOutcome:
    regions = reader.regions(rgb)
    check_deadline(deadline, "detect")
    outcome = _recognize_regions(rgb, regions, batcher, request_id, deadline, hotwords)
    check_deadline(deadline, "recognition")
    outcome.tables = find_tables(rgb, outcome.lines)
    return outcome


def _recognize_regions(
    rgb, regions, batcher: LineBatcher, request_id: str, deadline, hotwords: Hotwords | None
) -> OcrOutcome:
    results = batcher.recognize([r.crop for r in regions], request_id, deadline=deadline, hotwords=hotwords)
    places = [
        {"box": list(r.box), "polygon": rounded_points(r.quad), **({"vertical": True} if r.vertical else {})}
        for r in regions
    ]
    return _outcome(rgb, places, results)


def char_quads(quad, spans, vertical: bool = False) -> list[np.ndarray]:
    """Each character's quadrilateral on the page, from the line's (corners as the line reads:
    top-left, top-right, bottom-right, bottom-left) and the characters' extents [a, b] along it
    (fractions of the crop's width; a vertical line's crop is its column laid flat, so its
    characters are spaced down the column)."""
    tl, tr, br, bl = np.asarray(quad, dtype=np.float64)
    out = []
    for a, b in spans:
        if vertical:
            out.append(np.array([tl + (bl - tl) * a, tr + (br - tr) * a, tr + (br - tr) * b, tl + (bl - tl) * b]))
        else:
            out.append(np.array([tl + (tr - tl) * a, tl + (tr - tl) * b, bl + (br - bl) * b, bl + (br - bl) * a]))
    return out


def _chars(res, place: dict) -> list[dict]:
    """A line's ``chars`` with each character's ``box`` (and ``polygon`` when the line has one)."""
    chars = res.chars_payload()
    if len(res.spans) != len(chars):
        return chars
    if "polygon" in place:
        quad = place["polygon"]
    else:
        x0, y0, x1, y1 = place["box"]
        quad = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    for char, q in zip(chars, char_quads(quad, res.spans, place.get("vertical", False))):
        lo, hi = q.min(axis=0), q.max(axis=0)
        char["box"] = [int(np.floor(lo[0])), int(np.floor(lo[1])), int(np.ceil(hi[0])), int(np.ceil(hi[1]))]
        if "polygon" in place:
            char["polygon"] = rounded_points(q)
    return chars


def _outcome(rgb: np.ndarray, places: list[dict], results) -> OcrOutcome:
    lines = []
    batches: dict[int, dict] = {}
    model_label = ""
    for place, res in zip(places, results):
        model_label = model_label if res.reread else res.model_label
        batches[res.batch_id] = {"id": res.batch_id, "size": res.batch_size, "requests": res.batch_requests}
        if not res.text.strip():
            continue
        lines.append(
            {
                "text": res.text,
                "confidence": round(res.confidence, 4),
                **place,
                "chars": _chars(res, place),
                "model": res.model_label,
            }
        )
    return OcrOutcome(
        lines=lines, model_label=model_label, width=rgb.shape[1], height=rgb.shape[0], batches=list(batches.values())
    )


def _projection_lines(rgb: np.ndarray, deadline) -> tuple[list[np.ndarray], list, list]:
    """The lines' crops, their boxes in the image and, on a tilted image (levelled before the
    lines were found), each line's corners in the image (else None)."""
    height, width = rgb.shape[:2]
    angle = estimate_skew(to_gray(rgb))
    check_deadline(deadline, "skew")
    if abs(angle) >= MIN_DESKEW_DEGREES:
        upright, rotation = rotate_upright(rgb, angle)
        check_deadline(deadline, "deskew")
        found = find_lines(to_gray(upright))
        crops = [upright[y0:y1, x0:x1] for x0, y0, x1, y1 in found]
        boxes = [box_in_original(b, rotation, width, height) for b in found]
        quads = [rounded_points(corners_in_original(b, rotation)) for b in found]
    else:
        boxes = find_lines(to_gray(rgb))
        crops = [rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
        quads = [None] * len(boxes)
    check_deadline(deadline, "lines")
    return crops, boxes, quads


def recognize_bytes(
    data: bytes,
    limits: ImageLimits,
    batcher: LineBatcher,
    request_id: str,
    timeout: float | None = None,
    deadline: float | None = None,
    reader: PageReader | None = None,
    hotwords: Hotwords | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> OcrOutcome:
    """``on_page(done, total)`` is called after each page of a PDF."""
    deadline = _until(timeout, deadline)
    if is_pdf(data):
        return _read_pdf(data, limits, batcher, request_id, deadline, reader, hotwords, on_page)
    rgb = decode_image(data, limits)
    check_deadline(deadline, "decode")
    return recognize_array(rgb, batcher, request_id, deadline=deadline, reader=reader, hotwords=hotwords)


def _read_pdf(
    data: bytes,
    limits: ImageLimits,
    batcher: LineBatcher,
    request_id: str,
    deadline,
    reader: PageReader | None,
    hotwords: Hotwords | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> OcrOutcome:
    """Every page's lines, each marked with its page number; a page with a trusted text layer
    is taken from it (``"source": "text_layer"``), the others are rendered and read."""
    lines, batches, pages, tables, label = [], [], [], [], ""
    for page in pdf_pages(data, limits):
        check_deadline(deadline, f"page {page.number}")
        if page.text_lines is not None:
            found = [{**line, "confidence": 1.0, "source": "text_layer"} for line in page.text_lines]
        else:
            read = recognize_array(page.rgb, batcher, request_id, deadline=deadline, reader=reader, hotwords=hotwords)
            found, label = read.lines, read.model_label or label
            batches += read.batches
            tables += [{**table, "page": page.number} for table in read.tables]
        lines += [{**line, "page": page.number} for line in found]
        pages.append(
            {
                "page": page.number,
                "width": page.width,
                "height": page.height,
                "source": "ocr" if page.text_lines is None else "text_layer",
            }
        )
        if on_page is not None:
            on_page(page.number, page.of)
    first = pages[0]
    return OcrOutcome(lines, label, first["width"], first["height"], batches=batches, pages=pages, tables=tables)
