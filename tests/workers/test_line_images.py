"""One-line images read whole, two-row images read row by row, and the teacher cascade: the real
detector and recognisers (PP-OCRv6 tiny, PP-OCRv6 small) through ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from distill.fonts import faces_for
from engine.batcher import LineBatcher
from engine.inference import Recognizer
from engine.pipeline import recognize_array, row_bands, row_spans

MODELS = Path(__file__).resolve().parents[2] / "models" / "reference"  # `make models` builds them


@pytest.fixture(scope="module")
def tiny():
    return Recognizer(MODELS / "ppocrv6_tiny_rec.onnx", threads=1)


@pytest.fixture(scope="module")
def small():
    return Recognizer(MODELS / "ppocrv6_small_rec.onnx", threads=1)


@pytest.fixture(scope="module")
def font():
    face = [f for f in faces_for("train") if f.name == "Noto Sans CJK SC" and f.style == "Regular"][0]
    return face.pil(30)


def photographed_line(font, text: str) -> np.ndarray:
    """A line with loose margins under light that falls off from left to right, slightly blurred."""
    img = Image.new("RGB", (40 + int(font.getlength(text)) + 60, 70), (235, 232, 225))
    ImageDraw.Draw(img).text((40, 16), text, font=font, fill=(40, 40, 40))
    rgb = np.asarray(img).astype(np.float32)
    rgb *= np.linspace(1.0, 0.55, rgb.shape[1])[None, :, None]
    return cv2.GaussianBlur(np.clip(rgb, 0, 255).astype(np.uint8), (0, 0), 0.8)


def test_a_photographed_line_is_read_whole(font, tiny, reader):
    rgb = photographed_line(font, "开票日期：2026年09月17日")
    out = recognize_array(rgb, LineBatcher(lambda: tiny), "r", reader=reader)
    assert out.text == ["开票日期：2026年09月17日"]
    assert out.lines[0]["box"] == [0, 0, rgb.shape[1], rgb.shape[0]]


def test_an_image_of_two_rows_is_read_row_by_row(font, tiny, reader):
    img = Image.new("RGB", (560, 110), "white")
    draw = ImageDraw.Draw(img)
    draw.text((12, 8), "购买方名称：上海明远科技", font=font, fill="black")
    draw.text((12, 60), "价税合计：1280.00", font=font, fill="black")
    out = recognize_array(np.asarray(img), LineBatcher(lambda: tiny), "r", reader=reader)
    assert [t.replace(" ", "") for t in out.text] == ["购买方名称：上海明远科技", "价税合计：1280.00"]
    top, bottom = out.lines[0]["box"], out.lines[1]["box"]
    assert top[3] <= bottom[1] + 1 and top[0] == 0  # bands cut between the rows, from the left edge


def test_rows_are_found_from_overlapping_boxes_and_cut_halfway_between():
    boxes = [(10, 10, 100, 40), (120, 12, 300, 42), (10, 60, 200, 90), (5, 2, 8, 5)]  # the last is a speck
    rows = row_spans(boxes, min_height=10)
    assert rows == [(10, 10, 300, 42), (10, 60, 200, 90)]
    bands = row_bands(np.zeros((100, 400, 3), np.uint8), rows)
    assert bands == [(0, 0, 316, 51), (0, 51, 215, 100)]


def test_the_cascade_rereads_doubtful_lines_with_the_stronger_model_and_says_so(font, tiny, small, reader):
    rgb = photographed_line(font, "但是命令行设置比配置文件优先")
    never = LineBatcher(lambda: tiny, cascade=lambda: small, cascade_below=0.0)
    always = LineBatcher(lambda: tiny, cascade=lambda: small, cascade_below=1.01)
    first, again = (recognize_array(rgb, b, "r", reader=reader) for b in (never, always))
    assert first.lines[0]["model"] == tiny.label and first.model_label == tiny.label
    assert again.lines[0]["model"] == small.label
    assert again.model_label == ""  # no line was the served model's own: the worker names its model
    assert again.text == ["但是命令行设置比配置文件优先"]


def test_the_cascade_reads_again_only_below_its_threshold(font, tiny, small, reader):
    rgb = photographed_line(font, "省略尾部的零和尾部的小数点")
    confidence = recognize_array(rgb, LineBatcher(lambda: tiny), "r", reader=reader).lines[0]["confidence"]
    below = LineBatcher(lambda: tiny, cascade=lambda: small, cascade_below=confidence - 1e-3)
    above = LineBatcher(lambda: tiny, cascade=lambda: small, cascade_below=confidence + 1e-3)
    assert recognize_array(rgb, below, "r", reader=reader).lines[0]["model"] == tiny.label
    assert recognize_array(rgb, above, "r", reader=reader).lines[0]["model"] == small.label


def test_the_cascade_at_its_default_threshold_reads_a_photographed_name_the_served_model_misreads(tiny, small, reader):
    from django.conf import settings

    from workers.runtime import line_decoder

    decoder = line_decoder()  # the worker's: the beam with the language model
    rgb = cv2.imread(str(Path(__file__).resolve().parents[1] / "fixtures" / "company_photo.png"))[:, :, ::-1].copy()
    alone = recognize_array(rgb, LineBatcher(lambda: tiny, decoder=decoder), "r", reader=reader)
    cascade = LineBatcher(
        lambda: tiny, decoder=decoder, cascade=lambda: small, cascade_below=settings.OCR_CASCADE_BELOW
    )
    again = recognize_array(rgb, cascade, "r", reader=reader)
    assert (
        alone.text != ["收款单位：碑绥垛实业有限责任公司"] and alone.lines[0]["confidence"] < settings.OCR_CASCADE_BELOW
    )
    assert again.text == ["收款单位：碑绥垛实业有限责任公司"] and again.lines[0]["model"] == small.label
