"""PDF input: the text layer where it can be trusted, rendered pages read otherwise, limits first."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from distill.fonts import faces_for
from engine.batcher import LineBatcher
from engine.detect import DirectionClassifier, PageReader, TextDetector
from engine.images import ImageError, ImageLimits, inspect_image
from engine.inference import Recognizer
from engine.pdf import is_pdf, trusted
from engine.pipeline import recognize_bytes

MODELS = Path(__file__).resolve().parents[2] / "models" / "reference"
LIMITS = ImageLimits(max_pages=5)


def text_layer_pdf(pages: list[list[str]]) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(595, 842))
    for lines in pages:
        c.setFont("STSong-Light", 16)
        for i, line in enumerate(lines):
            c.drawString(72, 760 - 40 * i, line)
        c.showPage()
    c.save()
    return buf.getvalue()


def scanned_pdf(pages: list[list[str]]) -> bytes:
    """Pages as pictures only (a scanner's PDF): no text layer."""
    font = next(f for f in faces_for("train") if f.name == "Noto Sans CJK SC").pil(34)
    images = []
    for lines in pages:
        img = Image.new("RGB", (1240, 1754), "white")
        draw = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            draw.text((150, 200 + 90 * i), line, font=font, fill="black")
        images.append(img)
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine():
    rec = Recognizer(MODELS / "ppocrv6_tiny_rec.onnx", threads=1)
    batcher = LineBatcher(lambda: rec, max_batch=32, max_wait_ms=0.0, max_width_ratio=1.5)
    reader = PageReader(
        TextDetector(MODELS / "ppocrv6_tiny_det.onnx", threads=1),
        DirectionClassifier(MODELS / "ppocr_mobile_cls.onnx", threads=1),
    )
    return batcher, reader


PAGES = [
    ["第一页 增值税专用发票", "购买方名称上海明远科技有限公司"],
    ["第二页 销售方信息", "开户银行招商银行"],
    ["第三页 价税合计", "人民币壹万贰仟元整"],
]


def test_a_three_page_scanned_pdf_comes_back_as_three_pages_of_text(engine):
    batcher, reader = engine
    data = scanned_pdf(PAGES)
    assert is_pdf(data) and inspect_image(data, LIMITS).pages == 3
    outcome = recognize_bytes(data, LIMITS, batcher, "pdf", reader=reader)
    assert [p["page"] for p in outcome.pages] == [1, 2, 3] and {p["source"] for p in outcome.pages} == {"ocr"}
    by_page = {n: [line["text"].replace(" ", "") for line in outcome.lines if line["page"] == n] for n in (1, 2, 3)}
    assert by_page == {n: [t.replace(" ", "") for t in PAGES[n - 1]] for n in (1, 2, 3)}


def test_a_pdf_with_a_text_layer_is_taken_from_it_without_recognition(engine):
    batcher, reader = engine
    outcome = recognize_bytes(text_layer_pdf(PAGES[:2]), LIMITS, batcher, "pdf", reader=reader)
    assert [p["source"] for p in outcome.pages] == ["text_layer", "text_layer"]
    assert [line["text"] for line in outcome.lines] == PAGES[0] + PAGES[1]
    assert all(line["confidence"] == 1.0 and len(line["box"]) == 4 for line in outcome.lines)
    assert outcome.batches == []  # no line went through the recogniser


def test_too_many_pages_and_broken_pdfs_are_refused_before_rendering():
    with pytest.raises(ImageError) as too_many:
        inspect_image(scanned_pdf([["一"]] * 6), LIMITS)
    assert too_many.value.code == "too_many_pages" and too_many.value.status == 413
    with pytest.raises(ImageError) as broken:
        inspect_image(b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF", LIMITS)
    assert broken.value.code == "bad_pdf" and broken.value.status == 400
    with pytest.raises(ImageError) as huge:
        inspect_image(scanned_pdf([["一"]]), ImageLimits(max_pixels=1_000_000))
    assert huge.value.code == "image_too_large"


def test_a_text_layer_is_trusted_only_when_it_is_real_text():
    assert trusted("增值税专用发票 No. 12345678")
    assert not trusted("   ")  # a scanner's empty layer
    assert not trusted("\ufffd\ufffd\ufffd\ufffd增值税发票号码")  # a broken font encoding
    assert not trusted("\ue000\ue001\ue002\ue003\ue004\ue005\ue006\ue007")  # private-use glyph codes


def test_a_pdf_reports_each_page_as_it_is_read(engine):
    batcher, reader = engine
    seen = []
    recognize_bytes(scanned_pdf(PAGES), LIMITS, batcher, "pdf", reader=reader, on_page=lambda *p: seen.append(p))
    assert seen == [(1, 3), (2, 3), (3, 3)]
