"""OpenCV preprocessing of text lines for a recogniser described by a ModelSpec."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .modelpkg import ModelSpec


def to_gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def binarize(gray: np.ndarray) -> np.ndarray:
    """Adaptive (local mean) binarisation; evens out shadows and uneven light."""
    block = max(15, (min(gray.shape[:2]) // 2) | 1)
    return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 15)


# Blurred lines are sharpened before the recogniser reads them (``sharpen_blurred``). A line's
# sharpness is its steepest edges (99th percentile of the Sobel gradient) over its contrast (5th to
# 95th percentile of its gray levels), taken at the model's input height: on the frozen page suite
# the median line of a crisp page scores 2.0 to 3.7, of a page photographed out of focus 1.2 to
# 1.6. Lines under SHARPEN_BELOW get an unsharp
# mask of SHARPEN_AMOUNT with a Gaussian of SHARPEN_SIGMA model pixels. The three figures were
# chosen on the frozen out-of-distribution page and line suites (docs/serving.md, "Blurred lines").
SHARPEN_BELOW = 1.65
SHARPEN_AMOUNT = 1.0
SHARPEN_SIGMA = 4.0


def _percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile`` (linear interpolation) by partition: a third of its time on a line."""
    flat = values.ravel()
    k = (flat.size - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, flat.size - 1)
    part = np.partition(flat, (lo, hi))
    return float(part[lo]) + (float(part[hi]) - float(part[lo])) * (k - lo)


def sharpness(gray: np.ndarray) -> float:
    """Steepest edges over contrast (see SHARPEN_BELOW); inf for a line with next to no contrast."""
    lo, hi = _percentile(gray, 5), _percentile(gray, 95)
    if hi - lo < 10:
        return math.inf
    g = gray.astype(np.float32)
    edges = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return _percentile(edges, 99) / (hi - lo)


def sharpen_blurred(line: np.ndarray, color_order: str = "RGB") -> np.ndarray:
    """``line`` (uint8, already at the model's height) with an unsharp mask when it is blurred."""
    if line.ndim == 2:
        gray = line
    else:
        gray = cv2.cvtColor(line, cv2.COLOR_BGR2GRAY if color_order == "BGR" else cv2.COLOR_RGB2GRAY)
    if sharpness(gray) >= SHARPEN_BELOW:
        return line
    blurred = cv2.GaussianBlur(line, (0, 0), SHARPEN_SIGMA)
    return cv2.addWeighted(line, 1 + SHARPEN_AMOUNT, blurred, -SHARPEN_AMOUNT, 0)


def target_width(width: int, height: int, spec: ModelSpec) -> int:
    """Width after scaling to the model's height (aspect kept), clamped and rounded up to the stride."""
    scaled = max(1, round(width * spec.input_height / max(1, height)))
    scaled = min(max(scaled, spec.min_width), spec.max_width)
    return int(math.ceil(scaled / spec.width_multiple) * spec.width_multiple)


def line_widths(width: int, height: int, spec: ModelSpec) -> tuple[int, int]:
    """(the prepared line's width, how much of it is the crop's own pixels, scaled): the rest is
    padding up to the model's minimum width or stride."""
    out_w = target_width(width, height, spec)
    return out_w, min(out_w, max(1, round(width * spec.input_height / max(1, height))))


def content_share(crop: np.ndarray, spec: ModelSpec) -> float:
    """The share of a prepared line's width (``prepare_line``) that is the crop's own pixels."""
    out_w, scaled_w = line_widths(crop.shape[1], crop.shape[0], spec)
    return scaled_w / out_w


def prepare_line(
    crop_rgb: np.ndarray, spec: ModelSpec, use_binarize: bool = False, sharpen: bool = False
) -> np.ndarray:
    """One line crop (HxWx3 RGB uint8) to a float32 CxHxW' array ready for the model.

    The line is scaled to the model's input height keeping its aspect ratio; a line
    wider than ``max_width`` is squeezed to it; the width is rounded up to the
    stride with the model's pad pixel. With ``sharpen`` (and no binarisation), a blurred
    line is sharpened once scaled (``sharpen_blurred``).
    """
    h, w = crop_rgb.shape[:2]
    out_w, scaled_w = line_widths(w, h, spec)
    if spec.input_channels == 1 or use_binarize:
        img = to_gray(crop_rgb)
        if use_binarize:
            img = binarize(img)
        if spec.input_channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    else:
        img = crop_rgb
    if spec.color_order == "BGR":
        img = img[:, :, ::-1]
    interp = cv2.INTER_AREA if h > spec.input_height else cv2.INTER_LINEAR
    img = cv2.resize(np.ascontiguousarray(img), (scaled_w, spec.input_height), interpolation=interp)
    if sharpen and not use_binarize:
        img = sharpen_blurred(img, spec.color_order)
    if img.ndim == 2:
        img = img[:, :, None]
    canvas = np.full((spec.input_height, out_w, spec.input_channels), spec.pad_pixel, dtype=np.float32)
    canvas[:, :scaled_w, :] = img
    mean = np.asarray(spec.norm_mean, dtype=np.float32)
    std = np.asarray(spec.norm_std, dtype=np.float32)
    canvas = (canvas / 255.0 - mean) / std
    return np.ascontiguousarray(canvas.transpose(2, 0, 1))


def pad_batch(lines: list[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """Stack CxHxW arrays of different widths into NxCxHxWmax, padding with the model's pad pixel."""
    width = max(a.shape[2] for a in lines)
    pad_value = (spec.pad_pixel / 255.0 - np.asarray(spec.norm_mean, dtype=np.float32)) / np.asarray(
        spec.norm_std, dtype=np.float32
    )
    batch = np.empty((len(lines), spec.input_channels, spec.input_height, width), dtype=np.float32)
    batch[:] = pad_value[None, :, None, None]
    for i, arr in enumerate(lines):
        batch[i, :, :, : arr.shape[2]] = arr
    return batch
