"""OCRmyPDF with three OCR engines, side by side on the same scanned PDFs: the platform's
(``--plugin engine.ocrmypdf_plugin``), RapidOCR 3.10 with PP-OCRv6 small (the ``ocrmypdf-rapidocr``
plugin) and Tesseract 5 ``chi_sim+eng`` (OCRmyPDF's built-in engine, Debian's packages).

The PDFs: the frozen out-of-distribution page suite's scanned pages (``make ood-pages``: Pango
layouts in held-out faces and texts, degraded by augraphy; articles, tables, letters, forms,
receipts), one PDF per layout kind, each page at 150 dpi. Each engine runs
``python -m ocrmypdf ... --output-type pdf -j 1 --optimize 0`` on each PDF; ``pdftotext -raw`` reads
every output page, scored against the page's true lines (``distill.page_eval.page_scores``: char
accuracy in the text's order and order-free). Seconds per page are the whole command's wall
time (rasterising, OCR, rendering, writing; models loaded once per PDF) over its pages, at one job.
"Spaces" counts the spaces the text layer puts between two Chinese characters that stand side by
side in a true line.

    apt-get install tesseract-ocr tesseract-ocr-chi-sim       # Tesseract and its Chinese data
    .venv/bin/pip install -r requirements/bench.txt            # RapidOCR's own dependencies
    .venv/bin/pip install --no-deps ocrmypdf-rapidocr==1.0.1   # (its deps would swap OpenCV's build)
    .venv/bin/python -m bench.ocrmypdf_compare [--engine platform --engine rapidocr --engine tesseract]
        [--pages data/ood_pages] [--out runs/ocrmypdf_compare]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from distill.evaluate import char_accuracy
from distill.ood_pages import read_pages
from distill.page_eval import page_scores

ENGINES = {
    "platform": ["--plugin", "engine.ocrmypdf_plugin"],
    "rapidocr": ["--plugin", "ocrmypdf_rapidocr"],
    "tesseract": ["--ocr-engine", "tesseract", "-l", "chi_sim+eng"],
}
CJK_SPACE = re.compile(r"([\u3400-\u9fff]) +(?=([\u3400-\u9fff]))")


def inserted_spaces(text: str, truth: list[str]) -> int:
    """Spaces the text puts between two Chinese characters that stand side by side in one of the
    page's true lines (a space between two table cells or columns is not counted)."""
    pairs = {line[i : i + 2] for line in truth for i in range(len(line) - 1)}
    return sum(1 for m in CJK_SPACE.finditer(text) if m.group(1) + m.group(2) in pairs)


def build_pdfs(pages_dir: Path, out: Path) -> dict[str, tuple[Path, list[dict]]]:
    """One PDF per layout kind of the suite's scanned pages: kind -> (pdf, the pages' records)."""
    import img2pdf

    by_layout: dict[str, list[dict]] = {}
    for page in read_pages(pages_dir):
        if page["kind"] == "scan":
            by_layout.setdefault(page["layout"], []).append(page)
    built = {}
    for layout, pages in sorted(by_layout.items()):
        pdf = out / f"{layout}.pdf"
        if not pdf.exists():
            layout_fn = img2pdf.get_fixed_dpi_layout_fun((150, 150))
            pdf.write_bytes(img2pdf.convert([str(pages_dir / p["image"]) for p in pages], layout_fun=layout_fn))
        built[layout] = (pdf, pages)
    return built


def run_engine(engine: str, pdf: Path, out: Path) -> float:
    target = out / f"{pdf.stem}.{engine}.pdf"
    cmd = [sys.executable, "-m", "ocrmypdf", *ENGINES[engine], "--output-type", "pdf", "-j", "1", "--optimize", "0"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--force-ocr", str(pdf), str(target)], check=True, capture_output=True)
    return time.perf_counter() - t0


def page_text(pdf: Path, number: int) -> str:
    cmd = ["pdftotext", "-raw", "-f", str(number), "-l", str(number), str(pdf), "-"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout.decode("utf-8", "replace")


def score_engine(engine: str, pdfs: dict, out: Path) -> dict:
    totals = {"ordered": 0, "free": 0, "chars": 0, "pages": 0, "seconds": 0.0, "spaces": 0}
    per_layout = {}
    for layout, (pdf, pages) in pdfs.items():
        seconds = run_engine(engine, pdf, out)
        e_ord = e_free = chars = spaces = 0
        for number, page in enumerate(pages, 1):
            text = page_text(out / f"{pdf.stem}.{engine}.pdf", number)
            ordered, free, n = page_scores(page["lines"], [line for line in text.splitlines() if line.strip()])
            e_ord, e_free, chars = e_ord + ordered, e_free + free, chars + n
            spaces += inserted_spaces(text, page["lines"])
        per_layout[layout] = round(100 * char_accuracy(e_ord, chars), 2)
        for key, value in (("ordered", e_ord), ("free", e_free), ("chars", chars), ("pages", len(pages))):
            totals[key] += value
        totals["seconds"] += seconds
        totals["spaces"] += spaces
    return {
        "engine": engine,
        "in_order": round(100 * char_accuracy(totals["ordered"], totals["chars"]), 2),
        "order_free": round(100 * char_accuracy(totals["free"], totals["chars"]), 2),
        "by_layout_in_order": per_layout,
        "s_per_page": round(totals["seconds"] / max(1, totals["pages"]), 2),
        "pages": totals["pages"],
        "spaces_between_chinese": totals["spaces"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", choices=list(ENGINES))
    parser.add_argument("--pages", default="data/ood_pages")
    parser.add_argument("--out", default="runs/ocrmypdf_compare")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pdfs = build_pdfs(Path(args.pages), out)
    rows = []
    for engine in args.engine or list(ENGINES):
        rows.append(score_engine(engine, pdfs, out))
        print(json.dumps(rows[-1]), flush=True)
    layouts = list(pdfs)
    print("| engine | in order | order-free | " + " | ".join(layouts) + " | s/page | spaces between Chinese |")
    print("| --- " * (5 + len(layouts)) + "|")
    for r in rows:
        cells = " | ".join(str(r["by_layout_in_order"][k]) for k in layouts)
        print(
            f"| {r['engine']} | {r['in_order']} | {r['order_free']} | {cells} | {r['s_per_page']} "
            f"| {r['spaces_between_chinese']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
