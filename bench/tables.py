"""Ruled tables read as cells, on tables no code of ours lays out: each table is an HTML table laid
out and drawn by Chromium (Debian's, through Playwright) in a held-out face of the frozen
out-of-distribution fonts (Fandol, Ma Shan Zheng) with texts from the frozen out-of-distribution
texts, merged header and row cells included, then scanned with augraphy as the page suite is
(``distill.ood_pages.scanned``: ink bleed, noise, low-ink lines, up to 1.5 degrees of tilt, JPEG).

Each page goes through the serving pipeline (``engine.served``: detector, recogniser, decoder) and
``engine.tables.find_tables``. Scored per table: whether the grid was found with the right rows
and columns, the share of true cells found at their row and column with the right spans, and the
char accuracy of the cells' text (NFKC, spaces ignored; a cell not found reads as empty).

    .venv/bin/python -m bench.tables [--tables 24] [--seed 7] [--out runs/tables]
"""

from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path

import numpy as np

from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance

FONT_DIR = Path("var/fonts/ood")
FACES = [
    ("FandolSong-Regular.otf", "Fandol Song"),
    ("FandolHei-Regular.otf", "Fandol Hei"),
    ("FandolFang-Regular.otf", "Fandol Fang"),
    ("FandolKai-Regular.otf", "Fandol Kai"),
    ("MaShanZheng-Regular.ttf", "Ma Shan Zheng"),
]


def make_table(rng: np.random.Generator, texts, max_cols: int = 5) -> list[dict]:
    """Cells (row, col, row_span, col_span, text) of one table: a header row, a first column of
    names, fields and amounts; sometimes a header cell over two columns, a name over two rows."""
    rows, cols = int(rng.integers(4, 11)), int(rng.integers(3, max_cols + 1))
    cells, covered = [], set()
    for r in range(rows):
        for c in range(cols):
            if (r, c) in covered:
                continue
            col_span = 2 if r == 0 and c < cols - 1 and rng.random() < 0.25 else 1
            row_span = 2 if c == 0 and 0 < r < rows - 1 and rng.random() < 0.2 else 1
            for dr in range(row_span):
                for dc in range(col_span):
                    covered.add((r + dr, c + dc))
            if r == 0 or c == 0:
                text = texts.short(2, 6)
            else:
                text = texts.field() if rng.random() < 0.3 else f"{rng.uniform(1, 99999):,.2f}"
            cells.append({"row": r, "col": c, "row_span": row_span, "col_span": col_span, "text": text})
    return cells


def table_html(cells: list[dict], font_file: Path, family: str, size: int) -> str:
    rows: dict[int, list[dict]] = {}
    for cell in cells:
        rows.setdefault(cell["row"], []).append(cell)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td rowspan="{c["row_span"]}" colspan="{c["col_span"]}">{html.escape(c["text"])}</td>'
            for c in sorted(rows[r], key=lambda c: c["col"])
        )
        + "</tr>"
        for r in sorted(rows)
    )
    return (
        f"<html><head><style>@font-face{{font-family:'T';src:url('file://{font_file.resolve()}')}}"
        f"body{{margin:0;background:#fff;width:1240px;height:1754px}}"
        f"table{{margin:160px 110px;border-collapse:collapse;font-family:'T';font-size:{size}px}}"
        "td{border:2px solid #111;padding:10px 14px;white-space:nowrap}</style></head>"
        f"<body><table>{body}</table></body></html>"
    )


def render(tables: int, seed: int, out: Path) -> list[dict]:
    """Draw and scan the tables (cached in ``out``); their truth in out/tables.json."""
    import cv2
    from playwright.sync_api import sync_playwright

    from distill.ood import OodFace
    from distill.ood_pages import Texts, scanned

    truth = out / "tables.json"
    if truth.exists():
        return json.loads(truth.read_text())
    out.mkdir(parents=True, exist_ok=True)
    records = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1240, "height": 1754})
        for i in range(tables):
            rng = np.random.default_rng([seed, i])
            filename, family = FACES[i % len(FACES)]
            face = OodFace(str(FONT_DIR / filename), family, "Regular", "ood")
            size, max_cols = int(rng.integers(22, 30)), 5
            while True:  # a table that fits the page's width (fewer columns, else a smaller face)
                cells = make_table(rng, Texts(face, rng), max_cols)
                page.set_content(table_html(cells, FONT_DIR / filename, family, size))
                page.evaluate("document.fonts.ready")
                if page.evaluate("document.querySelector('table').getBoundingClientRect().right") <= 1130:
                    break
                max_cols, size = max(3, max_cols - 1), max(18, size - 1)
            png = page.screenshot(full_page=False)
            gray = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
            name = f"table_{i:02d}.jpg"
            cv2.imwrite(str(out / name), scanned(gray, np.random.default_rng([seed, i, 1]), seed + i))
            records.append({"image": name, "face": family, "cells": cells})
        browser.close()
    truth.write_text(json.dumps(records, ensure_ascii=False, indent=1))
    return records


def score(record: dict, found: list[dict]) -> dict:
    truth = record["cells"]
    rows = 1 + max(c["row"] + c["row_span"] - 1 for c in truth)
    cols = 1 + max(c["col"] + c["col_span"] - 1 for c in truth)
    best = max(found, key=lambda t: len(t["cells"]), default=None)
    got = {(c["row"], c["col"]): c for c in best["cells"]} if best else {}
    errors = chars = placed = 0
    for cell in truth:
        mine = got.get((cell["row"], cell["col"]))
        placed += mine is not None and (mine["row_span"], mine["col_span"]) == (cell["row_span"], cell["col_span"])
        want = clean_for_scoring(cell["text"])
        errors += edit_distance(want, clean_for_scoring(mine["text"]) if mine else "")
        chars += len(want)
    return {
        "grid": bool(best) and (best["rows"], best["cols"]) == (rows, cols),
        "cells": len(truth),
        "placed": placed,
        "errors": errors,
        "chars": chars,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="runs/tables")
    args = parser.parse_args()
    import cv2

    from engine.pipeline import recognize_array
    from engine.served import served_pipeline

    out = Path(args.out)
    records = render(args.tables, args.seed, out)
    batcher, reader, _ = served_pipeline(Path("models"))
    rows, seconds = [], []
    for record in records:
        rgb = cv2.imread(str(out / record["image"]))[:, :, ::-1].copy()
        t0 = time.perf_counter()
        outcome = recognize_array(rgb, batcher, record["image"], reader=reader)
        seconds.append(time.perf_counter() - t0)
        rows.append({"image": record["image"], "face": record["face"], **score(record, outcome.tables)})
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    cells, chars = sum(r["cells"] for r in rows), sum(r["chars"] for r in rows)
    summary = {
        "tables": len(rows),
        "grids_right": sum(r["grid"] for r in rows),
        "cells_placed": round(100 * sum(r["placed"] for r in rows) / max(1, cells), 2),
        "cell_char_accuracy": round(100 * char_accuracy(sum(r["errors"] for r in rows), chars), 2),
        "s_per_page_p50": round(float(np.median(seconds)), 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
