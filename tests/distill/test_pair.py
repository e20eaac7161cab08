"""A guarded adaptation (distill/pair.py): one graph reads each line with both branches and answers
with the adapted branch's output exactly where its confidence beats the start's by the margin."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from distill.pair import guarded_pair
from engine.inference import Recognizer
from engine.modelfile import file_sha256
from engine.modelpkg import REFERENCE_FILES, ModelSpec
from engine.preprocess import pad_batch, prepare_line

MODELS = Path(__file__).resolve().parents[2] / "models"
START = MODELS / REFERENCE_FILES["ppocrv6-tiny"]
ADAPTED = MODELS / "ppocrv6_tiny_warm.onnx"  # refined from PP-OCRv6 tiny: the same classes and input


@pytest.fixture(scope="module")
def batch(faces, sentences):
    """Six lines of different widths, as a worker pads them into one batch; half of them blurred and
    faded, so the two models are not equally sure of every line."""
    import cv2
    from PIL import Image, ImageDraw

    spec = ModelSpec.from_file(START)
    lines = []
    for k, text in enumerate(sentences[:6]):
        font = faces[0].pil(32)
        img = Image.new("RGB", (40 + 34 * len(text), 48), "white")
        ImageDraw.Draw(img).text((20, 6), text, font=font, fill="black")
        rgb = np.asarray(img)
        if k % 2:
            rgb = cv2.GaussianBlur(rgb, (0, 0), 1.6)
            rgb = (255 - (255 - rgb.astype(np.float32)) * 0.35).astype(np.uint8)
        lines.append(prepare_line(rgb, spec))
    return pad_batch(lines, spec)


def confidence(probs: np.ndarray, blank: int) -> np.ndarray:
    """The documented rule, in numpy: the geometric mean of the top probability over the steps whose
    best class is not the blank (0 for none)."""
    top, best = probs.max(axis=2), probs.argmax(axis=2)
    written = best != blank
    logs = np.where(written, np.log(np.maximum(top, 1e-12)), 0.0).sum(axis=1)
    count = written.sum(axis=1)
    return np.where(count > 0, np.exp(logs / np.maximum(count, 1)), 0.0)


def test_each_line_takes_the_adapted_reading_exactly_where_it_is_surer_by_the_margin(tmp_path, batch):
    start, adapted = Recognizer(START, threads=1).outputs(batch), Recognizer(ADAPTED, threads=1).outputs(batch)
    blank = ModelSpec.from_file(START).blank_index
    gap = confidence(adapted, blank) - confidence(start, blank)
    ordered = np.sort(gap)
    middle = len(ordered) // 2
    # halfway between the two middle lines: some lines each way, none within float32 rounding of it
    assert ordered[middle] - ordered[middle - 1] > 1e-3
    margin = float(ordered[middle - 1] + ordered[middle]) / 2
    pair = Recognizer(guarded_pair(START, ADAPTED, tmp_path / "pair.onnx", margin), threads=1).outputs(batch)
    chosen = gap > margin
    assert 0 < chosen.sum() < len(chosen)
    for k in range(len(chosen)):
        np.testing.assert_allclose(pair[k], (adapted if chosen[k] else start)[k], atol=1e-5)
    # the bounds: a margin no line clears gives the start, one every line clears the adapted model
    never = Recognizer(guarded_pair(START, ADAPTED, tmp_path / "never.onnx", 1.0), threads=1).outputs(batch)
    always = Recognizer(guarded_pair(START, ADAPTED, tmp_path / "always.onnx", -1.0), threads=1).outputs(batch)
    np.testing.assert_allclose(never, start, atol=1e-5)
    np.testing.assert_allclose(always, adapted, atol=1e-5)


def test_the_pair_is_an_ordinary_package_that_names_its_start_and_refuses_a_stranger(tmp_path):
    path = guarded_pair(START, ADAPTED, tmp_path / "pair.onnx", 0.05)
    spec, adapted = ModelSpec.from_file(path), ModelSpec.from_file(ADAPTED)
    assert spec.name == adapted.name + "-guarded" and spec.classes == adapted.classes
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    guard = json.loads(meta["guard"])
    assert guard["margin"] == 0.05 and guard["start_sha256"] == file_sha256(START)
    with pytest.raises(ValueError, match="classes"):
        guarded_pair(START, MODELS / "student.onnx", tmp_path / "bad.onnx", 0.05)
