"""Documents out: each character's box, hOCR and ALTO that validate, and searchable PDFs whose text
layer reads back as the recognised text, each line's characters inside its polygon."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from engine.batcher import LineBatcher
from engine.ctc import char_spans, path_runs
from engine.exports import alto, hocr
from engine.exports.build import export
from engine.exports.document import pages_of, words_of
from engine.inference import Recognizer
from engine.pipeline import recognize_array, recognize_bytes
from tests.conftest import CJK_FONT
from tests.workers.test_pdf import LIMITS, scanned_pdf

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference"
ALTO_XSD = Path(__file__).resolve().parents[1] / "data" / "alto" / "alto-4-4.xsd"
PAGES = [
    ["第一页 增值税专用发票", "购买方名称：上海明远科技有限公司"],
    ["第二页 销售方信息", "开户银行：招商银行 No. 6225 8801"],
    ["第三页 价税合计", "人民币壹万贰仟元整"],
]


@pytest.fixture(scope="module")
def batcher():
    rec = Recognizer(REFERENCE / "ppocrv6_tiny_rec.onnx", threads=1)
    return LineBatcher(lambda: rec)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def nfkc(text: str) -> str:
    return squash(unicodedata.normalize("NFKC", text))


def test_runs_and_spans_follow_the_steps_that_fired():
    path = np.array([0, 5, 5, 0, 0, 7, 0, 7, 0, 0, 9, 9, 9, 0])
    assert path_runs(path, 0).tolist() == [[1, 3], [5, 6], [7, 8], [10, 13]]
    spans = char_spans(path_runs(path, 0), len(path))
    assert len(spans) == 4
    assert all(0.0 <= a < b <= 1.0 for a, b in spans)
    assert all(abs(spans[i][1] - spans[i + 1][0]) < 1e-9 for i in range(3))  # neighbours meet
    assert char_spans(np.array([[3, 4]]), 10) == [(0.0, 1.0)]  # one character: the whole line


def test_each_character_box_covers_its_own_glyph(batcher):
    """A rendered line whose glyph positions are known: every character the recogniser reads has
    its box centre within half a glyph of the glyph's own centre."""
    text = "开票日期2026年09月17日合计金额"
    font = ImageFont.truetype(CJK_FONT, 32, index=2)
    img = Image.new("RGB", (int(font.getlength(text)) + 40, 56), "white")
    ImageDraw.Draw(img).text((20, 10), text, font=font, fill="black")
    centres = [20 + (font.getlength(text[:i]) + font.getlength(text[: i + 1])) / 2 for i in range(len(text))]
    outcome = recognize_array(np.asarray(img), batcher, "t")
    (line,) = outcome.lines
    assert line["text"] == text
    for char, centre in zip(line["chars"], centres):
        x0, y0, x1, y1 = char["box"]
        assert abs((x0 + x1) / 2 - centre) < 0.5 * font.getlength(char["text"]), (char, centre)
        assert 0 <= y0 < y1 <= img.height


def test_words_part_chinese_characters_and_keep_latin_runs_whole():
    chars = [{"text": c, "confidence": 0.9, "box": [10 * i, 0, 10 * i + 9, 10]} for i, c in enumerate("金额 No.12 元")]
    words = words_of({"text": "金额 No.12 元", "box": [0, 0, 110, 10], "chars": chars})
    assert [(w.text, w.space_after) for w in words] == [("金", False), ("额", True), ("No.12", True), ("元", False)]
    assert words[2].box == (30, 0, 79, 10)
    corrected = words_of({"text": "改过的 行", "box": [1, 2, 3, 4], "confidence": 1.0})
    assert [(w.text, w.box) for w in corrected] == [("改过的 行", (1, 2, 3, 4))]


@pytest.fixture(scope="module")
def scanned(batcher, reader):
    data = scanned_pdf(PAGES)
    outcome = recognize_bytes(data, LIMITS, batcher, "pdf", reader=reader)
    answer = {"lines": outcome.lines, "width": outcome.width, "height": outcome.height, "filename": "scan.pdf"}
    return data, answer


def _photographed_page() -> bytes:
    """A page of text shot at an angle: rendered, warped in perspective, lit unevenly, blurred, JPEG."""
    font = ImageFont.truetype(CJK_FONT, 30, index=2)
    page = Image.new("RGB", (900, 700), "white")
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(["送货单 No. 20261207", "收货单位：杭州云栖物流有限公司", "合计数量：128 件"]):
        draw.text((80, 120 + 90 * i), line, font=font, fill="black")
    src = np.float32([[0, 0], [900, 0], [900, 700], [0, 700]])
    dst = np.float32([[60, 40], [860, 90], [830, 690], [30, 640]])
    warped = cv2.warpPerspective(np.asarray(page), cv2.getPerspectiveTransform(src, dst), (900, 720), borderValue=90)
    light = np.linspace(0.75, 1.0, warped.shape[1])[None, :, None]
    shot = cv2.GaussianBlur((warped * light).astype(np.uint8), (3, 3), 0)
    return cv2.imencode(".jpg", shot[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


@pytest.fixture(scope="module")
def photographed(batcher, reader):
    data = _photographed_page()
    outcome = recognize_bytes(data, LIMITS, batcher, "photo", reader=reader)
    answer = {"lines": outcome.lines, "width": outcome.width, "height": outcome.height, "filename": "shot.jpg"}
    return data, answer


def test_hocr_validates_with_every_character_placed(scanned):
    from hocr_spec import HocrValidator

    data, answer = scanned
    document = export("hocr", answer, data).decode()
    report = HocrValidator("standard").validate(io.BytesIO(document.encode()), parse_strict=True)
    assert report.is_valid(), report.format("text")
    assert document.count('class="ocr_page"') == 3
    chars = sum(1 for line in answer["lines"] for c in line["chars"] if not c["text"].isspace())
    boxes = sum(len(m.split()) // 4 for m in re.findall(r"x_bboxes ([\d ]+)", document))
    assert boxes == chars > 20


def test_alto_validates_against_the_alto_4_schema(scanned, photographed):
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(ALTO_XSD)))
    for data, answer in (scanned, photographed):
        doc = etree.fromstring(export("alto", answer, data))
        assert schema.validate(doc), schema.error_log
        ns = {"a": alto.NS}
        glyphs = doc.findall(".//a:Glyph", ns)
        assert len(glyphs) == sum(1 for line in answer["lines"] for c in line["chars"] if not c["text"].isspace())
        strings = "".join(s.get("CONTENT") for s in doc.findall(".//a:String", ns))
        assert strings == squash("".join(line["text"] for line in answer["lines"]))


def _pdftotext(pdf: bytes, *args: str) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (Debian's poppler-utils) is missing: scripts/system-deps.sh test installs it")
    return subprocess.run(["pdftotext", *args, "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def chars_of(item):
    """Every character pdfminer finds in a page's layout, in the order the text was written."""
    from pdfminer.layout import LTChar

    if isinstance(item, LTChar):
        yield item
    elif hasattr(item, "__iter__"):
        for child in item:
            yield from chars_of(child)


def _chars_in_polygons(pdf: bytes, answer: dict, dpi: float, page_heights: dict[int, float]) -> None:
    """Every character of the text layer, in the order it was written, lies inside the polygon
    (or box) of the line it belongs to, on that line's page."""
    from pdfminer.high_level import extract_pages

    scale = dpi / 72.0
    for number, layout in enumerate(extract_pages(io.BytesIO(pdf)), 1):
        found = [c for c in chars_of(layout) if not c.get_text().isspace()]
        lines = [line for line in answer["lines"] if line.get("page", 1) == number]
        assert "".join(c.get_text() for c in found) == squash("".join(line["text"] for line in lines))
        pos = 0
        for line in lines:
            box = line["box"]
            poly = np.float32(
                line.get("polygon") or [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]
            )
            for c in found[pos : pos + len(squash(line["text"]))]:
                x = (c.x0 + c.x1) / 2 * scale
                y = (page_heights[number] - (c.y0 + c.y1) / 2) * scale
                assert cv2.pointPolygonTest(poly, (x, y), True) > -4, (line["text"], c.get_text(), x, y)
            pos += len(squash(line["text"]))


def test_a_scanned_pdf_keeps_its_pages_and_reads_back_as_its_text(scanned):
    import pikepdf

    data, answer = scanned
    pdf = export("pdf", answer, data)
    with pikepdf.open(io.BytesIO(pdf)) as out, pikepdf.open(io.BytesIO(data)) as original:
        assert len(out.pages) == 3
        assert [list(p.mediabox) for p in out.pages] == [list(p.mediabox) for p in original.pages]
        heights = {i + 1: float(p.mediabox[3]) for i, p in enumerate(out.pages)}
    text = "".join(line["text"] for line in answer["lines"])
    assert squash(_pdftotext(pdf, "-raw")) == squash(text)
    assert squash(_pdftotext(pdf)) == squash(text)  # poppler's own reading order agrees on a plain scan
    assert "第一页" in _pdftotext(pdf, "-raw", "-f", "1", "-l", "1")  # no spaces between Chinese characters
    _chars_in_polygons(pdf, answer, 150.0, heights)


def test_a_photographed_page_becomes_a_searchable_page_with_its_lines_in_place(photographed):
    import pikepdf

    data, answer = photographed
    assert any(abs(line["polygon"][1][1] - line["polygon"][0][1]) > 5 for line in answer["lines"])  # tilted lines
    pdf = export("pdf", answer, data)
    with pikepdf.open(io.BytesIO(pdf)) as out:
        assert len(out.pages) == 1
        (image,) = list(out.pages[0].get_images().values())
        assert (int(image.Width), int(image.Height)) == (answer["width"], answer["height"])
        height = float(out.pages[0].mediabox[3])
    assert squash(_pdftotext(pdf, "-raw")) == squash("".join(line["text"] for line in answer["lines"]))
    _chars_in_polygons(pdf, answer, 150.0, {1: height})


def test_text_export_parts_pages_with_a_form_feed(scanned):
    data, answer = scanned
    text = export("txt", answer, data).decode()
    assert text.count("\f") == 2
    assert [squash(p) for p in text.split("\f")] == [
        squash("".join(line["text"] for line in answer["lines"] if line["page"] == n)) for n in (1, 2, 3)
    ]


def test_pages_without_a_size_hold_their_lines():
    pages = pages_of([{"text": "a", "box": [0, 0, 50, 60], "page": 2}], {1: (100, 100)})
    assert [(p.number, p.width, p.height, len(p.lines)) for p in pages] == [(1, 100, 100, 0), (2, 50, 60, 1)]
    assert hocr.to_hocr(pages).count('class="ocr_page"') == 2


def test_ocrmypdf_reads_with_our_engine_through_the_plugin(tmp_path):
    """The documented command: OCRmyPDF with ``--plugin engine.ocrmypdf_plugin`` reads a scanned PDF
    with our detector and recogniser (Tesseract's plugin is left out) and writes a PDF whose text
    layer is the pages' text, with no space between Chinese characters."""
    import sys

    import pikepdf

    source = tmp_path / "scan.pdf"
    source.write_bytes(scanned_pdf(PAGES[:2]))
    out = tmp_path / "out.pdf"
    cmd = [sys.executable, "-m", "ocrmypdf", "--plugin", "engine.ocrmypdf_plugin", "-j", "1", str(source), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pages = _pdftotext(out.read_bytes(), "-raw").split("\f")
    assert [nfkc(p) for p in pages[:2]] == [nfkc("".join(lines)) for lines in PAGES[:2]]
    assert "第一页" in pages[0] and "增值税专用发票" in pages[0]
    with pikepdf.open(out) as pdf:
        assert "ocr-platform" in str(pdf.open_metadata().get("xmp:CreatorTool", ""))


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_a_page_stored_turned_gets_its_layer_where_the_page_shows_its_lines(batcher, reader, rotate):
    """A scanner that stores a page sideways (or upside down) and sets /Rotate so viewers show it
    upright: the lines are read on the page as shown, and the text layer lands on them there (each
    character's centre, on the page as a viewer shows it, lies on its line)."""
    import pikepdf
    from pdfminer.high_level import extract_pages

    font = ImageFont.truetype(CJK_FONT, 34, index=2)
    upright = Image.new("RGB", (1240, 1754), "white")
    for i, text in enumerate(PAGES[1]):
        ImageDraw.Draw(upright).text((150, 200 + 90 * i), text, font=font, fill="black")
    stored = upright.rotate(rotate, expand=True)  # counter-clockwise: /Rotate (clockwise) undoes it
    buf = io.BytesIO()
    stored.save(buf, format="PDF", resolution=150)
    with pikepdf.open(io.BytesIO(buf.getvalue())) as pdf:
        pdf.pages[0].Rotate = rotate
        out = io.BytesIO()
        pdf.save(out)
    data = out.getvalue()
    outcome = recognize_bytes(data, LIMITS, batcher, "turned", reader=reader)
    assert [squash(line["text"]) for line in outcome.lines] == [squash(t) for t in PAGES[1]]
    answer = {"lines": outcome.lines, "width": outcome.width, "height": outcome.height}
    result = export("pdf", answer, data)
    assert [nfkc(p) for p in _pdftotext(result, "-raw").split("\f")[:1]] == [nfkc("".join(PAGES[1]))]
    # pdfminer lays a page out as a viewer shows it (its /Rotate applied): points from the bottom left
    (layout,) = list(extract_pages(io.BytesIO(result)))
    shown_h = layout.height
    chars = [c for c in chars_of(layout) if not c.get_text().isspace()]
    assert len(chars) == len(squash("".join(PAGES[1])))
    scale = 150 / 72
    for char, line in zip(chars, [ln for ln in outcome.lines for _ in squash(ln["text"])]):
        x, y = (char.x0 + char.x1) / 2 * scale, (shown_h - (char.y0 + char.y1) / 2) * scale
        lx0, ly0, lx1, ly1 = line["box"]
        assert lx0 - 6 <= x <= lx1 + 6 and ly0 - 6 <= y <= ly1 + 6, (char.get_text(), x, y, line["box"])
