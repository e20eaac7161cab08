"""Render one text line to a grayscale image with a font that has every glyph."""

from __future__ import annotations

from pathlib import Path

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


def render_line(
    text: str, face: Face, rng: np.random.Generator, height: int = HEIGHT, strength: float = 0.0, pipeline=PIPELINE
) -> np.ndarray:
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
            img = img[max(0, rows[0] - m) : rows[-1] + 1 + m]
    if strength > 0:
        img = degrade(np.ascontiguousarray(img), rng, strength, pipeline)
    return resize_to_height(img, height)


def resize_to_height(img: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    new_w = max(8, int(round(w * height / h)))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(img, (new_w, height), interpolation=interp)


# --------------------------------------------------------------------------- the "wide" training mix

LATIN_FAMILIES = ("DejaVu Sans", "DejaVu Serif", "Liberation Sans", "Liberation Serif", "Liberation Mono")
PANGO_SHARE = 0.4  # lines drawn by Pango/HarfBuzz instead of PIL/FreeType
PHOTO_SHARE = 0.3  # degraded lines sent through augment.PHOTO_PIPELINE instead of PIPELINE


def pango_font_dir(faces: tuple[Face, ...]) -> Path:
    """A folder holding links to the training faces (and the Latin ones) only, for fontconfig."""
    from .fonts import TRAIN_FONTS_DIR

    folder = TRAIN_FONTS_DIR.parent / "train-pango"
    folder.mkdir(parents=True, exist_ok=True)
    for f in faces:
        link = folder / Path(f.path).name
        if not link.exists():
            link.symlink_to(f.path)
    return folder


def wide_margins(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Crop to the ink, then pad each side on its own: from a 1 px cut to the loose bands a line
    finder or a user's selection leaves (up to half the text height above and below, and
    one and a half heights left and right)."""
    ys, xs = np.where(img < int(img.max()) - 40)
    if len(ys) == 0:
        return img
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h = y1 - y0
    if rng.random() < 0.35:
        top, bot, left, right = (int(rng.integers(0, 3)) for _ in range(4))
    else:
        top, bot = (int(rng.uniform(0.0, 0.5) * h) for _ in range(2))
        left, right = (int(rng.uniform(0.0, 1.5) * h) for _ in range(2))
    pad = max(top, bot, left, right) + 1
    padded = np.pad(img, pad, mode="edge")
    return padded[y0 + pad - top : y1 + pad + bot, x0 + pad - left : x1 + pad + right]


def render_line_wide(
    text: str, face: Face, rng: np.random.Generator, height: int = HEIGHT, strength: float = 0.0, pango=None
) -> np.ndarray:
    """Like ``render_line`` but over a wider space: two renderers, natively small sizes (12-20 px
    em on a third of the lines), synthetic bold, Latin runs from a Latin family, any crop
    margin, and photo-severity degradations on a share of the degraded lines."""
    from .augment import PHOTO_PIPELINE

    if pango is not None and rng.random() < PANGO_SHARE:
        em = float(rng.uniform(12, 20)) if rng.random() < 0.33 else float(rng.uniform(20, 44))
        latin = LATIN_FAMILIES[int(rng.integers(len(LATIN_FAMILIES)))] if rng.random() < 0.3 else None
        bold = True if rng.random() < 0.1 else None
        gray = pango.draw(text, face, em, rng, latin_family=latin, bold=bold)
    else:
        size = int(rng.integers(12, 20)) if rng.random() < 0.2 else int(rng.integers(20, 45))
        font = face.pil(size)
        canvas = Image.new("L", (max(8, int(font.getlength(text)) + size), size * 2), 255)
        left = font.getbbox(text)[0]
        ImageDraw.Draw(canvas).text((size // 2 - left + float(rng.uniform(0, 1)), size // 3), text, font=font, fill=0)
        gray = np.asarray(canvas)
    bg = int(rng.integers(175, 256)) if strength > 0 else int(rng.integers(225, 256))
    ink = int(rng.integers(0, max(1, bg - 110)))
    toned = (ink + gray.astype(np.float32) / 255.0 * (bg - ink)).astype(np.uint8)
    img = np.ascontiguousarray(wide_margins(toned, rng))
    if strength > 0:
        pipeline = PHOTO_PIPELINE if rng.random() < PHOTO_SHARE else PIPELINE
        img = degrade(img, rng, strength, pipeline)
    return resize_to_height(img, height)
