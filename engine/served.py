"""The serving pipeline as a worker builds it with the default settings, for code that reads
outside a worker: the page suite's scoring, benchmarks and the OCRmyPDF plugin. The settings a
worker reads (ocrsite/settings/base.py: OCR_DECODER, OCR_LM_*, OCR_BEAM_*, OCR_CASCADE_BELOW and the
model files) default to the values here."""

from __future__ import annotations

from pathlib import Path

from .batcher import LineBatcher
from .beam import BeamSettings
from .decoder import DecoderConfig, LineDecoder
from .detect import DirectionClassifier, PageReader, TextDetector
from .inference import Recognizer
from .lm import CharLM
from .modelpkg import REFERENCE_FILES, SERVED_DEFAULT

LM_FILE = "lm/zh_char5.arpa.gz"
DECODER = DecoderConfig("beam", BeamSettings(alpha=0.3, beta=2.5), 0.2)
CASCADE_BELOW = 0.8


def served_pipeline(
    models: str | Path,
    model: str | Path | None = None,
    cascade: str | Path | None = None,
    below: float = CASCADE_BELOW,
    threads: int = 1,
) -> tuple[LineBatcher, PageReader, Recognizer]:
    """(line batcher, page reader, recogniser) over the files in ``models``: the recogniser
    ``model`` (default: the served one), the beam decoder with the character LM, the detector and
    the line direction classifier, and, with ``cascade``, that recogniser re-reading the lines read
    below ``below``."""
    models = Path(models)
    rec = Recognizer(model or models / SERVED_DEFAULT, threads=threads)
    strong = Recognizer(cascade, threads=threads) if cascade else None
    lm = CharLM.load(str(models / LM_FILE)) if (models / LM_FILE).exists() else None
    batcher = LineBatcher(
        lambda: rec,
        decoder=LineDecoder(DECODER, lm),
        cascade=(lambda: strong) if strong else None,
        cascade_below=below if strong else 0.0,
    )
    reader = PageReader(
        TextDetector(models / REFERENCE_FILES["ppocrv6-tiny-det"], threads=threads),
        DirectionClassifier(models / REFERENCE_FILES["ppocr-mobile-cls"], threads=threads),
    )
    return batcher, reader, rec
