"""Ruled tables on a page, as cells: the grid is found by img2table (OpenCV: the ruling lines, then
the cells between them, merged cells included) and each cell gets the characters the recogniser
read inside it, so a line the detector found across two cells is parted where the rule is.

Only pages with ruling lines are given to img2table: ``has_rules`` looks for long horizontal and
vertical strokes where the text is, on a reduced copy (a few milliseconds), since most pages have
none.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from .lines import MIN_DESKEW_DEGREES, corners_in_original, estimate_skew, rotate_upright, rounded_points

MIN_ROWS, MIN_COLS = 2, 2
log = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def has_rules(rgb: np.ndarray, min_horizontal: int = 3, min_vertical: int = 2) -> bool:
    """Whether the page shows at least ``min_horizontal`` horizontal and ``min_vertical`` vertical
    strokes a twelfth of the page long (no glyph is; a ruled table draws many, even a degree or
    two off level): a cheap test before the table finder runs."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    scale = min(1.0, 1000.0 / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 25, 15)
    h, w = ink.shape
    found = []
    # at least 60 / 40 pixels of the reduced page, longer than a glyph's stroke in body text
    for kernel, need in (((max(60, w // 12), 1), min_horizontal), ((1, max(40, h // 12)), min_vertical)):
        strokes = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel))
        found.append(cv2.connectedComponents(strokes)[0] - 1 >= need)
    return all(found)


def _grid(table) -> list[dict]:
    """img2table's rows of cells (a merged cell repeated in every position it covers) as distinct
    cells with their row, column and spans."""
    rows = [[(c.bbox.x1, c.bbox.y1, c.bbox.x2, c.bbox.y2) for c in row] for row in table.content.values()]
    seen, cells = set(), []
    for r, row in enumerate(rows):
        for c, box in enumerate(row):
            if box in seen:
                continue
            seen.add(box)
            col_span = 1
            while c + col_span < len(row) and row[c + col_span] == box:
                col_span += 1
            row_span = 1
            while r + row_span < len(rows) and c < len(rows[r + row_span]) and rows[r + row_span][c] == box:
                row_span += 1
            cells.append({"row": r, "col": c, "row_span": row_span, "col_span": col_span, "bbox": list(box)})
    return cells


def _fill(cells: list[dict], lines: list[dict]) -> None:
    """Each cell's text: the characters whose box's centre falls inside it, in reading order
    (a cell's pieces from different lines on separate lines)."""
    pieces: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(cells))}

    def cell_at(x: float, y: float) -> int | None:
        for i, cell in enumerate(cells):
            x0, y0, x1, y1 = cell["bbox"]
            if x0 <= x <= x1 and y0 <= y <= y1:
                return i
        return None

    for n, line in enumerate(lines):
        chars = line.get("chars") or []
        placed = [c for c in chars if "box" in c]
        if not placed or "".join(c["text"] for c in chars) != line["text"]:
            placed = [{"text": line["text"], "box": line["box"]}]
        for char in placed:
            x0, y0, x1, y1 = char["box"]
            i = cell_at((x0 + x1) / 2, (y0 + y1) / 2)
            if i is not None:
                pieces[i].append((n, char["text"]))
    for i, cell in enumerate(cells):
        by_line: dict[int, str] = {}
        for n, text in pieces[i]:
            by_line[n] = by_line.get(n, "") + text
        cell["text"] = "\n".join(t.strip() for t in by_line.values() if t.strip())


def _text_area(rgb: np.ndarray, lines: list[dict]) -> np.ndarray:
    """The part of the page the text lines span, a line and a half beyond them: a table's rules
    lie there, a photographed page's edges against the table it lies on do not."""
    boxes = np.array([line["box"] for line in lines], dtype=np.float64)
    pad = 1.5 * float(np.median(boxes[:, 3] - boxes[:, 1]))
    h, w = rgb.shape[:2]
    x0, y0 = (max(0, int(v - pad)) for v in boxes[:, :2].min(axis=0))
    x1, y1 = min(w, int(boxes[:, 2].max() + pad)), min(h, int(boxes[:, 3].max() + pad))
    return rgb[y0:y1, x0:x1]


def _level(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The page turned level (a scanned page is often a degree or two off, and the table finder
    wants its rules level), and the 2x3 matrix from the page to it."""
    angle = estimate_skew(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    if abs(angle) < MIN_DESKEW_DEGREES:
        return rgb, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return rotate_upright(rgb, angle)


def _to(matrix: np.ndarray, points) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def _in_frame(lines: list[dict], matrix: np.ndarray) -> list[dict]:
    """The lines with their boxes (and their characters') as seen in the levelled page."""

    def box(b):
        pts = _to(matrix, [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]])
        return [*pts.min(axis=0), *pts.max(axis=0)]

    return [
        {
            "text": line["text"],
            "box": box(line["box"]),
            "chars": [{**c, "box": box(c["box"])} for c in line.get("chars") or [] if "box" in c],
        }
        for line in lines
    ]


def _back(cells: list[dict], matrix: np.ndarray) -> None:
    """Cells found on the levelled page, put back on the page: their corners and bounds."""
    for cell in cells:
        corners = corners_in_original(cell["bbox"], matrix)
        cell["bbox"] = [int(v) for v in (*np.floor(corners.min(axis=0)), *np.ceil(corners.max(axis=0)))]
        cell["polygon"] = rounded_points(corners)


def find_tables(rgb: np.ndarray, lines: list[dict]) -> list[dict]:
    """The page's ruled tables, top to bottom: ``{"bbox", "rows", "cols", "cells": [{"row", "col",
    "row_span", "col_span", "bbox", "polygon", "text"}]}`` in the page's pixels, at least 2 rows and
    2 columns of cells that can hold a line of the page's text."""
    if not lines or not has_rules(_text_area(rgb, lines)):
        return []
    if not hasattr(cv2, "ximgproc"):  # OpenCV without its contrib modules: the table finder needs them
        _warn_once("OpenCV lacks ximgproc (install opencv-contrib-python-headless): no tables are read")
        return []
    from img2table.document import Image

    level, matrix = _level(rgb)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(level[:, :, ::-1]))
    if not ok:
        return []
    found = Image(src=png.tobytes(), detect_rotation=False).extract_tables(
        ocr=None, implicit_rows=False, implicit_columns=False, borderless_tables=False
    )
    levelled = _in_frame(lines, matrix)
    heights = [b[3] - b[1] for b in (line["box"] for line in levelled)]
    line_h = float(np.median(heights)) if heights else 0.0
    tables = []
    for table in sorted(found, key=lambda t: (t.bbox.y1, t.bbox.x1)):
        cells = _grid(table)
        rows = 1 + max((c["row"] + c["row_span"] - 1 for c in cells), default=-1)
        cols = 1 + max((c["col"] + c["col_span"] - 1 for c in cells), default=-1)
        cell_h = float(np.median([c["bbox"][3] - c["bbox"][1] for c in cells])) if cells else 0.0
        if rows < MIN_ROWS or cols < MIN_COLS or cell_h < 0.8 * line_h:  # strokes of a bold title, not a table
            continue
        _fill(cells, levelled)
        outline = {"bbox": [table.bbox.x1, table.bbox.y1, table.bbox.x2, table.bbox.y2]}
        _back(cells + [outline], matrix)
        tables.append({"bbox": outline["bbox"], "rows": rows, "cols": cols, "cells": cells})
    return tables
