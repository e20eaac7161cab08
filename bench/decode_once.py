"""What the web process spends checking an upload before it queues it: the full decode it did
before (``decode_image``, what the worker does again) against the structural check it does now
(``inspect_image``: a PNG's chunks, a JPEG's end marker). Medians over repeated runs,
in one process.

    .venv/bin/python -m bench.decode_once
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.images import ImageLimits, decode_image, inspect_image

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def page(width: int, height: int, seed: int = 0) -> Image.Image:
    """A page of text lines on slightly noisy paper (what a scan or a photo of a form holds)."""
    rng = np.random.default_rng(seed)
    paper = np.clip(rng.normal(238, 6, (height, width)), 0, 255).astype(np.uint8)
    img = Image.fromarray(paper).convert("RGB")
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(FONT, max(12, width // 50))
    for y in range(height // 20, height - height // 20, max(20, height // 30)):
        draw.text(
            (width // 12, y), "购买方名称：上海明远科技有限公司 金额 ¥1,280.00 税率 13%", fill=(20, 20, 20), font=font
        )
    return img


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return buf.getvalue()


def median_ms(fn, data: bytes, limits: ImageLimits, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(data, limits)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> int:
    limits = ImageLimits()
    cases = {
        "single line PNG 640x48": encoded(page(640, 48), "PNG"),
        "phone photo JPEG 1600x1200": encoded(page(1600, 1200, 1), "JPEG"),
        "A4 scan PNG 1240x1754 (150 dpi)": encoded(page(1240, 1754, 2), "PNG"),
        "A4 scan JPEG 2480x3508 (300 dpi)": encoded(page(2480, 3508, 3), "JPEG"),
    }
    print("| upload | bytes | full decode (before), ms p50 | structural check (now), ms p50 | saved |")
    print("| --- | --- | --- | --- | --- |")
    for name, data in cases.items():
        runs = 200 if len(data) < 100_000 else 20
        before = median_ms(decode_image, data, limits, runs)
        now = median_ms(inspect_image, data, limits, runs)
        print(f"| {name} | {len(data):,} | {before:.2f} | {now:.2f} | {before - now:.2f} ms ({before / now:.0f}×) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
