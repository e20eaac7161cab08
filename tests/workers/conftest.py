from pathlib import Path

import pytest

from engine.detect import DirectionClassifier, PageReader, TextDetector

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference"  # `make models` builds them


@pytest.fixture(scope="module")
def reader():
    """The worker's page reader: PP-OCRv6 tiny's detector and the 180° line classifier."""
    return PageReader(
        TextDetector(REFERENCE / "ppocrv6_tiny_det.onnx", threads=1),
        DirectionClassifier(REFERENCE / "ppocr_mobile_cls.onnx", threads=1),
    )
