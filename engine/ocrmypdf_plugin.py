"""An OCRmyPDF plugin: our detector, recogniser and decoder in place of Tesseract.

    .venv/bin/ocrmypdf --plugin engine.ocrmypdf_plugin --output-type pdf in.pdf out.pdf

(run from the repository's root, or with it on ``PYTHONPATH``). OCRmyPDF rasterises each page,
hands the image to ``PlatformEngine.generate_ocr`` (``engine.served``: the pipeline a worker runs
with the default settings) and draws the text layer from the ``OcrElement`` tree it gets back,
one word per Chinese character (``engine.exports``), so the output has no spaces between Chinese
characters. Each OCRmyPDF worker process loads the models once.

Environment: ``OCR_MODELS_DIR`` (default: the repository's ``models``), ``OCR_PLUGIN_MODEL`` (a
recogniser package; default: the served default), ``OCR_PLUGIN_CASCADE`` (a stronger recogniser
that re-reads doubtful lines; default: none).
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache
from pathlib import Path

import numpy as np
from ocrmypdf import hookimpl
from ocrmypdf.pluginspec import OcrEngine, OrientationConfidence
from PIL import Image

from .exports.document import Page
from .exports.hocr import to_hocr
from .exports.pdf import image_dpi, page_element
from .pipeline import recognize_array

ROOT_MODELS = Path(__file__).resolve().parents[1] / "models"
# what `-l` may name: the served recognisers read Simplified Chinese and English
LANGUAGES = {"chi_sim", "eng", "chi", "zho"}


@lru_cache(maxsize=1)
def _pipeline():
    from .served import served_pipeline

    models = Path(os.environ.get("OCR_MODELS_DIR") or ROOT_MODELS)
    return served_pipeline(
        models, os.environ.get("OCR_PLUGIN_MODEL") or None, os.environ.get("OCR_PLUGIN_CASCADE") or None
    )


def read_page(input_file: Path, number: int = 1) -> tuple[Page, float, list[str]]:
    """One rasterised page read through the serving pipeline: the page, its resolution, its lines."""
    with Image.open(input_file) as img:
        dpi = image_dpi(img)
        rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
    batcher, reader, _ = _pipeline()
    outcome = recognize_array(rgb, batcher, uuid.uuid4().hex, reader=reader)
    page = Page(number=number, width=rgb.shape[1], height=rgb.shape[0], lines=outcome.lines)
    return page, dpi, outcome.text


class PlatformEngine(OcrEngine):
    @staticmethod
    def version() -> str:
        return _pipeline()[2].label

    @staticmethod
    def creator_tag(options) -> str:
        return f"ocr-platform {PlatformEngine.version()}"

    def __str__(self) -> str:
        return f"ocr-platform ({self.version()})"

    @staticmethod
    def languages(options) -> set[str]:
        return set(LANGUAGES)

    @staticmethod
    def get_orientation(input_file: Path, options) -> OrientationConfidence:
        # the page reader turns upside-down lines and pages itself
        return OrientationConfidence(angle=0, confidence=0.0)

    @staticmethod
    def get_deskew(input_file: Path, options) -> float:
        return 0.0

    @staticmethod
    def supports_generate_ocr() -> bool:
        return True

    @staticmethod
    def generate_ocr(input_file: Path, options, page_number: int = 0):
        page, dpi, text = read_page(Path(input_file), page_number + 1)
        return page_element(page, dpi), "\n".join(text)

    @staticmethod
    def generate_hocr(input_file: Path, output_hocr: Path, output_text: Path, options) -> None:
        page, _, text = read_page(Path(input_file))
        Path(output_hocr).write_text(to_hocr([page], Path(input_file).name), encoding="utf-8")
        Path(output_text).write_text("\n".join(text), encoding="utf-8")

    @staticmethod
    def generate_pdf(input_file: Path, output_pdf: Path, output_text: Path, options) -> None:
        raise NotImplementedError("the platform's engine hands OCRmyPDF its text (fpdf2 renderer), not a PDF")


@hookimpl
def initialize(plugin_manager) -> None:
    """Loading this plugin means reading with it: Tesseract's built-in plugin (which insists on
    finding the tesseract program) is left out. Its options stay known (``register_options``,
    ``add_options``): OCRmyPDF's own checks read them whatever the engine."""
    plugin_manager.set_blocked("ocrmypdf.builtin_plugins.tesseract_ocr")


@hookimpl
def register_options():
    from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOptions

    return {"tesseract": TesseractOptions}


@hookimpl
def add_options(parser) -> None:
    from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOptions

    TesseractOptions.add_arguments_to_parser(parser)


@hookimpl
def get_ocr_engine(options):
    """This engine, unless another one was named (``--ocr-engine tesseract`` or ``none``)."""
    if options is not None and getattr(options, "ocr_engine", "auto") not in ("auto",):
        return None
    return PlatformEngine()
