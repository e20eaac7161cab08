"""Degradations for synthetic lines: what print, scanners and phone cameras do.

Every function takes and returns a grayscale uint8 image and draws its random
parameters from the generator it is given. ``degrade`` applies a random subset
whose probabilities scale with ``strength`` (0 = clean, 1 = full), which is how
the training curriculum grows the augmentation over the steps.
"""

from __future__ import annotations

import cv2
import numpy as np


def rotate(img, rng, max_deg=2.0):
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-max_deg, max_deg)), 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def perspective(img, rng, amount=0.06):
    h, w = img.shape
    d = amount * h
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-d, d, size=(4, 2)).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def gaussian_blur(img, rng):
    return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.0)))


def motion_blur(img, rng):
    k = int(rng.integers(2, 4))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0 / k
    return cv2.filter2D(img, -1, kernel)


def low_resolution(img, rng):
    h, w = img.shape
    f = float(rng.uniform(0.45, 0.8))
    small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    interp = cv2.INTER_NEAREST if rng.random() < 0.3 else cv2.INTER_LINEAR
    return cv2.resize(small, (w, h), interpolation=interp)


def contrast_brightness(img, rng):
    alpha = float(rng.uniform(0.45, 1.25))
    beta = float(rng.uniform(-50, 50))
    return np.clip(img.astype(np.float32) * alpha + beta + (1 - alpha) * 128, 0, 255).astype(np.uint8)


def uneven_light(img, rng):
    h, w = img.shape
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    a, b = rng.uniform(-1, 1, size=2)
    gain = 1.0 + float(rng.uniform(0.15, 0.5)) * (a * x + b * y * 0.3)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def shadow(img, rng):
    """A band of the line in shade (an object or a hand between the light and the page): the
    band's gain drops to 0.45-0.8 with a soft edge. Only the light changes; the text stays
    as sharp as it was."""
    h, w = img.shape
    x0, x1 = sorted(rng.integers(0, w + 1, size=2))
    gain = np.ones((1, w), np.float32)
    gain[:, x0:x1] = float(rng.uniform(0.45, 0.8))
    gain = cv2.GaussianBlur(gain, (0, 0), sigmaX=float(rng.uniform(1, 6)), sigmaY=0)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def salt_pepper(img, rng):
    out = img.copy()
    amount = float(rng.uniform(0.002, 0.02))
    mask = rng.random(img.shape)
    out[mask < amount / 2] = 0
    out[mask > 1 - amount / 2] = 255
    return out


def gaussian_noise(img, rng):
    noise = rng.normal(0, float(rng.uniform(3, 14)), size=img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def jpeg(img, rng):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(12, 60))])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else img


def ruling_lines(img, rng):
    """Table borders and underlines as they appear around invoice fields."""
    out = img.copy()
    h, w = img.shape
    ink = int(rng.integers(0, 120))
    if rng.random() < 0.5:
        y = int(rng.choice([int(rng.integers(0, 3)), h - 1 - int(rng.integers(0, 3))]))
        cv2.line(out, (0, y), (w, y), ink, 1)
    else:
        x = int(rng.choice([int(rng.integers(0, 4)), w - 1 - int(rng.integers(0, 4))]))
        cv2.line(out, (x, 0), (x, h), ink, 1)
    return out


def curvature(img, rng):
    """A page that is not flat: the line bends by up to a sixth of its height."""
    h, w = img.shape
    amp = float(rng.uniform(0.04, 0.16)) * h
    phase, periods = float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.3, 1.2))
    xs = np.arange(w, dtype=np.float32)
    shift = amp * np.sin(phase + 2 * np.pi * periods * xs / max(w, 1))
    map_x = np.tile(xs, (h, 1))
    map_y = np.arange(h, dtype=np.float32)[:, None] + shift[None, :]
    return cv2.remap(img, map_x, map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def defocus(img, rng):
    """A phone camera out of focus: sigma 2-3 px at a 32 px line height."""
    return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(1.2, 3.0)) * img.shape[0] / 32)


def camera_resolution(img, rng):
    """The line as a phone sees it on a whole page: 12-16 px high, then back to its size."""
    h, w = img.shape
    f = float(rng.integers(12, 17)) / h
    if f >= 1:
        return img
    small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.7 else cv2.INTER_CUBIC)


def strong_jpeg(img, rng):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 61))])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else img


# (function, probability at full strength); geometric ones first, JPEG last
PIPELINE = (
    (rotate, 0.35),
    (perspective, 0.35),
    (ruling_lines, 0.15),
    (uneven_light, 0.3),
    (shadow, 0.2),
    (contrast_brightness, 0.5),
    (gaussian_blur, 0.35),
    (motion_blur, 0.1),
    (low_resolution, 0.3),
    (gaussian_noise, 0.25),
    (salt_pepper, 0.15),
    (jpeg, 0.35),
)

# Photographed lines at full severity (the "wide" training mix sends a share of its degraded lines
# through this instead of PIPELINE): uneven light, perspective, bending, defocus, the camera's
# resolution and strong JPEG, more often and harder than PIPELINE's print-and-scan steps.
PHOTO_PIPELINE = (
    (perspective, 0.6),
    (curvature, 0.35),
    (uneven_light, 0.6),
    (shadow, 0.25),
    (contrast_brightness, 0.5),
    (defocus, 0.35),
    (motion_blur, 0.2),
    (camera_resolution, 0.5),
    (gaussian_noise, 0.4),
    (strong_jpeg, 0.6),
)


def degrade(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0, pipeline=PIPELINE) -> np.ndarray:
    """Each step of ``pipeline`` (function, probability at full strength) in order, with its
    probability scaled by ``strength``."""
    for fn, p in pipeline:
        if rng.random() < p * strength:
            img = fn(img, rng)
    return img
