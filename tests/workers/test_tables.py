"""Ruled tables come back as cells: rows, columns, merged cells and each cell's text, on a page
scanned a little crooked; pages without rules cost no table search; CSV and HTML exports."""

from __future__ import annotations

import csv
import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from engine.exports.tables import to_csv, to_html
from engine.pipeline import recognize_array
from engine.tables import find_tables, has_rules
from tests.conftest import CJK_FONT, render_lines

HEADER = ["发票明细", None, "金额"]  # the first cell spans two columns
ROWS = [["品名", "数量", "单价"], ["办公桌", "12", "1280.00"], ["打印纸", "40", "25.50"], ["墨盒", "6", "199.00"]]


def ruled_table(angle: float = 0.0) -> tuple[np.ndarray, list[list[str]]]:
    """A page with a 5 x 3 ruled table (the header's first cell merged over two columns), turned by
    ``angle`` degrees as a careless scan would; and the true cell texts row by row."""
    font = ImageFont.truetype(CJK_FONT, 30, index=2)
    page = Image.new("RGB", (1240, 900), "white")
    draw = ImageDraw.Draw(page)
    xs, y0, row_h = [120, 460, 760, 1100], 160, 70
    draw.text((120, 80), "二〇二六年十二月 采购清单", font=font, fill="black")
    for r in range(len(ROWS) + 2):
        draw.line([(xs[0], y0 + r * row_h), (xs[-1], y0 + r * row_h)], fill="black", width=2)
    for k, x in enumerate(xs):
        top = y0 if k in (0, 2, 3) else y0 + row_h  # the merged header cell has no rule between its columns
        draw.line([(x, top), (x, y0 + (len(ROWS) + 1) * row_h)], fill="black", width=2)
    texts = [HEADER] + ROWS
    for r, row in enumerate(texts):
        for k, text in enumerate(row):
            if text:
                draw.text((xs[k] + 16, y0 + r * row_h + 18), text, font=font, fill="black")
    rgb = np.asarray(page)
    if angle:
        matrix = cv2.getRotationMatrix2D((620, 450), angle, 1.0)
        rgb = cv2.warpAffine(rgb, matrix, (1240, 900), borderValue=(255, 255, 255))
    return rgb, texts


@pytest.fixture(scope="module")
def batcher():
    from pathlib import Path

    from engine.batcher import LineBatcher
    from engine.inference import Recognizer

    rec = Recognizer(Path(__file__).resolve().parents[2] / "models" / "reference" / "ppocrv6_tiny_rec.onnx", threads=1)
    return LineBatcher(lambda: rec)


@pytest.mark.parametrize("angle", [0.0, 1.2])
def test_a_ruled_table_comes_back_as_cells_with_their_text(batcher, reader, angle):
    rgb, texts = ruled_table(angle)
    outcome = recognize_array(rgb, batcher, "t", reader=reader)
    (table,) = outcome.tables
    assert (table["rows"], table["cols"]) == (5, 3)
    merged = next(c for c in table["cells"] if c["row"] == 0 and c["col"] == 0)
    assert (merged["row_span"], merged["col_span"]) == (1, 2)
    assert len(table["cells"]) == 14
    got = {(c["row"], c["col"]): c["text"].replace(" ", "") for c in table["cells"]}
    for r, row in enumerate(texts):
        for k, text in enumerate(row):
            if text:
                assert got[(r, k)] == text, (r, k, got[(r, k)])
    # the cells lie where the table is on the page: inside its box
    x0, y0, x1, y1 = table["bbox"]
    assert all(x0 - 3 <= c["bbox"][0] and c["bbox"][2] <= x1 + 3 for c in table["cells"])
    assert outcome.text[0].replace(" ", "") == "二〇二六年十二月采购清单"  # the lines are still all there


def test_a_page_without_rules_is_not_searched_for_tables(batcher, reader):
    rgb = np.asarray(render_lines(["第一行文字 没有表格", "第二行文字 也没有"]))
    assert not has_rules(rgb)
    assert find_tables(rgb, []) == []
    assert has_rules(ruled_table()[0])


def test_tables_export_as_csv_and_html():
    table = {
        "rows": 2,
        "cols": 3,
        "bbox": [0, 0, 30, 20],
        "page": 2,
        "cells": [
            {"row": 0, "col": 0, "row_span": 1, "col_span": 2, "bbox": [0, 0, 20, 10], "text": "发票, 明细"},
            {"row": 0, "col": 2, "row_span": 2, "col_span": 1, "bbox": [20, 0, 30, 20], "text": "金额\n合计"},
            {"row": 1, "col": 0, "row_span": 1, "col_span": 1, "bbox": [0, 10, 10, 20], "text": "<桌>"},
            {"row": 1, "col": 1, "row_span": 1, "col_span": 1, "bbox": [10, 10, 20, 20], "text": "12"},
        ],
    }
    rows = list(csv.reader(io.StringIO(to_csv([table, table]))))
    assert rows[:2] == [["发票, 明细", "", "金额\n合计"], ["<桌>", "12", ""]]
    assert rows[2] == [] and rows[3:] == rows[:2]
    html = to_html([table], "x.png")
    assert '<td colspan="2" data-bbox="0 0 20 10">发票, 明细</td>' in html
    assert 'rowspan="2"' in html and "金额<br>合计" in html and "&lt;桌&gt;" in html
    assert "Table 1 (page 2)" in html
