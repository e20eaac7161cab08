"""PDF input: each page's own text layer where it can be trusted, else the page rendered and read.

Pages are rendered by PDFium (pypdfium2). Limits come before any rendering: the page count,
and each page's pixels at the rendering resolution. A text layer is trusted when it holds
enough printable text and no replacement or private-use characters (what broken font
encodings leave behind); a scanned PDF has none and is read like an image.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .limits import ImageError, ImageInfo, ImageLimits

DPI = 150  # pages are read at 150 dpi: an A4 page is 1240 x 1754 pixels
MIN_TEXT_CHARS = 8


@dataclass
class PdfPage:
    number: int  # 1-based
    width: int  # pixels at the rendering resolution
    height: int
    text_lines: list[dict] | None  # lines of a trusted text layer ({"text", "box"}), else None
    rgb: np.ndarray | None  # the rendered page, when there is no trusted text layer
    of: int = 0  # the document's number of pages


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF-")


def _open(data: bytes, limits: ImageLimits):
    import pypdfium2 as pdfium

    if len(data) > limits.max_bytes:
        raise ImageError("too_large", f"The PDF is {len(data)} bytes; the limit is {limits.max_bytes} bytes.", 413)
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ImageError("bad_pdf", f"The PDF could not be opened: {exc}.") from None
    pages = len(doc)
    if pages == 0:
        raise ImageError("bad_pdf", "The PDF has no pages.")
    if pages > limits.max_pages:
        raise ImageError("too_many_pages", f"The PDF has {pages} pages; the limit is {limits.max_pages}.", 413)
    return doc


def _pixels(page) -> tuple[int, int]:
    """A page's size in pixels at the reading resolution."""
    w_pt, h_pt = page.get_size()
    return int(round(w_pt * DPI / 72)), int(round(h_pt * DPI / 72))


def _rendered(page):
    """A page drawn at the reading resolution, as an RGB PIL image."""
    return page.render(scale=DPI / 72).to_pil().convert("RGB")


def _page_size(page, limits: ImageLimits, number: int) -> tuple[int, int]:
    width, height = _pixels(page)
    if width * height > limits.max_pixels:
        raise ImageError(
            "image_too_large",
            f"Page {number} is {width}x{height} pixels at {DPI} dpi; the limit is {limits.max_pixels} pixels.",
            413,
        )
    if min(width, height) < limits.min_side:
        raise ImageError("image_too_small", f"Page {number} is {width}x{height} pixels.")
    return width, height


def inspect_pdf(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Limits checked on every page without rendering; the first page's size at the dpi."""
    doc = _open(data, limits)
    sizes = [_page_size(doc[i], limits, i + 1) for i in range(len(doc))]
    return ImageInfo(format="PDF", width=sizes[0][0], height=sizes[0][1], pages=len(sizes))


def page_sizes(data: bytes) -> list[tuple[int, int]]:
    """Each page's size in pixels at the resolution pages are read at (a PDF already accepted:
    no limit is checked)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    return [_pixels(doc[i]) for i in range(len(doc))]


def render_page_png(data: bytes, number: int) -> bytes:
    """Page ``number`` (1-based) of an accepted PDF as a PNG at the reading resolution, the frame
    its lines' coordinates are in (IndexError: no such page)."""
    import io

    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    if not 1 <= number <= len(doc):
        raise IndexError(number)
    buffer = io.BytesIO()
    _rendered(doc[number - 1]).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def trusted(text: str) -> bool:
    chars = [c for c in text if not c.isspace()]
    if len(chars) < MIN_TEXT_CHARS:
        return False
    bad = sum(c == "\ufffd" or unicodedata.category(c) in ("Co", "Cn", "Cc", "Cs") for c in chars)
    return bad == 0


def _text_lines(page, textpage, scale: float) -> list[dict]:
    """The text layer as lines with pixel boxes, in the layer's own order."""
    _, h_pt = page.get_size()
    lines = []
    for i in range(textpage.count_rects()):
        left, bottom, right, top = textpage.get_rect(i)
        text = textpage.get_text_bounded(left, bottom, right, top).strip()
        if text:
            box = [
                int(left * scale),
                int((h_pt - top) * scale),
                int(np.ceil(right * scale)),
                int(np.ceil((h_pt - bottom) * scale)),
            ]
            lines.append({"text": " ".join(text.split()), "box": box})
    return lines


def pdf_pages(data: bytes, limits: ImageLimits) -> Iterator[PdfPage]:
    """Each page in turn: its trusted text layer, or the page rendered to RGB."""
    doc = _open(data, limits)
    scale = DPI / 72
    for i in range(len(doc)):
        page = doc[i]
        width, height = _page_size(page, limits, i + 1)
        textpage = page.get_textpage()
        if trusted(textpage.get_text_range()):
            yield PdfPage(i + 1, width, height, _text_lines(page, textpage, scale), None, len(doc))
        else:
            rgb = np.ascontiguousarray(np.asarray(_rendered(page)))
            yield PdfPage(i + 1, rgb.shape[1], rgb.shape[0], None, rgb, len(doc))
