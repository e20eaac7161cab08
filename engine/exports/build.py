"""One entry point for every export of an answer: ``export(fmt, answer, data)``."""

from __future__ import annotations

import json

from ..pdf import is_pdf, page_sizes
from . import alto, hocr, pdf, tables
from .document import Page, pages_of, plain_text

# format -> (content type, file extension)
FORMATS = {
    "pdf": ("application/pdf", "pdf"),
    "hocr": ("text/html; charset=utf-8", "hocr"),
    "alto": ("application/xml; charset=utf-8", "alto.xml"),
    "txt": ("text/plain; charset=utf-8", "txt"),
    "json": ("application/json", "json"),
    "csv": ("text/csv; charset=utf-8", "tables.csv"),  # the ruled tables
    "html": ("text/html; charset=utf-8", "tables.html"),
}
TABLE_FORMATS = ("csv", "html")


def answer_pages(lines: list[dict], width: int, height: int, data: bytes | None) -> list[Page]:
    """The answer's pages: a PDF's every page at the resolution it was read at (its lines carry
    their page; without the file, a page's size is what holds its lines), or the one image."""
    sources = {int(line.get("page", 1)): "text_layer" for line in lines if line.get("source") == "text_layer"}
    sizes = dict(enumerate(page_sizes(data), 1)) if data is not None and is_pdf(data) else {1: (width, height)}
    return pages_of(lines, sizes, sources)


def export(fmt: str, answer: dict, data: bytes | None, software: str = "ocr-platform") -> bytes:
    """The answer (a job object: ``lines``, ``width``, ``height``, ``filename``) as ``fmt`` (one of
    ``FORMATS``). ``data``, the file that was read, is needed for "pdf" (ValueError without it)
    and gives a PDF's page sizes to the others."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if fmt == "json":
        return json.dumps(answer, ensure_ascii=False, indent=1).encode("utf-8")
    if fmt == "csv":
        return tables.to_csv(answer.get("tables") or []).encode("utf-8")
    if fmt == "html":
        return tables.to_html(answer.get("tables") or [], answer.get("filename") or "").encode("utf-8")
    pages = answer_pages(answer.get("lines") or [], answer["width"], answer["height"], data)
    name = answer.get("filename") or ""
    if fmt == "txt":
        return plain_text(pages).encode("utf-8")
    if fmt == "hocr":
        return hocr.to_hocr(pages, name, software, answer.get("tables") or []).encode("utf-8")
    if fmt == "alto":
        return alto.to_alto(pages, name, software, answer.get("tables") or [])
    if data is None:
        raise ValueError("a PDF export needs the file that was read")
    return pdf.from_pdf(pages, data) if is_pdf(data) else pdf.from_image(pages[0], data)
