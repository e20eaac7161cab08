"""Synthetic whole pages with their lines in reading order: for the page benchmark and tests.

A page is laid out as a document would be: a title, paragraphs with indented first lines
and lines of mixed sizes, a two-column part, and a form of label/value rows; then scanned
(paper tone, slight rotation, noise, JPEG) or photographed (perspective, a lighting
gradient, blur, JPEG). The truth is the text of every line in reading order. Faces come
from a pool given by the caller: the training pool, or the out-of-distribution suite's
families for a held-out set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw

PAGE_W, PAGE_H = 1240, 1754  # A4 at 150 dpi
# running text (``distill.text.TextSource`` weights): prose, words and invoice fields; no
# uniformly drawn rare characters
PAGE_WEIGHTS = (0.3, 0.2, 0.05, 0.05, 0.05, 0.0, 0.35)


@dataclass
class Page:
    image: np.ndarray  # RGB uint8
    lines: list[str]  # in reading order
    layout: str
    # each line's ink box as it lies in ``image`` (4 x 2 float32, corners top-left, top-right,
    # bottom-right, bottom-left as drawn), in the order of ``lines``: a detector's ground truth
    quads: list[np.ndarray] = field(default_factory=list)


def full_faces(faces) -> list:
    """Faces that cover practically all of the charset, so a page never needs a fallback."""
    from engine.charset import load_charset

    from .fonts import coverage

    chars = load_charset().chars
    return [f for f in faces if sum(ord(c) in coverage(f.path, f.index) for c in chars) > 0.995 * len(chars)]


def _fit(font, text: str, width: int) -> str:
    while text and font.getlength(text) > width:
        text = text[:-1]
    return text.rstrip()


def _fill(font, texts, width: int, rng: np.random.Generator, full: float = 0.85) -> str:
    """A line of running text: texts joined until the line is full (or, now and then, the short
    last line of a paragraph)."""
    target = width if rng.random() < full else width * float(rng.uniform(0.3, 0.8))
    line = next(texts)
    while font.getlength(line) < target:
        line += str(rng.choice(["，", "。", "；", " ", ""])) + next(texts)
    return _fit(font, line, int(target)).strip("，。； ") or _fit(font, next(texts), width)


def _draw(draw, xy, text, font, ink) -> np.ndarray:
    """Draw ``text`` with its ink box's left edge at x; returns that box's four corners."""
    left, top, right, bottom = font.getbbox(text)
    draw.text((xy[0] - left, xy[1]), text, font=font, fill=ink)
    x0, y0, x1, y1 = xy[0], xy[1] + top, xy[0] + right - left, xy[1] + bottom
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def layout_page(texts, faces, rng: np.random.Generator, layout: str) -> tuple[Image.Image, list[str], list[np.ndarray]]:
    """Draw ``texts`` (an iterator of strings) on a white page; the lines drawn, in reading order,
    and each one's ink box (``_draw``)."""
    page = Image.new("RGB", (PAGE_W, PAGE_H), "white")
    draw = ImageDraw.Draw(page)
    quads: list[np.ndarray] = []
    face = faces[int(rng.integers(len(faces)))]
    ink = tuple(int(v) for v in rng.integers(0, 60, 3))
    margin, y, lines = 110, 110, []
    title = face.pil(int(rng.integers(38, 50)))
    t = _fit(title, next(texts), PAGE_W - 2 * margin)
    quads.append(_draw(draw, (margin + int(rng.integers(0, 200)), y), t, title, ink))
    lines.append(t)
    y += int(title.size * 1.9)
    body = face.pil(int(rng.integers(22, 30)))
    step = int(body.size * float(rng.uniform(1.5, 1.9)))
    if layout == "columns":
        col_w = (PAGE_W - 2 * margin - 60) // 2
        rows = int(rng.integers(9, 14))
        for col in range(2):
            x = margin + col * (col_w + 60)
            for r in range(rows):
                t = _fill(body, texts, col_w - (40 if r == 0 else 0), rng)
                quads.append(_draw(draw, (x + (40 if r == 0 else 0), y + r * step), t, body, ink))
                lines.append(t)
        return page, lines, quads
    if layout == "form":
        label_w = int(body.size * 6.5)
        for r in range(int(rng.integers(8, 14))):
            label = _fit(body, next(texts)[: int(rng.integers(2, 6))] + "：", label_w - 20)
            value = _fill(body, texts, PAGE_W - 2 * margin - label_w, rng, full=0.3)
            quads.append(_draw(draw, (margin, y + r * step), label, body, ink))
            quads.append(_draw(draw, (margin + label_w, y + r * step), value, body, ink))
            lines += [label, value]
        return page, lines, quads
    # paragraphs: indented first lines, a smaller note now and then
    while y < PAGE_H - 200 and len(lines) < 31:
        for r in range(int(rng.integers(2, 5))):
            font = body if rng.random() > 0.15 else face.pil(int(body.size * 0.75))
            indent = int(body.size * 2) if r == 0 else 0
            t = _fill(font, texts, PAGE_W - 2 * margin - indent, rng, full=0.9 if r < 3 else 0.5)
            quads.append(_draw(draw, (margin + indent, y), t, font, ink))
            lines.append(t)
            y += int(font.size * (step / body.size))
            if y >= PAGE_H - 200:
                break
        y += int(body.size * 0.8)
    return page, lines, quads


def scanned(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return scanned_with_transform(rgb, rng)[0]


def scanned_with_transform(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The scanned page, and the 3 x 3 matrix that took the page's points where they lie in it."""
    h, w = rgb.shape[:2]
    tone = float(rng.uniform(0.86, 0.98))
    img = rgb.astype(np.float32) * tone + float(rng.uniform(0, 10))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-1.2, 1.2)), 1.0)
    img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 0.8)))
    img = img + rng.normal(0, float(rng.uniform(2, 6)), img.shape)
    ok, buf = cv2.imencode(
        ".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 90))]
    )
    return cv2.imdecode(buf, cv2.IMREAD_COLOR), np.vstack([m, [0.0, 0.0, 1.0]])


def photographed(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The page on a table, seen by a phone: perspective, a darker background around it, light
    falling off across the page, slight blur, JPEG."""
    return photographed_with_transform(rgb, rng)[0]


def photographed_with_transform(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The photographed page, and the 3 x 3 perspective that took the page's points where they lie in it."""
    h, w = rgb.shape[:2]
    out_w, out_h = int(w * 1.08), int(h * 1.08)
    j = 0.05 * w
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    base = np.float32(
        [
            [0.04 * w, 0.04 * h],
            [out_w - 0.04 * w, 0.04 * h],
            [out_w - 0.04 * w, out_h - 0.04 * h],
            [0.04 * w, out_h - 0.04 * h],
        ]
    )
    dst = (base + rng.uniform(-j, j, (4, 2))).astype(np.float32)
    bg = tuple(int(v) for v in rng.integers(40, 120, 3))
    warp = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(rgb, warp, (out_w, out_h), borderValue=bg)
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    gx, gy = rng.uniform(-1, 1, 2)
    ramp = gx * xx / out_w + gy * yy / out_h
    light = 1.0 - float(rng.uniform(0.3, 0.55)) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = img.astype(np.float32) * light[:, :, None] * float(rng.uniform(0.85, 1.0))
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.1)))
    img = img + rng.normal(0, float(rng.uniform(2, 5)), img.shape)
    ok, buf = cv2.imencode(
        ".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 85))]
    )
    return cv2.imdecode(buf, cv2.IMREAD_COLOR), warp


LAYOUTS = ("paragraphs", "columns", "form")


def make_page(texts, faces, seed: int, capture: str, layout: str | None = None) -> Page:
    rng = np.random.default_rng(seed)
    layout = layout or LAYOUTS[seed % len(LAYOUTS)]
    page, lines, quads = layout_page(texts, faces, rng, layout)
    rgb, warp = np.asarray(page), np.eye(3)
    if capture == "scan":
        rgb, warp = scanned_with_transform(rgb, rng)
    elif capture == "photo":
        rgb, warp = photographed_with_transform(rgb, rng)
    elif capture != "clean":
        raise ValueError(f"unknown capture {capture!r}")
    kept = [(t, q) for t, q in zip(lines, quads) if t.strip()]
    moved = [cv2.perspectiveTransform(q[None].astype(np.float64), warp)[0].astype(np.float32) for _, q in kept]
    return Page(np.ascontiguousarray(rgb), [t for t, _ in kept], layout, moved)
