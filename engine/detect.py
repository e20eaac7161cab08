"""Learned text detection: a DB-style segmentation model, its package contract, line crops.

A detector is an ONNX file whose metadata says how to feed it and how to read its output
(``DetSpec``): the input size rules, normalisation, and the thresholds of the DB
post-processing (probability map -> bitmap -> contours -> scored, expanded rectangles).
Lines come back as quadrilaterals in image coordinates (top-left, top-right, bottom-right,
bottom-left), cut out with a perspective warp, so rotated and photographed lines reach the
recogniser level. A direction classifier (``DirectionSpec``) turns lines that read upside down.

No Django, Celery or PyTorch here: NumPy, OpenCV and ONNX Runtime only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .lines import ink_mask, merge_close, runs_over
from .modelfile import read_metadata
from .sessions import ort_session

DET_FORMAT = "ocr-det/1"
CLS_FORMAT = "ocr-cls/1"


class DetectorPackageError(ValueError):
    """The ONNX file does not carry a usable detector or classifier description."""


@dataclass(frozen=True)
class DetSpec:
    name: str
    color_order: str = "BGR"
    norm_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    norm_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    limit_side: int = 960  # the longer side is brought down to this (``limit_type`` max), the shorter
    limit_type: str = "max"  # side up to it (min), or the area down to its square (area: a tall
    # receipt keeps its text as large as an A4 page does)
    size_multiple: int = 32
    max_side: int = 4000
    thresh: float = 0.3  # probability that makes a pixel text
    box_thresh: float = 0.6  # mean probability a box needs to be kept
    unclip_ratio: float = 1.5  # how far a box grows: area * ratio / perimeter
    min_box_size: int = 3  # shorter side, in model-input pixels
    max_candidates: int = 1000
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.color_order not in ("RGB", "BGR"):
            problems.append("color_order must be RGB or BGR")
        if len(self.norm_mean) != 3 or len(self.norm_std) != 3 or any(s <= 0 for s in self.norm_std):
            problems.append("norm_mean and norm_std need three values, std positive")
        if self.limit_type not in ("max", "min", "area"):
            problems.append("limit_type must be max, min or area")
        if self.size_multiple < 1 or self.limit_side < self.size_multiple or self.max_side < self.limit_side:
            problems.append("bad size settings")
        if not (0 < self.thresh < 1 and 0 < self.box_thresh < 1 and self.unclip_ratio > 0):
            problems.append("thresholds must lie in (0, 1) and unclip_ratio be positive")
        if problems:
            raise DetectorPackageError("; ".join(problems))

    def to_metadata(self) -> dict[str, str]:
        meta = {
            "ocr.format": DET_FORMAT,
            "ocr.name": self.name,
            "ocr.color_order": self.color_order,
            "ocr.norm_mean": json.dumps(list(self.norm_mean)),
            "ocr.norm_std": json.dumps(list(self.norm_std)),
            "ocr.limit_side": str(self.limit_side),
            "ocr.limit_type": self.limit_type,
            "ocr.size_multiple": str(self.size_multiple),
            "ocr.max_side": str(self.max_side),
            "ocr.output_kind": "prob_map",
            "ocr.thresh": str(self.thresh),
            "ocr.box_thresh": str(self.box_thresh),
            "ocr.unclip_ratio": str(self.unclip_ratio),
            "ocr.min_box_size": str(self.min_box_size),
            "ocr.max_candidates": str(self.max_candidates),
        }
        meta.update(self.extra)
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> DetSpec:
        if meta.get("ocr.format") != DET_FORMAT:
            raise DetectorPackageError(f"not a detector package: ocr.format is {meta.get('ocr.format')!r}")
        if meta.get("ocr.output_kind", "prob_map") != "prob_map":
            raise DetectorPackageError("only the prob_map output kind is supported")
        try:
            return cls(
                name=meta["ocr.name"],
                color_order=meta["ocr.color_order"],
                norm_mean=tuple(float(v) for v in json.loads(meta["ocr.norm_mean"])),
                norm_std=tuple(float(v) for v in json.loads(meta["ocr.norm_std"])),
                limit_side=int(meta["ocr.limit_side"]),
                limit_type=meta["ocr.limit_type"],
                size_multiple=int(meta["ocr.size_multiple"]),
                max_side=int(meta["ocr.max_side"]),
                thresh=float(meta["ocr.thresh"]),
                box_thresh=float(meta["ocr.box_thresh"]),
                unclip_ratio=float(meta["ocr.unclip_ratio"]),
                min_box_size=int(meta["ocr.min_box_size"]),
                max_candidates=int(meta["ocr.max_candidates"]),
                extra={k: v for k, v in meta.items() if not k.startswith("ocr.")},
            )
        except KeyError as exc:
            raise DetectorPackageError(f"detector metadata lacks {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DetectorPackageError):
                raise
            raise DetectorPackageError(f"detector metadata is malformed: {exc}") from None


@dataclass(frozen=True)
class DirectionSpec:
    """A line classifier for 0° / 180°: input size, normalisation, and the confidence a turn needs."""

    name: str
    input_height: int = 48
    input_width: int = 192
    color_order: str = "BGR"
    norm_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    norm_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    labels: tuple[str, ...] = ("0", "180")
    turn_threshold: float = 0.9

    def to_metadata(self) -> dict[str, str]:
        return {
            "ocr.format": CLS_FORMAT,
            "ocr.name": self.name,
            "ocr.input_height": str(self.input_height),
            "ocr.input_width": str(self.input_width),
            "ocr.color_order": self.color_order,
            "ocr.norm_mean": json.dumps(list(self.norm_mean)),
            "ocr.norm_std": json.dumps(list(self.norm_std)),
            "ocr.labels": json.dumps(list(self.labels)),
            "ocr.turn_threshold": str(self.turn_threshold),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> DirectionSpec:
        if meta.get("ocr.format") != CLS_FORMAT:
            raise DetectorPackageError(f"not a direction classifier: ocr.format is {meta.get('ocr.format')!r}")
        try:
            return cls(
                name=meta["ocr.name"],
                input_height=int(meta["ocr.input_height"]),
                input_width=int(meta["ocr.input_width"]),
                color_order=meta["ocr.color_order"],
                norm_mean=tuple(float(v) for v in json.loads(meta["ocr.norm_mean"])),
                norm_std=tuple(float(v) for v in json.loads(meta["ocr.norm_std"])),
                labels=tuple(json.loads(meta["ocr.labels"])),
                turn_threshold=float(meta["ocr.turn_threshold"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorPackageError(f"classifier metadata is malformed: {exc}") from None


# --------------------------------------------------------------------------- detection


def input_size(height: int, width: int, spec: DetSpec) -> tuple[int, int]:
    """The model's input size for an image: scaled by the limit rule, capped at ``max_side``,
    each side rounded to the size multiple."""
    if spec.limit_type == "max":
        scale = min(1.0, spec.limit_side / max(height, width))
    elif spec.limit_type == "area":
        scale = min(1.0, spec.limit_side / math.sqrt(height * width))
    else:
        scale = max(1.0, spec.limit_side / min(height, width))
    scale = min(scale, spec.max_side / max(height, width))
    m = spec.size_multiple
    return max(m, int(round(height * scale / m)) * m), max(m, int(round(width * scale / m)) * m)


def prepare_page(rgb: np.ndarray, spec: DetSpec) -> np.ndarray:
    h, w = input_size(rgb.shape[0], rgb.shape[1], spec)
    img = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if h < rgb.shape[0] else cv2.INTER_LINEAR)
    if spec.color_order == "BGR":
        img = img[:, :, ::-1]
    x = (img.astype(np.float32) / 255.0 - np.asarray(spec.norm_mean, np.float32)) / np.asarray(
        spec.norm_std, np.float32
    )
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def order_quad(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1], kind="stable")]
    tr, br = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(quad.min(axis=0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(quad.max(axis=0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(quad - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _grown(rect, spec: DetSpec) -> np.ndarray | None:
    """The region of a shrunk text kernel (``minAreaRect``), grown back by DB's unclip distance
    (area * ratio / perimeter); None when it stays under the smallest box."""
    (cx, cy), (rw, rh), angle = rect
    distance = rw * rh * spec.unclip_ratio / max(2 * (rw + rh), 1e-6)
    grown = ((cx, cy), (rw + 2 * distance, rh + 2 * distance), angle)
    if min(grown[1]) < spec.min_box_size + 2:
        return None
    return order_quad(cv2.boxPoints(grown))


def _joined_parts(bitmap: np.ndarray, contour: np.ndarray) -> list[np.ndarray]:
    """The parts of a text kernel that are lines touching by a thin bridge, as contours; [] when it
    is one part. On tightly set pages a paragraph's last line, one or two characters long, touches
    the line above at one end: the kernel is an L, its rectangle is mostly empty and scores under
    the box threshold, and both lines are lost. Eroding the kernel by half its usual thickness
    (the median height of its columns) cuts the bridge and keeps every line's core; each core,
    grown back within the kernel, is a part."""
    x, y, w, h = cv2.boundingRect(contour)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [contour.reshape(-1, 2) - [x, y]], 1)
    kernel_mask = inside & bitmap[y : y + h, x : x + w]
    columns = kernel_mask.sum(axis=0)
    columns = columns[columns > 0]
    if columns.size == 0:
        return []
    side = max(2, int(round(float(np.median(columns)) / 2)))
    square = np.ones((side, side), np.uint8)
    count, labels = cv2.connectedComponents(cv2.erode(kernel_mask, square))
    if count <= 2:  # background and one core: nothing to cut
        return []
    parts = []
    for label in range(1, count):
        core = (labels == label).astype(np.uint8)
        if core.sum() < side * side:
            continue
        part = cv2.dilate(core, square) & kernel_mask
        contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        parts.extend(c + [x, y] for c in contours)
    return parts


def _scored(prob: np.ndarray, contour: np.ndarray, spec: DetSpec):
    """(minAreaRect, score) of a contour of the map; None when its rectangle is under the smallest box."""
    rect = cv2.minAreaRect(contour)
    if min(rect[1]) < spec.min_box_size:
        return None
    return rect, _box_score(prob, cv2.boxPoints(rect))


def _kernels(prob: np.ndarray, bitmap: np.ndarray, contour: np.ndarray, spec: DetSpec):
    """(minAreaRect, score) of each text region in one contour of the map: the contour itself when
    its rectangle scores at least ``box_thresh``, else its parts (``_joined_parts``) that do."""
    whole = _scored(prob, contour, spec)
    if whole is None:
        return
    if whole[1] >= spec.box_thresh:
        yield whole
        return
    for part in _joined_parts(bitmap, contour):
        scored = _scored(prob, part, spec)
        if scored is not None and scored[1] >= spec.box_thresh:
            yield scored


def db_boxes(
    prob: np.ndarray, spec: DetSpec, scale_x: float, scale_y: float, image_w: int, image_h: int
) -> list[tuple[np.ndarray, float]]:
    """(quad in image coordinates, score) for each text region of a DB probability map."""
    bitmap = (prob > spec.thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for contour in contours[: spec.max_candidates]:
        for rect, score in _kernels(prob, bitmap, contour, spec):
            quad = _grown(rect, spec)
            if quad is None:
                continue
            quad[:, 0] = np.clip(quad[:, 0] * scale_x, 0, image_w - 1)
            quad[:, 1] = np.clip(quad[:, 1] * scale_y, 0, image_h - 1)
            out.append((quad, score))
    return out


class TextDetector:
    """One ONNX Runtime session of a detector package and its post-processing."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = str(path)
        self.spec = DetSpec.from_metadata(read_metadata(path))
        self.session = ort_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def probability_map(self, rgb: np.ndarray) -> np.ndarray:
        x = prepare_page(rgb, self.spec)
        return self.session.run(None, {self.input_name: x})[0][0, 0]

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Text regions of an RGB page, as (quad, score) in the page's coordinates."""
        h, w = rgb.shape[:2]
        prob = self.probability_map(rgb)
        return db_boxes(prob, self.spec, w / prob.shape[1], h / prob.shape[0], w, h)


# --------------------------------------------------------------------------- crops and direction


def quad_size(quad: np.ndarray) -> tuple[int, int]:
    tl, tr, br, bl = quad
    width = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    return max(1, int(round(width))), max(1, int(round(height)))


def crop_quad(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The region inside ``quad`` warped flat to a rectangle."""
    width, height = quad_size(quad)
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), dst)
    return cv2.warpPerspective(rgb, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


VERTICAL_RATIO = 1.5


def is_vertical(quad: np.ndarray) -> bool:
    """A region at least 1.5 times taller than wide holds a vertical line of text."""
    width, height = quad_size(quad)
    return height >= VERTICAL_RATIO * width


def lay_flat(column: np.ndarray) -> np.ndarray:
    """A vertical line of CJK text re-laid as a horizontal one: cut between its characters (the
    blank rows of its ink profile, else every width's height) and set side by side, each glyph
    still upright, so a recogniser of horizontal lines reads it top to bottom."""
    h, w = column.shape[:2]
    gray = column if column.ndim == 2 else cv2.cvtColor(column, cv2.COLOR_RGB2GRAY)
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if ink.mean() > 0.5:
        ink = 1 - ink
    cuts = runs_over(ink.sum(axis=1), 0)
    # glyphs of several strokes (三, 二) leave gaps inside: join pieces up to a square
    glyphs: list[list[int]] = []
    for a, b in cuts:
        if glyphs and b - glyphs[-1][0] <= 1.1 * w:
            glyphs[-1][1] = b
        else:
            glyphs.append([a, b])
    if len(glyphs) < max(1, round(h / w) // 2):
        n = max(1, round(h / w))
        glyphs = [[i * h // n, (i + 1) * h // n] for i in range(n)]
    pad = max(1, w // 8)
    pieces = [column[max(0, a - pad // 2) : min(h, b + pad // 2)] for a, b in glyphs]
    side = max(p.shape[0] for p in pieces)
    fill = np.median(column.reshape(-1, column.shape[2]) if column.ndim == 3 else column.reshape(-1), axis=0)
    tiles = []
    for p in pieces:
        tile = np.empty((side, w) + column.shape[2:], column.dtype)
        tile[...] = fill.astype(column.dtype)
        top = (side - p.shape[0]) // 2
        tile[top : top + p.shape[0]] = p
        tiles.append(tile)
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))


# A region this many times the page's usual line height may be several lines run together.
STACK_RATIO = 1.8


def line_height(quads: list[np.ndarray]) -> float | None:
    """The page's usual line height: the median height of its wider-than-high regions (None with
    fewer than three)."""
    heights = [h for w, h in (quad_size(q) for q in quads) if w >= h]
    return float(np.median(heights)) if len(heights) >= 3 else None


def _ink_rows(crop: np.ndarray, line_h: float) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each row of ink in a crop: rows whose ink share is a fifth of the
    fullest row's, joined over gaps under a fifth of a line, at least 0.4 lines high."""
    ink = ink_mask(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop)
    profile = np.convolve(ink.mean(axis=1), np.ones(3) / 3, mode="same")
    runs = runs_over(profile, 0.2 * float(profile.max())) if profile.max() > 0 else []
    rows = []
    for a, b in merge_close(runs, math.ceil(0.2 * line_h) - 1):  # gaps under a fifth of a line
        if b - a < 0.4 * line_h:
            continue
        cols = np.flatnonzero(ink[a:b].sum(axis=0) >= 2)
        if cols.size:
            rows.append((int(cols[0]), a, int(cols[-1]) + 1, b))
    return rows


def _sub_quad(quad: np.ndarray, width: int, height: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of ``quad`` that ``box`` (x0, y0, x1, y1 in its flat crop of ``width`` x
    ``height``) covers, in the page's coordinates."""
    tl, tr, br, bl = np.asarray(quad, np.float32)

    def at(x: float, y: float) -> np.ndarray:
        u, v = min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0)
        top, bottom = tl + (tr - tl) * u, bl + (br - bl) * u
        return top + (bottom - top) * v

    x0, y0, x1, y1 = box
    return np.array([at(x0, y0), at(x1, y0), at(x1, y1), at(x0, y1)], np.float32)


def split_stacked(rgb: np.ndarray, quads: list[np.ndarray]) -> list[np.ndarray]:
    """Regions that are lines run together, split into their lines. On noisy scans and tightly set
    receipts the detector's map joins lines one above the other into one region, which is then
    read as one line (a short stack even as a vertical column). A region at least
    ``STACK_RATIO`` times the page's line height is split where its ink leaves blank rows, when
    that gives two or more rows each at least as wide as high (a vertical column of CJK gives
    square rows, one glyph each, and stays whole)."""
    line_h = line_height(quads)
    if line_h is None:
        return quads
    out = []
    for quad in quads:
        width, height = quad_size(quad)
        if height < STACK_RATIO * line_h:
            out.append(quad)
            continue
        rows = _ink_rows(crop_quad(rgb, quad), line_h)
        if len(rows) < 2 or any(x1 - x0 < 1.2 * (y1 - y0) for x0, y0, x1, y1 in rows):
            out.append(quad)
            continue
        for x0, y0, x1, y1 in rows:
            pad = 0.3 * (y1 - y0)
            out.append(_sub_quad(quad, width, height, (x0 - pad, y0 - pad, x1 + pad, y1 + pad)))
    return out


def upright_crop(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The crop as a horizontal line: a vertical one is re-laid (``lay_flat``)."""
    crop = crop_quad(rgb, quad)
    return lay_flat(crop) if is_vertical(quad) else crop


class DirectionClassifier:
    """Tells lines that read upside down (180°) from upright ones."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.spec = DirectionSpec.from_metadata(read_metadata(path))
        self.session = ort_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def _prepare(self, crop: np.ndarray) -> np.ndarray:
        s = self.spec
        h, w = crop.shape[:2]
        width = min(s.input_width, max(1, int(math.ceil(s.input_height * w / max(h, 1)))))
        img = cv2.resize(crop, (width, s.input_height))
        if s.color_order == "BGR":
            img = img[:, :, ::-1]
        x = (img.astype(np.float32) / 255.0 - np.asarray(s.norm_mean, np.float32)) / np.asarray(s.norm_std, np.float32)
        out = np.zeros((3, s.input_height, s.input_width), np.float32)
        out[:, :, :width] = x.transpose(2, 0, 1)
        return out

    def upside_down(self, crops: list[np.ndarray]) -> list[bool]:
        if not crops:
            return []
        probs = self.session.run(None, {self.input_name: np.stack([self._prepare(c) for c in crops])})[0]
        turned = self.spec.labels.index("180")
        return [bool(p.argmax() == turned and p[turned] >= self.spec.turn_threshold) for p in probs]


# --------------------------------------------------------------------------- reading order


def reading_order(boxes: list[tuple[float, float, float, float]]) -> list[int]:
    """Indices of axis-aligned boxes (x0, y0, x1, y1) in reading order, by recursive XY-cut: a
    region is split at one empty band, down (a gutter between columns of prose) or else across
    (the widest band between rows), and its parts read left to right or top to bottom. Columns
    come out one after the other, the fields of a form row left to right, and lines that share
    no empty band fall back to top-to-bottom."""
    items = list(range(len(boxes)))
    if not items:
        return []
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    heights = arr[:, 3] - arr[:, 1]
    return _xy_cut(items, arr, float(np.median(heights)) if len(heights) else 1.0)


def _gaps(lo: np.ndarray, hi: np.ndarray) -> list[tuple[float, float]]:
    """Empty bands between intervals [lo, hi): (start, end) of each."""
    order = np.argsort(lo, kind="stable")
    gaps, reach = [], hi[order[0]]
    for i in order[1:]:
        if lo[i] > reach:
            gaps.append((float(reach), float(lo[i])))
        reach = max(reach, hi[i])
    return gaps


def _beside(side: np.ndarray, other: np.ndarray) -> float:
    """The share of ``side``'s lines that stand beside a line of ``other`` (their heights overlap)."""
    overlap = np.minimum(side[:, None, 3], other[None, :, 3]) - np.maximum(side[:, None, 1], other[None, :, 1])
    return float(np.any(overlap > 0, axis=1).mean())


def _are_columns(left: np.ndarray, right: np.ndarray, line_h: float) -> bool:
    """Columns of prose: a gutter with several lines on both sides that run side by side (most lines
    of the shorter side stand beside a line of the other: an indented, centred or right-aligned line
    of one column, a letter's date or signature, sits above, below or between the others, beside
    none), and both sides hold long lines or their lines do not pair up row by row (a form's label
    and value share a row; two text columns rarely share every baseline)."""
    if len(left) < 2 or len(right) < 2:
        return False
    small, big = (left, right) if len(left) <= len(right) else (right, left)
    if _beside(small, big) < 0.5:
        return False
    widths = np.concatenate([left[:, 2] - left[:, 0], right[:, 2] - right[:, 0]])
    if np.median(left[:, 2] - left[:, 0]) >= 6 * line_h and np.median(right[:, 2] - right[:, 0]) >= 6 * line_h:
        return True
    return _paired(small, big) < 0.5 * len(small) and float(np.median(widths)) >= 2 * line_h


def _paired(small: np.ndarray, big: np.ndarray) -> int:
    """How many of ``small``'s lines pair with one of ``big`` across the gutter: their heights overlap
    by a third (a page photographed at an angle moves the two ends of a row apart by more than a
    fixed margin)."""
    overlap = np.minimum(small[:, None, 3], big[None, :, 3]) - np.maximum(small[:, None, 1], big[None, :, 1])
    shorter = np.minimum((small[:, 3] - small[:, 1])[:, None], (big[:, 3] - big[:, 1])[None, :])
    return int(np.any(overlap > shorter / 3, axis=1).sum())


def _split(
    items: list[int], sub: np.ndarray, gaps: list[tuple[float, float]], axis: int
) -> tuple[list[int], list[int]]:
    """The items before and after the widest of ``gaps`` along ``axis`` (0: x, 1: y), by their centres."""
    cut = max(gaps, key=lambda g: g[1] - g[0])
    centre = (sub[:, axis] + sub[:, axis + 2]) / 2
    return ([i for i, c in zip(items, centre) if c < cut[1]], [i for i, c in zip(items, centre) if c >= cut[1]])


def _spanned_columns(items: list[int], arr: np.ndarray, line_h: float) -> list[int] | None:
    """Columns that a few lines running across the gutter (a centred title, a footer, a caption) hide
    from the plain cut. The gutter is the vertical band, away from the region's edges, that the fewest
    lines cross; when at most a few cross it and the others stand in columns on both sides of it, the
    region is read top to bottom as those crossing lines and the column blocks between them. Without
    this a band across both columns, where their paragraphs happen to end at one height, cuts the
    columns in two and they are read half by half. None when there are no such columns."""
    sub = arr[items]
    x0, x1 = float(sub[:, 0].min()), float(sub[:, 2].max())
    if len(items) < 5 or x1 - x0 < 4 * line_h:
        return None
    xs = np.linspace(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0), 64)
    crossing = (sub[:, 0, None] + 0.05 * line_h < xs[None, :]) & (xs[None, :] < sub[:, 2, None] - 0.05 * line_h)
    counts = crossing.sum(axis=0)
    best = int(np.argmin(counts))
    if counts[best] == 0 or counts[best] > max(2, 0.1 * len(items)):
        return None  # no gutter, or one the plain cut finds (0), or too many lines across it
    # a line spans the gutter when it reaches a line height into both sides; one that only pokes
    # into it (a photographed page's perspective) belongs to the side its centre is on
    gutter = xs[best]
    across = (sub[:, 0] < gutter - line_h) & (sub[:, 2] > gutter + line_h)
    if not across.any():
        return None  # nothing spans it: a gutter the lines only narrow, not one hidden by a title
    narrow = [i for i, c in zip(items, across) if not c]
    left = [i for i in narrow if (arr[i, 0] + arr[i, 2]) / 2 < gutter]
    right = [i for i in narrow if (arr[i, 0] + arr[i, 2]) / 2 >= gutter]
    if not _are_columns(arr[left], arr[right], line_h):
        return None
    spanning = sorted((i for i, c in zip(items, across) if c), key=lambda i: arr[i, 1])
    centre = (arr[:, 1] + arr[:, 3]) / 2
    order, placed = [], set()
    for span in spanning + [None]:
        limit = arr[span, 1] if span is not None else np.inf
        block = [i for i in narrow if i not in placed and centre[i] < limit]
        placed.update(block)
        for side in ([i for i in left if i in block], [i for i in right if i in block]):
            if side:
                order += _xy_cut(side, arr, line_h)
        if span is not None:
            order.append(span)
    return order


def _xy_cut(items: list[int], arr: np.ndarray, line_h: float) -> list[int]:
    if len(items) == 1:
        return items
    sub = arr[items]
    # shrink boxes a little so that touching neighbours (a tight layout) still leave a band
    pad_y, pad_x = 0.15 * (sub[:, 3] - sub[:, 1]), 0.05 * line_h
    row_gaps = _gaps(sub[:, 1] + pad_y, sub[:, 3] - pad_y)
    col_gaps = _gaps(sub[:, 0] + pad_x, sub[:, 2] - pad_x)
    best_col = max((g[1] - g[0] for g in col_gaps), default=0.0)
    # a gutter (wider than a word space, narrow where a photo's perspective squeezes it) between two
    # sides that look like columns of prose, not like the labels and values of a form's rows
    if best_col >= 0.3 * line_h:
        left, right = _split(items, sub, col_gaps, axis=0)
        if _are_columns(arr[left], arr[right], line_h):
            return _xy_cut(left, arr, line_h) + _xy_cut(right, arr, line_h)
    zones = _spanned_columns(items, arr, line_h)
    if zones is not None:
        return zones
    if row_gaps:
        # the widest band across: what is above it is read first (a title over two columns is
        # cut off before the columns are)
        top, bottom = _split(items, sub, row_gaps, axis=1)
        if top and bottom:
            return _xy_cut(top, arr, line_h) + _xy_cut(bottom, arr, line_h)
    if col_gaps and best_col >= 0.3 * line_h:
        left, right = _split(items, sub, col_gaps, axis=0)
        if left and right:
            small, big = (arr[left], arr[right]) if len(left) <= len(right) else (arr[right], arr[left])
            if _paired(small, big) >= 0.5 * len(small):
                # no band across, and most lines of one side share a row with the other's: a receipt's
                # items and prices, a tight form; read row by row, each row left to right
                return _by_rows(items, arr)
            return _xy_cut(left, arr, line_h) + _xy_cut(right, arr, line_h)
    # no empty band: overlapping lines, read by their tops, then left to right
    return sorted(items, key=lambda i: (round(arr[i, 1] / max(line_h * 0.5, 1.0)), arr[i, 0]))


def _by_rows(items: list[int], arr: np.ndarray) -> list[int]:
    """Lines grouped into rows (a line joins the nearest of the last rows when its centre lies within
    half a line height of the row's mean centre), rows top to bottom, each left to right."""
    centre = (arr[:, 1] + arr[:, 3]) / 2
    rows: list[list[int]] = []
    for i in sorted(items, key=lambda i: centre[i]):
        h = arr[i, 3] - arr[i, 1]
        near = [(abs(centre[i] - float(np.mean(centre[row]))), row) for row in rows[-3:]]
        best = min(near, key=lambda pair: pair[0], default=None)
        if best is not None and best[0] < 0.5 * min(h, float(np.median(arr[best[1], 3] - arr[best[1], 1]))):
            best[1].append(i)
        else:
            rows.append([i])
    rows.sort(key=lambda row: float(np.mean(centre[row])))
    return [i for row in rows for i in sorted(row, key=lambda i: arr[i, 0])]


# --------------------------------------------------------------------------- a page


@dataclass
class Region:
    """One line found on a page: where it is, and its crop laid upright and horizontal."""

    quad: np.ndarray  # in the page's coordinates
    crop: np.ndarray
    vertical: bool
    turned: bool  # read upside down and turned

    @property
    def box(self) -> tuple[int, int, int, int]:
        x0, y0 = np.floor(self.quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.quad.max(axis=0)).astype(int)
        return int(x0), int(y0), int(x1) + 1, int(y1) + 1


def level(quads: list[np.ndarray], horizontal: list[bool]) -> list[np.ndarray]:
    """The quads turned by the page's tilt, so the rows of a page photographed at an angle separate
    again for the reading order. The tilt is the median slope of the horizontal lines' top edges,
    each weighted by its length squared: a short line's box (a price, a two-character label) often
    comes out axis-aligned whatever the page's tilt, a long line's slope is the page's."""
    slopes, weights = [], []
    for q, hz in zip(quads, horizontal):
        if not hz:
            continue
        dx, dy = float(q[1, 0] - q[0, 0]), float(q[1, 1] - q[0, 1])  # a turned page reverses the points
        slopes.append(np.arctan(dy / dx) if dx else 0.0)
        weights.append(dx * dx + dy * dy)
    if not slopes:
        return quads
    order = np.argsort(slopes)
    cumulative = np.cumsum(np.asarray(weights)[order])
    angle = float(np.asarray(slopes)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    if abs(angle) < np.deg2rad(0.3):
        return quads
    c, s = np.cos(-angle), np.sin(-angle)
    turn = np.array([[c, -s], [s, c]], np.float32)
    return [q @ turn.T for q in quads]


class PageReader:
    """Finds the lines of a page (``TextDetector``), puts them in reading order, cuts them out
    flat and turns the upside-down ones (``DirectionClassifier``, when there is one). When most
    lines read upside down, the page is read turned, so the reading order is the page's."""

    def __init__(self, detector: TextDetector, classifier: DirectionClassifier | None = None) -> None:
        self.detector = detector
        self.classifier = classifier

    @property
    def label(self) -> str:
        names = [self.detector.spec.name] + ([self.classifier.spec.name] if self.classifier else [])
        return "+".join(names)

    def regions(self, rgb: np.ndarray) -> list[Region]:
        quads = split_stacked(rgb, [q for q, _ in self.detector.detect(rgb)])
        if not quads:
            return []
        vertical = [is_vertical(q) for q in quads]
        crops = [upright_crop(rgb, q) for q in quads]
        turned = [False] * len(quads)
        if self.classifier is not None:
            horizontal = [i for i, v in enumerate(vertical) if not v]
            flags = self.classifier.upside_down([crops[i] for i in horizontal])
            for i, flag in zip(horizontal, flags):
                turned[i] = flag
        horizontal_count = sum(not v for v in vertical)
        page_turned = sum(turned) * 2 > horizontal_count
        # a page is printed one way up: when most of its lines agree, the others follow them
        # (the classifier's doubtful lines are its misses, not lines printed the other way)
        if horizontal_count and not 0.3 < sum(turned) / horizontal_count < 0.7:
            turned = [page_turned and not v for v in vertical]
        h, w = rgb.shape[:2]
        frame = quads
        if page_turned:
            frame = [np.array([w - 1, h - 1], np.float32) - q for q in quads]
        frame = level(frame, [not v for v in vertical])
        boxes = [(q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()) for q in frame]
        out = []
        for i in reading_order(boxes):
            crop = np.ascontiguousarray(crops[i][::-1, ::-1]) if turned[i] else crops[i]
            # the corners as the line reads: a turned line starts at the page's bottom right
            quad = quads[i][[2, 3, 0, 1]] if turned[i] else quads[i]
            out.append(Region(quad=quad, crop=crop, vertical=vertical[i], turned=turned[i]))
        return out
