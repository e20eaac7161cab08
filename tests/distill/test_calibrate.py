import copy
import json

import numpy as np
import onnxruntime as ort
import pytest

from distill.calibrate import apply_blank_offset, best_paths, decode_with_offset, log_probs, sweep
from distill.cli import main
from distill.evaluate import evaluate
from distill.export import crnn_spec, export_onnx, parity
from distill.models import build
from engine.modelpkg import ModelSpec


def test_an_offset_turns_a_runner_up_into_its_character():
    classes = ("", "a", "b")
    probs = np.array(
        [
            [0.95, 0.03, 0.02],
            [0.70, 0.28, 0.02],  # "a" is second to the blank
            [0.90, 0.05, 0.05],
            [0.20, 0.05, 0.75],  # "b" wins outright
            [0.98, 0.01, 0.01],
        ]
    )
    paths = best_paths(log_probs(probs, "probs"), blank=0)
    assert decode_with_offset(paths, 0.0, classes, 0) == "b"
    assert decode_with_offset(paths, 1.0, classes, 0) == "ab"  # ln(0.70 / 0.28) = 0.92 < 1
    # a large enough offset never lets the blank win: every step is its best character
    assert decode_with_offset(paths, 10.0, classes, 0) == "aba"


def test_an_offset_keeps_a_doubled_character_apart():
    classes = ("", "a")
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.1, 0.9]])  # "a", a narrow blank, "a"
    paths = best_paths(log_probs(probs, "probs"), blank=0)
    assert decode_with_offset(paths, 0.0, classes, 0) == "aa"
    assert decode_with_offset(paths, 1.0, classes, 0) == "aa"
    # a model already penalised by 0.5 where "a" now beats the blank (0.6 against 0.4): without
    # its penalty the blank would have won (ln 1.5 = 0.41 < 0.5), so the double stays apart;
    # with a penalty of 0.3 the blank would have lost anyway and the run is one "a"
    paths = best_paths(log_probs(np.array([[0.1, 0.9], [0.4, 0.6], [0.1, 0.9]]), "probs"), blank=0)
    assert decode_with_offset(paths, 0.5, classes, 0, penalty=0.5) == "aa"
    assert decode_with_offset(paths, 0.5, classes, 0, penalty=0.3) == "a"


@pytest.fixture(scope="module")
def student_pair(tmp_path_factory, charset):
    import torch

    torch.manual_seed(0)
    model = build("student", len(charset)).eval()
    out = tmp_path_factory.mktemp("cal")
    plain = export_onnx(model, out / "plain.onnx", crnn_spec("crnn-student", charset.classes))
    shifted_model = apply_blank_offset(copy.deepcopy(model), 2.0)
    shifted = export_onnx(
        shifted_model, out / "shifted.onnx", crnn_spec("crnn-student", charset.classes, blank_penalty=2.0)
    )
    return model, shifted_model, plain, shifted


def test_the_offset_is_baked_into_the_classifier(student_pair):
    model, shifted_model, plain, shifted = student_pair
    assert parity(shifted_model, shifted, widths=(64,), batch=1) < 1e-4
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, 32, 96)).astype(np.float32)
    a = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0][0]
    b = ort.InferenceSession(str(shifted), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0][0]
    # blank minus every other class drops by exactly the offset; the other classes keep their ratios
    gap_a = a[:, :1] - a[:, 1:]
    gap_b = b[:, :1] - b[:, 1:]
    np.testing.assert_allclose(gap_a - gap_b, 2.0, atol=1e-3)
    np.testing.assert_allclose(a[:, 1:] - a[:, 1:2], b[:, 1:] - b[:, 1:2], atol=1e-3)


@pytest.fixture(scope="module")
def train_lines(tmp_path_factory):
    from distill.data import write_dataset

    out = tmp_path_factory.mktemp("train_lines")
    write_dataset(out, 5, split="train", seed=9, strength=0.0, progress=False)
    return out


def test_the_sweep_at_zero_agrees_with_evaluate(student_pair, train_lines):
    _, _, plain, _ = student_pair
    result = sweep(plain, [train_lines], offsets=(1.0, 0.0))
    assert result["offsets"] == [0.0, 1.0]
    per_dir = result["data"][str(train_lines)]
    assert per_dir["lines"] == 5
    assert per_dir["char_accuracy"][0] == pytest.approx(evaluate(train_lines, plain)["char_accuracy"], abs=1e-5)
    mean = result["mean_char_accuracy"]
    assert result["best_offset"] == result["offsets"][int(np.argmax(mean))]


def test_the_sweep_at_an_offset_agrees_with_the_exported_model(student_pair, train_lines, tmp_path):
    """What calibrate scores for an offset is what the model exported with it answers."""
    _, _, plain, shifted = student_pair
    result = sweep(plain, [train_lines], offsets=(2.0,))
    pred = tmp_path / "pred.tsv"
    served = evaluate(train_lines, shifted, predictions=pred)
    assert result["data"][str(train_lines)]["char_accuracy"][0] == pytest.approx(served["char_accuracy"], abs=1e-5)


def test_calibrate_refuses_the_held_out_dev_lines(student_pair, line_dir, capsys):
    _, _, plain, _ = student_pair
    assert main(["calibrate", "--model", str(plain), "--data", str(line_dir)]) == 2
    assert "held-out dev fonts" in capsys.readouterr().err


def test_export_records_the_offset_in_the_metadata(tmp_path, capsys):
    out = tmp_path / "s.onnx"
    assert main(["export", "--untrained", "student", "--out", str(out), "--blank-offset", "1.5"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-3
    spec = ModelSpec.from_file(out)
    assert spec.blank_penalty == 1.5 and spec.text_forms == "nfkc"
    assert main(["export", "--untrained", "student", "--out", str(out), "--blank-offset", "-1"]) == 2


def test_evaluate_decodes_a_penalised_model_as_the_workers_do(student_pair, monkeypatch):
    from distill.evaluate import load_recognizer, read_bgr

    _, _, _, shifted = student_pair
    rec = load_recognizer(shifted)
    assert rec.spec.blank_penalty == 2.0
    n = rec.spec.classes.index("n")
    out = np.full((1, 3, len(rec.spec.classes)), -20.0, np.float32)
    out[0, :, n] = -0.1
    out[0, 1, 0] = -1.1  # the blank loses by 1 here, but would have won by 1 without the penalty
    monkeypatch.setattr(rec, "outputs", lambda batch: out)
    assert read_bgr(rec, np.zeros((32, 64, 3), np.uint8)) == "nn"
    out[0, 1, 0] = -3.1  # the character beat the blank on its own: one "n"
    assert read_bgr(rec, np.zeros((32, 64, 3), np.uint8)) == "n"
