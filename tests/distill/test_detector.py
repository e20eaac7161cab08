"""Our own text detector: the network, its crops and targets, a few training steps that resume,
and the exported package the engine reads."""

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from distill.cli import main
from distill.detector import (
    DetectorLoss,
    PageCrops,
    PagePool,
    detector_parity,
    detector_spec,
    export_detector,
    load_detector,
    match_counts,
    random_crop,
    run_detector_training,
    shrink_quad,
    text_map,
)
from distill.export import count_params
from distill.models.db import build_detector, db_student
from distill.pages import make_page
from distill.train import save_checkpoint
from engine.detect import DetSpec, PageReader, TextDetector

TEACHER = Path(__file__).resolve().parents[2] / "models" / "reference" / "ppocrv6_tiny_det.onnx"  # `make models`


@pytest.fixture(scope="module")
def pool():
    return PagePool(TEACHER, detector_spec(TEACHER))


# --------------------------------------------------------------------------- the network


@pytest.mark.parametrize("height,width", [(64, 96), (128, 128), (160, 320)])
def test_the_network_gives_a_probability_map_of_the_inputs_size(height, width):
    torch.manual_seed(0)
    model = db_student().eval()
    x = torch.randn(2, 3, height, width)
    with torch.no_grad():
        features = model.forward_features(x)
        prob = model(x)
    assert features.shape == (2, model.feature_channels, height // 4, width // 4)
    assert prob.shape == (2, 1, height, width)
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0


def test_the_network_is_far_under_a_million_parameters():
    params = sum(p.numel() for p in db_student().parameters())
    assert 100_000 < params < 400_000


def test_an_unknown_detector_architecture_is_refused():
    with pytest.raises(ValueError):
        build_detector("dbnet9000")


# --------------------------------------------------------------------------- targets and crops


def test_a_long_box_shrinks_by_dbs_offset_on_every_side():
    quad = np.float32([[10, 10], [210, 10], [210, 30], [10, 30]])
    d = 200 * 20 * (1 - 0.63**2) / 440
    expected = np.float32([[10 + d, 10 + d], [210 - d, 10 + d], [210 - d, 30 - d], [10 + d, 30 - d]])
    np.testing.assert_allclose(shrink_quad(quad, 0.63), expected, atol=1e-4)
    # a turned box shrinks the same way, along its own sides
    turn = cv2.getRotationMatrix2D((110, 20), 30, 1.0)
    turned = cv2.transform(quad[None], turn)[0]
    np.testing.assert_allclose(shrink_quad(turned, 0.63), cv2.transform(expected[None], turn)[0], atol=1e-3)


def test_the_text_map_is_one_inside_the_shrunk_boxes_and_zero_elsewhere():
    quad = np.float32([[10, 10], [210, 10], [210, 30], [10, 30]])
    m = text_map([quad], (48, 240), 0.63)
    shrunk = shrink_quad(quad, 0.63)
    area = (shrunk[1, 0] - shrunk[0, 0]) * (shrunk[3, 1] - shrunk[0, 1])
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0}
    assert m.sum() == pytest.approx(area, rel=0.06)
    assert m[:10].sum() == 0 and m[31:].sum() == 0 and m[20, 20:200].all()


def test_a_crop_past_the_pages_edge_is_padded_with_zeros(rng):
    x = np.ones((3, 40, 50), np.float32)
    y = np.ones((40, 50), np.float32)
    cx, cy = random_crop([x, y], 64, rng)
    assert cx.shape == (3, 64, 64) and cy.shape == (64, 64)
    assert cx[:, :40, :50].all() and not cx[:, 40:].any() and not cy[:, 50:].any()


def test_a_steps_batch_is_the_same_whenever_it_is_drawn(pool):
    data = PageCrops(pool, steps=10, batch_size=2, crop=128, seed=3)
    first, again = data[4], data[4]
    assert first["images"].shape == (2, 3, 128, 128)
    assert first["teacher"].shape == first["gt"].shape == (2, 1, 128, 128)
    for key in ("images", "teacher", "gt"):
        assert torch.equal(first[key], again[key])
    assert 0.0 <= float(first["teacher"].min()) and float(first["teacher"].max()) <= 1.0
    assert set(torch.unique(first["gt"]).tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        PageCrops(pool, steps=1, batch_size=2, crop=100)


def test_training_pages_never_reuse_the_benchmarks_seeds(pool, monkeypatch):
    from distill.detector import DEV_SEED_BASE, TRAIN_SEED_BASE

    seen, prepared = [], pool.prepared
    monkeypatch.setattr(pool, "prepared", lambda seed, *a, **k: seen.append(seed) or prepared(seed, *a, **k))
    PageCrops(pool, steps=3, batch_size=2, crop=128, seed=0)[2]
    assert seen and all(s >= TRAIN_SEED_BASE > DEV_SEED_BASE > 500 for s in seen)  # bench/pages.py: 100-499


# --------------------------------------------------------------------------- loss and training


def test_the_loss_is_the_weighted_sum_of_its_named_terms():
    gen = torch.Generator().manual_seed(0)
    prob, soft = torch.rand(2, 1, 32, 32, generator=gen), torch.rand(2, 1, 32, 32, generator=gen)
    gt = (torch.rand(2, 1, 32, 32, generator=gen) > 0.8).float()
    terms = DetectorLoss(kd_weight=0.5, gt_weight=2.0)(prob, soft, gt)
    assert set(terms) == {"kd", "gt", "total"}
    assert float(terms["total"]) == pytest.approx(0.5 * float(terms["kd"]) + 2.0 * float(terms["gt"]), rel=1e-6)
    assert float(DetectorLoss()(gt, None, gt)["gt"]) < 1e-4  # the boxes themselves: no loss
    assert set(DetectorLoss(kd_weight=0.0)(prob, soft, gt)) == {"gt", "total"}


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(pool):
    batch = PageCrops(pool, steps=1, batch_size=2, crop=256, seed=0)[0]
    torch.manual_seed(0)
    model, loss_fn = db_student(), DetectorLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(6):
        terms = loss_fn(model(batch["images"]), batch["teacher"], batch["gt"])
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(float(terms["total"].detach()))
    assert losses[-1] < losses[0]


def test_a_run_checkpoints_and_a_second_one_resumes_where_it_stopped(tmp_path):
    common = dict(
        run_dir=tmp_path, batch_size=2, crop=128, teacher=TEACHER, workers=0, eval_every=3, dev_count=1, progress=False
    )
    run_detector_training(steps=2, **common)
    assert torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)["step"] == 2
    run_detector_training(steps=3, **common)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("event") == "start"] == [0, 2]
    assert {"kd", "gt", "total"} <= set(next(r for r in records if "total" in r))
    assert any("dev_det_f1" in r for r in records) and any("dev_det_f1_teacher" in r for r in records)
    model, state = load_detector(tmp_path / "last.pt")
    assert state["step"] == 3 and "optimizer" in state and state["config"]["spec"]["ocr.limit_type"] == "area"


# --------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = db_student().eval()
    out = tmp_path_factory.mktemp("det") / "db.onnx"
    export_detector(model, out, detector_spec(TEACHER), extra={"distill.arch": "db_student"})
    return model, out


def test_the_onnx_graph_matches_pytorch(exported):
    model, path = exported
    assert detector_parity(model, path, sizes=((96, 160), (256, 64))) < 1e-5


def test_the_metadata_round_trips_through_the_detector_contract(exported):
    _, path = exported
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    spec = DetSpec.from_metadata(meta)
    assert spec == detector_spec(TEACHER) and spec.name == "db-student"
    assert (spec.limit_type, spec.limit_side, spec.thresh, spec.unclip_ratio) == ("area", 1120, 0.2, 1.6)
    assert int(meta["params"]) == count_params(proto) < 400_000 and meta["distill.arch"] == "db_student"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[2].dim_param and dims[3].dim_param


class InkMap(torch.nn.Module):
    """A detector any page of dark text on light paper fits: dark pixels (normalised below zero),
    smeared a few pixels along the line so a line's characters join into one region."""

    def forward(self, x):
        ink = torch.sigmoid(-4.0 * x.mean(1, keepdim=True))
        return torch.nn.functional.max_pool2d(ink, (3, 9), stride=1, padding=(1, 4))


def test_the_exported_package_keeps_the_detector_contract(exported, faces, sentences):
    _, path = exported
    detector = TextDetector(path, threads=1)
    page = make_page(itertools.cycle(sentences), faces, seed=3, capture="scan", layout="form")
    found = detector.detect(page.image)
    assert all(q.shape == (4, 2) and 0 <= s <= 1 for q, s in found)
    assert detector.probability_map(page.image).shape == (1344, 928)  # the input's size, as the teacher's


def test_the_engine_reads_a_page_with_the_exported_detector(tmp_path, faces, sentences):
    """A detector exported the way a trained student is reads a scanned form through the engine:
    nearly every line of the page is found in what it reads."""
    import re
    import unicodedata
    import uuid

    from engine.batcher import LineBatcher
    from engine.inference import Recognizer
    from engine.pipeline import recognize_array

    path = export_detector(InkMap().eval(), tmp_path / "ink.onnx", detector_spec(TEACHER), extra={})
    page = make_page(itertools.cycle(sentences), faces, seed=3, capture="scan", layout="form")
    rec = Recognizer(TEACHER.with_name("ppocrv6_tiny_rec.onnx"), threads=1)
    out = recognize_array(page.image, LineBatcher(lambda: rec), uuid.uuid4().hex, reader=PageReader(TextDetector(path)))

    def letters(text: str) -> str:
        return re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", text))

    read = letters("".join(out.text))
    found = [line for line in page.lines if letters(line) in read]
    assert len(page.lines) >= 10 and len(found) >= 0.8 * len(page.lines), (page.lines, out.text)


def test_the_export_command_writes_a_package_with_the_settings_asked_for(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "last.pt",
        arch="db_student",
        model=db_student(),
        step=7,
        config={"spec": detector_spec(TEACHER).to_metadata()},
    )
    out = tmp_path / "det.onnx"
    assert (
        main(["export-detector", "--checkpoint", str(tmp_path / "last.pt"), "--out", str(out), "--box-thresh", "0.5"])
        == 0
    )
    spec = TextDetector(out, threads=1).spec
    assert (spec.name, spec.box_thresh, spec.thresh, spec.extra["distill.step"]) == ("db-student", 0.5, 0.2, "7")


def test_detections_are_matched_one_to_one_by_overlap():
    box = np.float32([[0, 0], [100, 0], [100, 20], [0, 20]])
    assert match_counts([box, box + 1], [box]) == (1, 2, 1)
    assert match_counts([box + [0, 15]], [box]) == (0, 1, 1)  # a quarter overlap is a miss
