"""Whole pages through the learned detector: photographed, upside down, in columns, as forms,
vertical lines; and the reading order on its own."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from distill.evaluate import clean_for_scoring, edit_distance
from distill.fonts import faces_for
from distill.pages import make_page
from engine.batcher import LineBatcher
from engine.detect import DetectorPackageError, DetSpec, reading_order
from engine.inference import Recognizer
from engine.pipeline import recognize_array

MODELS = Path(__file__).resolve().parents[2] / "models" / "reference"  # `make models` builds them
SENTENCES = (
    "增值税专用发票开具说明",
    "购买方名称上海明远科技有限公司",
    "纳税人识别号与开户行信息",
    "本合同自双方签字之日起生效",
    "货物或应税劳务名称及规格型号",
    "请在收到发票后十日内核对",
    "价税合计人民币壹万贰仟元整",
    "地址电话及开户银行账号",
    "销售方名称北京华信电子有限公司",
    "备注栏填写项目名称与地点",
    "检验合格后办理入库手续",
    "付款方式为银行转账",
)


@pytest.fixture(scope="module")
def batcher():
    rec = Recognizer(MODELS / "ppocrv6_tiny_rec.onnx", threads=1)
    return LineBatcher(lambda: rec, max_batch=32, max_wait_ms=0.0, max_width_ratio=1.5)


@pytest.fixture(scope="module")
def faces():
    return [f for f in faces_for("train") if f.name == "Noto Sans CJK SC" and f.style == "Regular"]


def page_accuracy(page, lines) -> float:
    truth = clean_for_scoring("".join(page.lines))
    return 1 - edit_distance(truth, clean_for_scoring("".join(line["text"] for line in lines))) / len(truth)


def read(page_rgb, batcher, reader):
    return recognize_array(np.ascontiguousarray(page_rgb), batcher, "test", reader=reader).lines


def test_it_reads_a_photographed_page_with_a_light_gradient(batcher, reader, faces):
    page = make_page(itertools.cycle(SENTENCES), faces, seed=7, capture="photo", layout="paragraphs")
    lines = read(page.image, batcher, reader)
    assert page_accuracy(page, lines) > 0.95
    assert all(len(line["polygon"]) == 4 and len(line["box"]) == 4 for line in lines)


def test_it_reads_a_page_upside_down_in_its_own_order(batcher, reader, faces):
    page = make_page(itertools.cycle(SENTENCES), faces, seed=3, capture="scan", layout="paragraphs")
    upright = page_accuracy(page, read(page.image, batcher, reader))
    turned = read(page.image[::-1, ::-1], batcher, reader)
    assert page_accuracy(page, turned) > 0.95 and page_accuracy(page, turned) > upright - 0.02
    first = np.array(turned[0]["polygon"])  # its corners as the line reads: it starts at the right
    assert first[0, 0] > first[1, 0] and first[0, 1] > first[3, 1]


def test_two_columns_are_read_one_after_the_other(batcher, reader, faces):
    page = make_page(itertools.cycle(SENTENCES), faces, seed=4, capture="scan", layout="columns")
    # read row by row across both columns, the page would score far lower
    assert page_accuracy(page, read(page.image, batcher, reader)) > 0.95


def test_a_form_is_read_row_by_row(batcher, reader, faces):
    page = make_page(itertools.cycle(SENTENCES), faces, seed=5, capture="scan", layout="form")
    lines = read(page.image, batcher, reader)
    assert page_accuracy(page, lines) > 0.95
    assert lines[1]["text"].endswith("：") or lines[1]["text"].endswith(":")  # a label, then its value


def test_a_vertical_line_is_found_as_such_and_read_top_to_bottom(batcher, reader, faces):
    from PIL import Image, ImageDraw

    font = faces[0].pil(40)
    text = "上海明远科技有限公司"
    img = Image.new("RGB", (400, 600), "white")
    draw = ImageDraw.Draw(img)
    for i, ch in enumerate(text):
        draw.text((180, 40 + i * 52), ch, font=font, fill="black")
    lines = read(np.asarray(img), batcher, reader)
    assert len(lines) == 1 and lines[0]["vertical"] is True
    assert edit_distance(lines[0]["text"], text) <= 1


def test_a_single_line_image_skips_the_detector(batcher, reader, faces):
    from PIL import Image, ImageDraw

    font = faces[0].pil(28)
    img = Image.new("RGB", (520, 60), "white")
    ImageDraw.Draw(img).text((10, 10), "价税合计人民币壹万贰仟元整", font=font, fill="black")
    lines = read(np.asarray(img), batcher, reader)
    assert [line["text"] for line in lines] == ["价税合计人民币壹万贰仟元整"] and "polygon" not in lines[0]


def test_reading_order_takes_columns_under_a_title_one_after_the_other():
    title = [(100, 50, 700, 90)]
    left = [(100, 120 + 40 * i, 380, 150 + 40 * i) for i in range(5)]
    right = [(420, 120 + 40 * i, 700, 150 + 40 * i) for i in range(5)]
    boxes = title + right + left  # given in any order
    order = reading_order(boxes)
    assert [boxes[i] for i in order] == title + left + right


def test_reading_order_reads_form_rows_label_then_value():
    labels = [(100, 100 + 50 * i, 220, 130 + 50 * i) for i in range(4)]
    values = [(300, 100 + 50 * i, 520, 130 + 50 * i) for i in range(4)]
    boxes = values + labels
    order = reading_order(boxes)
    assert [boxes[i] for i in order] == [b for pair in zip(labels, values) for b in pair]


def test_a_detector_package_round_trips_and_bad_metadata_is_refused():
    spec = DetSpec(name="d", thresh=0.25, unclip_ratio=1.6, limit_side=960)
    assert DetSpec.from_metadata(spec.to_metadata()) == spec
    with pytest.raises(DetectorPackageError):
        DetSpec.from_metadata({**spec.to_metadata(), "ocr.format": "ocr-ctc/1"})
    with pytest.raises(DetectorPackageError):
        DetSpec(name="d", thresh=1.5)


@pytest.mark.parametrize("layout", ["form", "columns"])
def test_a_page_photographed_at_an_angle_keeps_its_reading_order(batcher, reader, faces, layout):
    # perspective tilts the rows (a form's label and value no longer share a band) and squeezes
    # the gutter between columns; the page is levelled before it is cut into rows and columns
    page = make_page(itertools.cycle(SENTENCES), faces, seed=11, capture="photo", layout=layout)
    assert page_accuracy(page, read(page.image, batcher, reader)) > 0.95


def test_reading_order_keeps_a_ragged_column_top_to_bottom():
    # one column of short lines: left-aligned, indented and right-aligned in turn, a clear empty band
    # between the left-starting and the right-aligned ones
    xs = [(100, 300), (700, 900), (100, 340), (160, 360), (680, 900), (100, 280), (720, 900)]
    boxes = [(x0, 100 + 45 * i, x1, 130 + 45 * i) for i, (x0, x1) in enumerate(xs)]
    order = reading_order(list(reversed(boxes)))
    assert [list(reversed(boxes))[i] for i in order] == boxes


def test_reading_order_keeps_a_letters_right_aligned_date_and_signature_in_place():
    greeting = [(100, 100, 360, 130)]
    date = [(760, 150, 1000, 180)]
    body = [(100, 210 + 40 * i, 1000, 240 + 40 * i) for i in range(3)]
    closing = [(100, 350, 220, 380), (100, 390, 220, 420)]
    signature = [(780, 440, 1000, 470), (760, 480, 1000, 510)]
    boxes = greeting + date + body + closing + signature
    order = reading_order(boxes[::-1])
    assert [boxes[::-1][i] for i in order] == boxes


def test_reading_order_still_reads_two_columns_with_ragged_ends_column_after_column():
    # two columns of prose whose baselines drift apart, each paragraph's last line short
    left = [(100, 100 + 40 * i, 480 if i % 4 != 3 else 260, 130 + 40 * i) for i in range(8)]
    right = [(540, 112 + 40 * i, 920 if i % 3 != 2 else 700, 142 + 40 * i) for i in range(8)]
    boxes = right + left
    order = reading_order(boxes)
    assert [boxes[i] for i in order] == left + right


def test_reading_order_reads_columns_under_a_centred_title_whole_even_where_both_paragraphs_end_level():
    # a centred title and a footer cross the gutter; both columns have a paragraph break at one height
    title = [(400, 40, 700, 80)]
    left = [(100, 120 + 40 * i, 500, 150 + 40 * i) for i in range(4)] + [
        (100, 320 + 40 * i, 500, 350 + 40 * i) for i in range(4)
    ]
    right = [(600, 126 + 40 * i, 1000, 156 + 40 * i) for i in range(4)] + [
        (600, 326 + 40 * i, 1000, 356 + 40 * i) for i in range(4)
    ]
    footer = [(450, 520, 650, 545)]
    boxes = footer + right + left + title
    order = reading_order(boxes)
    assert [boxes[i] for i in order] == title + left + right + footer


def _drawn(faces, rows, size=(600, 900), font_px=28):
    """A white page with each (x, y, text) of ``rows`` drawn in black."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for x, y, text, px in rows:
        draw.text((x, y), text, font=faces[0].pil(px or font_px), fill="black")
    return np.asarray(img)


def _quad(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


BODY = [(40, 40, "付款方式为银行转账", 0), (40, 90, "检验合格后办理入库", 0), (40, 140, "地址电话及开户银行", 0)]
BODY_QUADS = [_quad(30, 32, 320, 78), _quad(30, 82, 320, 128), _quad(30, 132, 320, 178)]


def test_lines_the_detector_ran_together_are_split_into_lines(faces):
    from engine.detect import split_stacked

    amounts = ["272.64", "442.07", "17.74", "2680.39"]
    page = _drawn(faces, BODY + [(400, 300 + 34 * i, a, 0) for i, a in enumerate(amounts)])
    stack = _quad(390, 292, 520, 300 + 34 * len(amounts) + 4)  # one region over four set-tight lines
    quads = split_stacked(page, BODY_QUADS + [stack])
    assert len(quads) == 3 + len(amounts)
    for i, q in enumerate(quads[3:]):
        top, bottom = q[:, 1].min(), q[:, 1].max()
        assert top < 300 + 34 * i + 14 < bottom  # each holds its own line's middle
        assert bottom - top < 45 and q[:, 0].min() >= 385


def test_a_vertical_column_and_a_large_title_are_not_split(faces):
    from engine.detect import split_stacked

    column = [(450, 250 + 40 * i, ch, 0) for i, ch in enumerate("上海明远科技")]
    page = _drawn(faces, BODY + column + [(40, 500, "三言二品", 80)])
    tall = [_quad(440, 242, 490, 250 + 40 * 6 + 4), _quad(30, 490, 380, 600)]
    quads = split_stacked(page, BODY_QUADS + tall)
    assert len(quads) == 5 and all(np.array_equal(a, b) for a, b in zip(quads[3:], tall))


def _map_with(*rects, value=0.9, shape=(120, 400)):
    prob = np.zeros(shape, np.float32)
    for x0, y0, x1, y1 in rects:
        prob[y0:y1, x0:x1] = value
    return prob


SPEC = DetSpec(name="t", thresh=0.2, box_thresh=0.4, unclip_ratio=1.6)


def test_a_short_last_line_touching_the_line_above_is_found_apart_not_lost():
    from engine.detect import db_boxes

    # a line's kernel (8 px thick), a two-pixel bridge down from its left end, and a one-character
    # kernel under it: an L whose rectangle is mostly empty and scores under the box threshold
    prob = _map_with((20, 20, 360, 28), (24, 28, 26, 34), (20, 34, 32, 46))
    boxes = db_boxes(prob, SPEC, 1.0, 1.0, 400, 120)
    assert len(boxes) == 2
    (line, line_score), (char, char_score) = sorted(boxes, key=lambda b: -(b[0][:, 0].max() - b[0][:, 0].min()))
    assert line_score >= 0.4 and char_score >= 0.4
    assert line[:, 0].max() > 350 and line[:, 1].max() < 40  # the line, not reaching down to the character
    assert char[:, 0].max() < 50 and char[:, 1].min() > 24  # the character, under the line's left end


def test_a_faint_line_stays_dropped_and_a_clear_one_stays_whole():
    from engine.detect import db_boxes

    assert db_boxes(_map_with((20, 20, 360, 28), value=0.3), SPEC, 1.0, 1.0, 400, 120) == []
    boxes = db_boxes(_map_with((20, 20, 360, 28), (20, 60, 200, 68)), SPEC, 2.0, 2.0, 800, 240)
    assert len(boxes) == 2 and all(score > 0.85 for _, score in boxes)
    widths = sorted(round(float(q[:, 0].max() - q[:, 0].min())) for q, _ in boxes)
    assert widths[0] > 2 * 180 and widths[1] > 2 * 340  # grown back, in the page's coordinates
