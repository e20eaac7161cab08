"""Warm-started distillation: the served recogniser as a torch module, its weights written back into
its own package, and a few real steps of the loop (CTC + KD + feature term from PP-OCRv6 small)."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image, ImageDraw

from distill import warmstart
from distill.onnxgraph import OnnxModule, write_back
from engine.inference import Recognizer
from engine.modelpkg import REFERENCE_FILES, ModelSpec
from engine.preprocess import prepare_line

MODELS = Path(__file__).resolve().parents[2] / "models"
TINY = MODELS / REFERENCE_FILES["ppocrv6-tiny"]
SMALL = MODELS / REFERENCE_FILES["ppocrv6-small"]


@pytest.fixture(scope="module")
def tiny():
    for path in (TINY, SMALL):
        if not path.exists():
            pytest.fail(f"{path} is missing: `make models` builds it")
    return OnnxModule(TINY, features=(warmstart.STUDENT_FEATURE,))


@pytest.fixture(scope="module")
def line_rgb(faces):
    font = faces[0].pil(30)
    img = Image.new("RGB", (430, 48), "white")
    ImageDraw.Draw(img).text((8, 6), "开票日期：2026年09月17日", font=font, fill="black")
    return np.asarray(img)


def test_the_served_recogniser_runs_as_a_torch_module_with_onnx_runtimes_output(tiny):
    session = ort.InferenceSession(str(TINY), providers=["CPUExecutionProvider"])
    for width in (160, 320):
        x = np.random.default_rng(width).uniform(-1, 1, (2, 3, 48, width)).astype(np.float32)
        with torch.no_grad():
            out = tiny(torch.from_numpy(x))
        np.testing.assert_allclose(out["logits"].softmax(-1).numpy(), session.run(None, {"x": x})[0], atol=1e-4)
        assert out[warmstart.STUDENT_FEATURE].shape == (2, width // 8, 160)


def test_every_weight_of_the_graph_is_a_parameter_and_scalars_stay_constants(tiny):
    meta = {p.key: p.value for p in onnx.load(str(TINY), load_external_data=False).metadata_props}
    assert sum(p.numel() for p in tiny.params.values()) == int(meta["params"])
    assert all(c.numel() <= 1 or not c.is_floating_point() for c in tiny.constants.values())


def test_an_operator_it_cannot_run_is_refused_by_name(tmp_path):
    node = onnx.helper.make_node("LpNormalization", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="LpNormalization"):
        OnnxModule(tmp_path / "m.onnx")


def test_weights_written_back_keep_the_package_and_read_the_same_text(tiny, tmp_path, line_rgb):
    out = write_back(tiny, TINY, tmp_path / "same.onnx", {"distill.note": "unchanged"})
    before, after = Recognizer(TINY, threads=1), Recognizer(out, threads=1)
    assert after.spec.classes == before.spec.classes and after.spec.input_height == before.spec.input_height
    assert after.spec.extra["distill.note"] == "unchanged"
    line = prepare_line(line_rgb, before.spec)
    assert after.read_line(line).text == before.read_line(line).text == "开票日期：2026年09月17日"
    np.testing.assert_allclose(after.outputs(line[None]), before.outputs(line[None]), atol=1e-6)


def test_the_character_axis_joins_both_class_lists():
    tiny, small = ModelSpec.from_file(TINY), ModelSpec.from_file(SMALL)
    axis = warmstart.CharAxis.build(tiny, small)
    assert axis.chars[0] == "" and len(set(axis.chars)) == len(axis.chars)
    # every class of the student lands on its own character; the folded traditional forms share one
    assert all(axis.chars[axis.student[c]] == label for c, label in enumerate(tiny.classes))
    assert len(axis.chars) < tiny.num_classes
    # small holds all of tiny's characters
    assert set(axis.teacher[axis.teacher >= 0].tolist()) == set(range(len(axis.chars)))
    index = axis.index
    assert axis.encode("发票 12") == [index["发"], index["票"], index[" "], index["1"], index["2"]]
    assert axis.encode("\U0002a6a5") is None


def test_a_line_the_teacher_cannot_read_gets_no_ctc_target():
    item = {"labels": torch.tensor([5, 6, 7]), "top_idx": torch.tensor([[5], [0], [6], [6], [0], [7]])}
    assert warmstart.teacher_reads(item)
    item["top_idx"] = torch.tensor([[9], [0], [0], [0], [0], [8]])
    assert not warmstart.teacher_reads(item)


def test_warm_distillation_steps_train_resume_and_export_a_serving_package(tmp_path, monkeypatch):
    monkeypatch.setattr(warmstart, "SHARD", 4)
    cache = warmstart.build_cache(tmp_path / "cache", 8, TINY, SMALL, seed=3, augraphy_share=0.5, log=lambda _: None)
    items = warmstart.load_cache(cache)
    assert 6 <= len(items) <= 8 and {it["kinds"] for it in items} <= {"ours", "augraphy"}
    for it in items:
        steps = it["images"].shape[2] // 8
        assert it["top_idx"].shape == (steps, 8) and it["feats"].shape == (steps, 120)
        assert abs(float(it["top_p"].float().sum(-1).mean()) - 1.0) < 1e-2
    run = tmp_path / "run"
    logs = []
    warmstart.train(
        cache, run, TINY, steps=2, batch_size=2, lr=1e-3, threads=1, adapter_warmup=1, ema_decay=0.0, log=logs.append
    )
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 2
    warmstart.train(
        cache, run, TINY, steps=3, batch_size=2, lr=1e-3, threads=1, adapter_warmup=1, ema_decay=0.0, log=logs.append
    )
    assert any(json.loads(line).get("resumed") for line in logs if line.startswith("{"))
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 3
    rec, base = Recognizer(run / "student.onnx", threads=1), Recognizer(TINY, threads=1)
    assert rec.spec.name == "ppocrv6-tiny-rec-warm" and rec.spec.classes == base.spec.classes
    assert json.loads(rec.spec.extra["distill.steps"]) == 3
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 160)).astype(np.float32)
    assert not np.allclose(rec.outputs(x), base.outputs(x), atol=1e-5)
    assert np.isfinite(rec.outputs(x)).all()
    # a finished run given again with --interpolate only exports again: 0 is the starting model,
    # 0.5 lies between it and the trained average
    trained = rec.outputs(x)
    for share in (0.0, 0.5):
        warmstart.train(
            cache, run, TINY, steps=3, batch_size=2, threads=1, ema_decay=0.0, interpolate=share, log=logs.append
        )
        assert torch.load(run / "last.pt", weights_only=False)["step"] == 3
        out = Recognizer(run / "student.onnx", threads=1)
        assert json.loads(out.spec.extra["distill.interpolate"]) == share
        if share == 0.0:
            assert np.allclose(out.outputs(x), base.outputs(x), atol=1e-4)
        else:
            half = out.outputs(x)
            assert not np.allclose(half, base.outputs(x), atol=1e-5) and not np.allclose(half, trained, atol=1e-5)


def test_an_export_with_a_blank_offset_lowers_the_blanks_logit_and_says_so(tmp_path, line_rgb):
    axis = warmstart.CharAxis.build(ModelSpec.from_file(TINY), ModelSpec.from_file(SMALL))
    student = warmstart.WarmStudent(TINY, axis)
    plain = Recognizer(warmstart.export(student, TINY, tmp_path / "plain.onnx"), threads=1)
    lowered = Recognizer(warmstart.export(student, TINY, tmp_path / "low.onnx", blank_offset=1.5), threads=1)
    assert lowered.spec.blank_penalty == 1.5 and plain.spec.blank_penalty == 0.0
    line = prepare_line(line_rgb, plain.spec)[None]
    blank = plain.spec.blank_index
    assert (lowered.outputs(line)[0, :, blank] < plain.outputs(line)[0, :, blank]).all()
    assert lowered.read_line(line[0]).text == plain.read_line(line[0]).text == "开票日期：2026年09月17日"
