"""Render one text line to a grayscale image with a font that has every glyph."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .augment import PIPELINE, degrade
from .fonts import Face

HEIGHT = 32


def pick_face(text: str, faces: tuple[Face, ...], rng: np.random.Generator) -> Face | None:
    """A face that has every glyph of ``text``: a family first, uniformly among the families
    that cover it, then one of that family's faces, so a family with many weights (Noto CJK)
    is not drawn more often than a family with one."""
    families: dict[str, list[Face]] = {}
    for f in faces:
        if f.covers(text):
            families.setdefault(f.name, []).append(f)
    if not families:
        return None
    group = list(families.values())[int(rng.integers(0, len(families)))]
    return group[int(rng.integers(0, len(group)))] if len(group) > 1 else group[0]


def draw_text_and_face(source, faces: tuple[Face, ...], rng: np.random.Generator) -> tuple[str, Face]:
    """Texts from ``source`` (a ``TextSource``) until one has a face in ``faces`` with every
    glyph: that text and its face (``pick_face``)."""
    while True:
        text = source.sample(rng)
        face = pick_face(text, faces, rng)
        if face is not None:
            return text, face


def render_line(text: str, face: Face, rng: np.random.Generator, height: int = HEIGHT,
                strength: float = 0.0, pipeline=PIPELINE) -> np.ndarray:
    """A grayscale uint8 image of ``text``, ``height`` pixels high, degraded by ``strength``
    through ``pipeline`` (``augment.degrade``)."""
    size = int(rng.integers(28, 45))
    font = face.pil(size)
    spacing = float(rng.uniform(-0.04, 0.18)) * size if rng.random() < 0.3 else 0.0
    left, top, right, bottom = font.getbbox(text)
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    width = int(right - left + spacing * max(len(text) - 1, 0))
    pad_x = int(rng.integers(2, max(3, size // 2)))
    pad_top = int(rng.integers(1, max(2, size // 6)))
    pad_bot = int(rng.integers(1, max(2, size // 6)))
    bg = int(rng.integers(175, 256)) if strength > 0 else int(rng.integers(225, 256))
    ink = int(rng.integers(0, max(1, bg - 110)))
    canvas = Image.new("L", (width + 2 * pad_x, line_h + pad_top + pad_bot), bg)
    draw = ImageDraw.Draw(canvas)
    if spacing:
        x = pad_x - left
        for ch in text:
            draw.text((x, pad_top), ch, font=font, fill=ink)
            x += font.getlength(ch) + spacing
    else:
        draw.text((pad_x - left, pad_top), text, font=font, fill=ink)
    img = np.asarray(canvas)
    if rng.random() < 0.5:
        # crop tighter vertically to the ink, as a line detector would
        rows = np.where((img < bg - 10).any(axis=1))[0]
        if len(rows):
            m = int(rng.integers(1, max(2, size // 8)))
            img = img[max(0, rows[0] - m): rows[-1] + 1 + m]
    if strength > 0:
        img = degrade(np.ascontiguousarray(img), rng, strength, pipeline)
    return resize_to_height(img, height)


def resize_to_height(img: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    new_w = max(8, int(round(w * height / h)))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(img, (new_w, height), interpolation=interp)
