"""A simple text-line finder: horizontal projection of ink, split into bands and segments.

Photos are rarely level, so the page is first turned upright: the skew is the angle
(within +-10 degrees) at which the rows of ink are most sharply separated. Good for
scans, screenshots and photos of documents; curved text or text at steep angles needs
a learned detector.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)
# Smaller skews do not disturb the line finder; levelling them would only cost time.
MIN_DESKEW_DEGREES = 0.5


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Binary mask (uint8 0/1) of ink, whatever the polarity (dark on light or light on dark)."""
    blurred = cv2.medianBlur(gray, 3) if min(gray.shape) >= 3 else gray
    _, mask = cv2.threshold(blurred, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    # Ink is the minority class: if Otsu picked the background, flip.
    if mask.mean() > 0.5:
        mask = 1 - mask
    # A flat image (no contrast) has no ink.
    if int(gray.max()) - int(gray.min()) < 24:
        mask[:] = 0
    return mask


def runs_over(profile: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(start, end) of each run of the profile above ``threshold``."""
    on = profile > threshold
    runs: list[tuple[int, int]] = []
    start = None
    for i, v in enumerate(on):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(on)))
    return runs


def merge_close(runs: list[tuple[int, int]], gap: float) -> list[tuple[int, int]]:
    """The runs, each joined to the one before when at most ``gap`` lies between them."""
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def char_size(mask: np.ndarray) -> int:
    """A robust guess of the glyph size (em) in pixels, from the ink's connected components."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sizes = [max(w, h) for _, _, w, h, area in stats[1:count] if area >= 4]
    if not sizes:
        return 0
    return int(np.percentile(sizes, 75))


def find_lines(gray: np.ndarray, min_height: int = 6) -> list[Box]:
    """Boxes of text lines in reading order (top to bottom, then left to right)."""
    h, w = gray.shape[:2]
    mask = ink_mask(gray)
    if not mask.any():
        return []
    # Characters such as 二 or 三, and accents and dots, leave gaps inside a line: close
    # gaps shorter than 0.4 em vertically before cutting the page into bands.
    em = char_size(mask)
    close_h = max(1, int(0.4 * em))
    if close_h > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((close_h, 1), np.uint8))
    rows = mask.sum(axis=1).astype(np.float32)
    bands = runs_over(rows, threshold=max(1.0, 0.002 * w))
    if not bands:
        return []
    boxes: list[Box] = []
    for y0, y1 in bands:
        band_h = y1 - y0
        if band_h < min_height:
            continue
        cols = mask[y0:y1].sum(axis=0).astype(np.float32)
        segments = merge_close(runs_over(cols, threshold=0.0), gap=max(2, int(2.5 * band_h)))
        for x0, x1 in segments:
            if (x1 - x0) < max(2, band_h // 4) and (x1 - x0) * band_h < 4 * min_height**2:
                continue  # a speck
            pad_y = max(2, band_h // 6)
            pad_x = max(2, band_h // 4)
            boxes.append((max(0, x0 - pad_x), max(0, y0 - pad_y), min(w, x1 + pad_x), min(h, y1 + pad_y)))
    return boxes


def estimate_skew(gray: np.ndarray, max_angle: float = 10.0, step: float = 0.25) -> float:
    """The rotation in degrees (counter-clockwise positive, as cv2.getRotationMatrix2D) that levels
    the text: the angle whose horizontal ink profile has the largest variance."""
    mask = ink_mask(gray)
    if not mask.any():
        return 0.0
    scale = min(1.0, 600.0 / max(mask.shape))
    if scale < 1.0:
        mask = cv2.resize(mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mask = mask.astype(np.float32)
    # coarse to fine: whole degrees first, then ``step`` around the best one (30 rotations, not 81)
    coarse = _best_angle(mask, np.arange(-max_angle, max_angle + 0.5, 1.0))
    return _best_angle(mask, np.arange(coarse - 1.0, coarse + 1.0 + step / 2, step))


def _best_angle(mask: np.ndarray, angles) -> float:
    """Of ``angles``, the one whose horizontal ink profile has the largest variance."""
    h, w = mask.shape
    center = (w / 2, h / 2)
    best_angle, best_score = 0.0, -1.0
    for angle in angles:
        rotation = cv2.getRotationMatrix2D(center, float(angle), 1.0)
        rows = cv2.warpAffine(mask, rotation, (w, h), flags=cv2.INTER_NEAREST).sum(axis=1)
        score = float(np.var(rows))
        # Prefer level when scores tie (a single short word, a blank page).
        if score > best_score * 1.0001 or (
            abs(score - best_score) <= best_score * 1e-4 and abs(angle) < abs(best_angle)
        ):
            best_angle, best_score = float(angle), score
    return best_angle


def rotate_upright(rgb: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``angle`` on a canvas large enough to keep every pixel, white outside;
    returns the image and the 2x3 matrix mapping original to rotated coordinates."""
    h, w = rgb.shape[:2]
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    new_w, new_h = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    rotation[0, 2] += new_w / 2 - w / 2
    rotation[1, 2] += new_h / 2 - h / 2
    turned = cv2.warpAffine(rgb, rotation, (new_w, new_h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    return turned, rotation


def rounded_points(points) -> list[list[float]]:
    """Corners as an answer carries them: [[x, y], ...] to a tenth of a pixel."""
    return [[round(float(x), 1), round(float(y), 1)] for x, y in points]


def corners_in_original(box: Box, rotation: np.ndarray) -> np.ndarray:
    """The corners (top-left, top-right, bottom-right, bottom-left) of a box found in the rotated
    image, in the original image."""
    x0, y0, x1, y1 = box
    inverse = cv2.invertAffineTransform(rotation)
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64)
    return corners @ inverse.T


def box_in_original(box: Box, rotation: np.ndarray, width: int, height: int) -> Box:
    """The axis-aligned box, in the original image, around a box found in the rotated image."""
    pts = corners_in_original(box, rotation)
    return (
        max(0, int(np.floor(pts[:, 0].min()))),
        max(0, int(np.floor(pts[:, 1].min()))),
        min(width, int(np.ceil(pts[:, 0].max()))),
        min(height, int(np.ceil(pts[:, 1].max()))),
    )
