"""A searchable PDF: every page as it was sent, with the recognised text laid over it invisibly,
each word (``document.words_of``: every Chinese character is one) stretched over its own box, so
selecting and copying in a viewer, or ``pdftotext``, gives the recognised text, with no space
between Chinese characters.

The text layer is drawn by OCRmyPDF's renderer (``ocrmypdf.fpdf_renderer``: fpdf2, a glyphless
font, one text object per line with each word scaled to its box), from an ``OcrElement`` tree
built from the answer, the way an OCR engine plugin hands it its results. An image becomes one
page at ``IMAGE_DPI`` (or the resolution the file states); a PDF keeps its pages and gets the
layer grafted onto each page that was read (pikepdf), pages whose own text layer was taken stay
as they are.
"""

from __future__ import annotations

import io
import logging
import math
import tempfile
from pathlib import Path

from .document import Page, line_angle, words_of

IMAGE_DPI = 150.0  # an image whose file states no resolution is laid out at this one
PDF_DPI = 150.0  # the resolution PDF pages are read at (engine.pdf.DPI)


def _fonts():
    """Only the fonts OCRmyPDF ships (Latin and the glyphless fallback): invisible text needs
    no glyphs, and the file stays small and the same on every machine."""
    from ocrmypdf.font import MultiFontManager
    from ocrmypdf.font.font_provider import BuiltinFontProvider

    # it warns that Chinese text falls back to the glyphless font: that is the point here
    logging.getLogger("ocrmypdf.font").setLevel(logging.ERROR)
    return MultiFontManager(font_provider=BuiltinFontProvider())


def _line_element(line: dict):
    from ocrmypdf.models.ocr_element import Baseline, BoundingBox, OcrClass, OcrElement

    words = words_of(line)
    if not words:
        return None
    x0, y0, x1, y1 = line["box"]
    children = [
        OcrElement(ocr_class=OcrClass.WORD, bbox=BoundingBox(*w.box), text=w.text, confidence=w.confidence)
        for w in words
    ]
    angle = line_angle(line)
    element = OcrElement(ocr_class=OcrClass.LINE, bbox=BoundingBox(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    if line.get("vertical") or 45 < angle < 315:
        element.textangle = 270.0 if line.get("vertical") else round(angle / 90) * 90.0 % 360
    elif line.get("polygon"):  # a tilted line: its bottom edge is the baseline
        (blx, bly), (brx, bry) = line["polygon"][3], line["polygon"][2]
        slope = (bry - bly) / (brx - blx) if brx != blx else 0.0
        element.baseline = Baseline(slope=slope, intercept=bly + slope * (x0 - blx) - y1)
    element.children = children
    return element


def page_element(page: Page, dpi: float):
    """The page's lines as OCRmyPDF's ``OcrElement`` tree (an ``ocr_page`` of ``ocr_line``s of words)."""
    from ocrmypdf.models.ocr_element import BoundingBox, OcrClass, OcrElement

    lines = [el for el in (_line_element(line) for line in page.lines) if el is not None]
    bbox = BoundingBox(0, 0, page.width, page.height)
    return OcrElement(ocr_class=OcrClass.PAGE, bbox=bbox, children=lines, dpi=dpi, page_number=page.number - 1)


def _render(page: Page, dpi: float, out: Path, image: Path | None = None) -> None:
    from ocrmypdf.fpdf_renderer import Fpdf2PdfRenderer

    Fpdf2PdfRenderer(page_element(page, dpi), dpi, _fonts(), invisible_text=True, image=image).render(out)


def image_dpi(image) -> float:
    """The resolution a PIL image's file states, if it is plausible, else ``IMAGE_DPI``."""
    dpi = image.info.get("dpi")
    try:
        value = float(dpi[0]) if dpi else 0.0
    except (TypeError, ValueError, IndexError):
        value = 0.0
    return value if 50 <= value <= 1200 and math.isfinite(value) else IMAGE_DPI


def from_image(page: Page, data: bytes) -> bytes:
    """A one-page PDF of an image (orientation applied, as the job read it) under its text. A
    JPEG or PNG that needs no turning goes in as sent (fpdf2 embeds a JPEG's bytes unchanged)."""
    from PIL import Image, ImageOps

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pdf"
        with Image.open(io.BytesIO(data)) as opened:
            dpi, kind = image_dpi(opened), (opened.format or "").upper()
            upright = opened.getexif().get(0x0112, 1) == 1
            pic = Path(tmp) / ("page.jpg" if kind == "JPEG" else "page.png")
            if upright and kind in ("JPEG", "PNG") and opened.mode in ("RGB", "L"):
                pic.write_bytes(data)
            else:
                image = ImageOps.exif_transpose(opened)
                image = image if image.mode in ("RGB", "L") else image.convert("RGB")
                image.save(pic, **({"quality": 92} if kind == "JPEG" else {}))
        _render(page, dpi, out, image=pic)
        return out.read_bytes()


def from_pdf(pages: list[Page], data: bytes) -> bytes:
    """The sent PDF with a text layer grafted onto each page that was read (not onto pages whose
    own text was taken): the layer is drawn at the reading resolution as the page is shown and
    scaled onto it (pikepdf places it upright on a page stored turned with /Rotate)."""
    import pikepdf

    with tempfile.TemporaryDirectory() as tmp, pikepdf.open(io.BytesIO(data)) as pdf:
        for page in pages:
            if page.source != "ocr" or not page.lines or page.number > len(pdf.pages):
                continue
            layer_path = Path(tmp) / f"layer-{page.number}.pdf"
            _render(page, PDF_DPI, layer_path)
            target = pdf.pages[page.number - 1]
            with pikepdf.open(layer_path) as layer:
                box = target.cropbox if "/CropBox" in target.obj else target.mediabox
                target.add_overlay(pdf.copy_foreign(layer.pages[0].as_form_xobject()), pikepdf.Rectangle(*box))
        buffer = io.BytesIO()
        pdf.save(buffer)
        return buffer.getvalue()
