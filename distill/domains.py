"""Two customer domains that no training pool holds, for measuring the adaptation loop
(docs/lifecycle.md, "Adapting the served model to a customer's documents").

- **dot-matrix**: receipts printed by a budget impact printer. The text is rasterised without
  anti-aliasing on a 12- or 14-dot grid (the printers' bitmap fonts, HZK12-class), every dot
  is struck as a round ink spot whose darkness follows a worn ribbon (pins that print faintly,
  a ribbon that fades along the line), on tinted paper, then lightly blurred and scanned.
  No generator of ours prints with dots.
- **brush**: Kouzan Brush Sousyo, a grass-script (cursive) brush face from Debian's
  ``fonts-kouzan-mouhitsu``, downloaded
  and unpacked into ``font_dir`` (not installed). No training pool, out-of-distribution suite or
  reserved set holds it. It covers the Japanese kanji set, 65 % of GB2312, so texts are drawn
  until the face has every glyph. Its cmap also maps 7,225 code points (Latin-1 and fullwidth
  punctuation, ``￥``, ``吨``, ...) to empty glyphs, which ``fonts.coverage`` does not count
  (before 2026-12-07 it did: such characters were in the labels and not on the line).

Texts come from the dev split of our text source (no training line of ours has them). Each
domain writes two folders of ``labels.tsv`` + images: ``adapt`` (what a customer corrected)
and ``test`` (lines of the same domain the adaptation never sees), with no text in both.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DOMAINS = ("dot-matrix", "brush")
BRUSH_DEB = "fonts-kouzan-mouhitsu"
BRUSH_FILE = "KouzanBrushFontSousyo.ttf"
BRUSH_DIR = "usr/share/fonts/truetype/kouzan-mouhitsu"
# receipts: amounts, dates, items and invoice fields more than prose
DOT_WEIGHTS = (0.2, 0.4, 0.05, 0.2, 0.15, 0.0, 0.0)
BRUSH_WEIGHTS = (0.55, 0.1, 0.05, 0.05, 0.1, 0.0, 0.15)


def fetch_brush_font(font_dir: Path) -> Path:
    """The brush face's file in ``font_dir``, downloaded from Debian and unpacked on first use."""
    font_dir = Path(font_dir)
    target = font_dir / BRUSH_FILE
    if target.is_file():
        return target
    font_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", BRUSH_DEB], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob(f"{BRUSH_DEB}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        target.write_bytes((Path(tmp) / "x" / BRUSH_DIR / BRUSH_FILE).read_bytes())
    return target


def _source(weights, seed: int):
    from engine.charset import load_charset

    from .text import TextSource

    return TextSource(load_charset(), "dev", 2, 14, seed=seed, weights=weights)


def dot_matrix_line(text: str, face, rng: np.random.Generator) -> np.ndarray:
    """``text`` struck by a dot-matrix printer (grayscale uint8)."""
    import cv2

    dots = int(rng.choice([12, 14]))
    font = face.pil(dots)
    left, top, right, bottom = font.getbbox(text)
    ascent, descent = font.getmetrics()
    grid = Image.new("1", (max(1, right - left) + 2, ascent + descent + 2), 0)
    draw = ImageDraw.Draw(grid)
    draw.fontmode = "1"  # no anti-aliasing: every pixel is a pin or not
    draw.text((1 - left, 1), text, font=font, fill=1)
    on = np.asarray(grid, dtype=bool)
    pitch = int(rng.integers(5, 8))
    radius = pitch * float(rng.uniform(0.28, 0.42))  # dots apart, as an impact printer strikes them
    pad = int(rng.integers(2, 5)) * pitch
    paper = int(rng.integers(205, 250))
    tint = rng.uniform(-8, 8, size=3)
    h, w = on.shape
    ink = np.zeros((h * pitch + 2 * pad, w * pitch + 2 * pad), np.float32)
    pins = rng.uniform(0.55, 1.0, size=h)  # each pin row strikes with its own force
    pins[rng.integers(0, h, size=2)] *= float(rng.uniform(0.0, 0.4))  # worn or broken pins
    fade = np.linspace(1.0, float(rng.uniform(0.6, 1.0)), w)  # the ribbon fades along the line
    jitter = rng.normal(0, pitch * 0.12, size=(h, w, 2))
    for y, x in zip(*np.nonzero(on)):
        cx = pad + x * pitch + pitch / 2 + jitter[y, x, 0]
        cy = pad + y * pitch + pitch / 2 + jitter[y, x, 1]
        strength = pins[y] * fade[x] * float(rng.uniform(0.8, 1.0))
        cv2.circle(ink, (int(round(cx * 4)), int(round(cy * 4))), int(round(radius * 4)), strength, -1, cv2.LINE_AA, 2)
    ink = np.clip(ink, 0, 1)
    ink = cv2.GaussianBlur(ink, (0, 0), float(rng.uniform(0.5, 1.1)))
    darkest = float(rng.uniform(20, 90))
    gray = paper - ink * (paper - darkest)
    rgb = np.stack([gray + t for t in tint], axis=-1)
    rgb += rng.normal(0, float(rng.uniform(2, 8)), size=rgb.shape)
    return cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def brush_line(text: str, face, rng: np.random.Generator) -> np.ndarray:
    """``text`` in the brush face, ink on paper, lightly blurred and scanned (grayscale uint8)."""
    import cv2

    size = int(rng.integers(36, 56))
    font = face.pil(size)
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = int(rng.integers(4, size // 2)), int(rng.integers(3, size // 5))
    paper = int(rng.integers(215, 252))
    ink = int(rng.integers(0, 70))
    canvas = Image.new("L", (right - left + 2 * pad_x, bottom - top + 2 * pad_y), paper)
    ImageDraw.Draw(canvas).text((pad_x - left, pad_y - top), text, font=font, fill=ink)
    img = np.asarray(canvas).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 0.9)))
    img += rng.normal(0, float(rng.uniform(1, 6)), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _faces(domain: str, font_dir: Path):
    from .fonts import Face, faces_for

    if domain == "brush":
        path = fetch_brush_font(font_dir)
        return (Face(str(path), 0, "Kouzan Mouhitsu", "Regular", "domain", BRUSH_DEB),)
    # the printers' bitmap fonts are Song and Hei designs: the training pool's Noto faces
    return tuple(f for f in faces_for("train") if f.name in ("Noto Sans CJK SC", "Noto Serif CJK SC"))


def write_domain(domain: str, out: Path, adapt_lines: int, test_lines: int, font_dir: Path, seed: int = 0) -> dict:
    """``out/adapt`` and ``out/test`` of ``domain``; returns the line counts."""
    import cv2

    from .data import write_labels
    from .render import draw_text_and_face

    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}")
    faces = _faces(domain, font_dir)
    source = _source(DOT_WEIGHTS if domain == "dot-matrix" else BRUSH_WEIGHTS, seed)
    draw = dot_matrix_line if domain == "dot-matrix" else brush_line
    rng = np.random.default_rng([seed, DOMAINS.index(domain), 2026])
    seen: set[str] = set()
    counts = {}
    for part, n in (("adapt", adapt_lines), ("test", test_lines)):
        folder = Path(out) / part
        (folder / "lines").mkdir(parents=True, exist_ok=True)
        items = []
        while len(items) < n:
            try:
                text, face = draw_text_and_face(source, faces, rng)
            except RuntimeError:  # a hundred draws of one kind found no dev-split text: draw again
                continue
            if text in seen:
                continue
            seen.add(text)
            rel = f"lines/{len(items):05d}.png"
            cv2.imwrite(str(folder / rel), draw(text, face, rng))
            items.append((rel, text))
        write_labels(folder, items)
        counts[part] = len(items)
    return counts
