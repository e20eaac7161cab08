"""The real reference recogniser through ONNX Runtime, configured only by its metadata."""

from pathlib import Path

import numpy as np
import pytest

from engine.batcher import LineBatcher
from engine.inference import Recognizer
from engine.pipeline import recognize_array
from tests.conftest import render_lines

MODEL = Path(__file__).resolve().parents[2] / "models" / "reference" / "ppocrv4_mobile_rec.onnx"


@pytest.fixture(scope="module")
def recognizer():
    if not MODEL.exists():
        pytest.fail(f"{MODEL} is missing: `make models` builds it")
    return Recognizer(MODEL, threads=1)


def test_it_reads_its_configuration_from_the_model_metadata(recognizer):
    spec = recognizer.spec
    assert spec.input_height == 48 and spec.input_channels == 3 and spec.color_order == "BGR"
    assert spec.classes[spec.blank_index] == "" and len(spec.classes) > 6000


def test_it_recognises_a_multi_line_invoice(recognizer):
    img = render_lines(["购买方名称：上海明远科技有限公司", "价税合计 1280.00"])
    batcher = LineBatcher(lambda: recognizer, max_wait_ms=1)
    out = recognize_array(np.asarray(img), batcher, "r")
    assert out.text[0] == "购买方名称：上海明远科技有限公司"
    assert out.text[1].replace(" ", "") == "价税合计1280.00"
    assert all(0.5 < line["confidence"] <= 1.0 for line in out.lines)
    assert out.lines[0]["box"][1] < out.lines[1]["box"][1]


def test_it_reads_a_tilted_photo_of_a_form(recognizer):
    from engine.lines import rotate_upright

    lines = [
        "购买方名称：上海明远科技有限公司",
        "地址电话：上海市浦东新区 021-68881234",
        "价税合计（大写）壹仟贰佰捌拾元整",
    ]
    tilted, _ = rotate_upright(np.asarray(render_lines(lines, size=26)), -4)
    out = recognize_array(tilted, LineBatcher(lambda: recognizer, max_wait_ms=1), "r")
    assert [t.replace(" ", "") for t in out.text] == [t.replace(" ", "") for t in lines]
    for line in out.lines:
        x0, y0, x1, y1 = line["box"]
        assert 0 <= x0 < x1 <= tilted.shape[1] and 0 <= y0 < y1 <= tilted.shape[0]


def test_the_shipped_student_answers_the_printed_punctuation():
    """The student reads NFKC forms; its metadata has the worker restore full-width punctuation in
    Chinese text and keep half width in amounts and percentages, and keep doubles apart."""
    student = Recognizer(MODEL.parents[1] / "student.onnx", threads=1)
    assert student.spec.text_forms == "nfkc" and student.spec.blank_penalty > 0
    lines = ["购买方名称：上海明远科技有限公司", "价税合计（大写）：壹仟贰佰捌拾元整", "金额：¥1,280.00 税率：13%"]
    out = recognize_array(np.asarray(render_lines(lines)), LineBatcher(lambda: student, max_wait_ms=1), "r")
    assert [t.replace(" ", "") for t in out.text] == [t.replace(" ", "") for t in lines]
    assert all(line["confidence"] > 0.9 for line in out.lines)


def test_one_line_read_alone_matches_the_batched_answer(recognizer):
    """``read_line`` (what distill evaluate and the benchmarks use) decodes the model's own output
    kind; the batched path decodes probabilities: for one line both give the same answer."""
    from engine.preprocess import prepare_line

    line = prepare_line(np.asarray(render_lines(["价税合计（大写）壹仟贰佰捌拾元整"])), recognizer.spec)
    alone, (batched,) = recognizer.read_line(line), recognizer.recognize([line])
    assert alone.text == batched.text == "价税合计（大写）壹仟贰佰捌拾元整"
    assert abs(alone.confidence - batched.confidence) < 1e-5
    raw = recognizer.outputs(line[None])
    assert raw.dtype == np.float32 and np.allclose(recognizer.run(line[None]), raw, atol=1e-6)  # a "probs" model


def test_without_the_memory_arena_sessions_read_the_same(monkeypatch, recognizer):
    """OCR_ORT_ARENA=0 turns ONNX Runtime's CPU arena and memory patterns off (docs/running.md,
    "Memory"); the answers do not change."""
    monkeypatch.setenv("OCR_ORT_ARENA", "0")
    plain = Recognizer(MODEL, threads=1)
    options = plain.session.get_session_options()
    assert options.enable_cpu_mem_arena is False and options.enable_mem_pattern is False
    assert recognizer.session.get_session_options().enable_cpu_mem_arena is True
    img = render_lines(["购买方名称：上海明远科技有限公司", "价税合计 1280.00"])
    for width in (160, 320, 480):
        x = np.random.default_rng(width).uniform(-1, 1, (2, 3, 48, width)).astype(np.float32)
        assert np.allclose(plain.outputs(x), recognizer.outputs(x), atol=1e-4)
    with_arena = recognize_array(np.asarray(img), LineBatcher(lambda: recognizer, max_wait_ms=1), "a")
    without = recognize_array(np.asarray(img), LineBatcher(lambda: plain, max_wait_ms=1), "b")
    assert with_arena.text == without.text and with_arena.text[0] == "购买方名称：上海明远科技有限公司"


def test_sessions_of_several_threads_sleep_between_runs_and_read_the_same(recognizer):
    """A session of more than one intra-op thread (OCR_ORT_THREADS, 2 by default) has threads that
    sleep between runs instead of spinning, so the worker's task threads keep the cores; one thread
    has no pool to spin. The outputs are the one-thread session's within float32 rounding."""
    two = Recognizer(MODEL, threads=2)
    assert two.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    one = Recognizer(MODEL, threads=1)
    with pytest.raises(RuntimeError):  # no such entry: ONNX Runtime's default
        one.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32)
    assert np.allclose(two.outputs(x), one.outputs(x), atol=1e-4)
