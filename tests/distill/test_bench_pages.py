"""bench/pages.py --detector: the platform read again with another detector package, on the same
pages, beside the rows it always prints."""

import itertools
from pathlib import Path

import pytest
import torch

from distill.detector import detector_spec, export_detector
from distill.fonts import faces_for
from distill.models.db import db_student
from distill.pages import make_page

ROOT = Path(__file__).resolve().parents[2]
TEACHER = ROOT / "models" / "reference" / "ppocrv6_tiny_det.onnx"


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("pages")


def test_each_detector_given_gets_its_own_rows_on_the_same_pages(bench, monkeypatch, tmp_path, capsys):
    torch.manual_seed(0)
    ours = export_detector(db_student().eval(), tmp_path / "ours.onnx", detector_spec(TEACHER, name="db-test"))
    faces = [f for f in faces_for("train") if f.name == "Noto Sans CJK SC" and f.style == "Regular"]
    page = make_page(
        itertools.cycle(["增值税专用发票开具说明", "购买方名称上海明远科技有限公司"]),
        faces,
        seed=3,
        capture="scan",
        layout="form",
    )
    monkeypatch.setattr(bench, "page_sets", lambda count: {"scan": [page]})
    assert bench.main(["--pages", "1", "--threads", "1", "--no-rapidocr", "--detector", str(ours)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| pipeline",
        "| projection line finder alone (OCR_DETECTOR_MODEL=''), 1 thread",
        "| platform (v6 tiny det + cls + rec), 1 thread(s)",
        "| platform (db-test det from ours.onnx + cls + rec), 1 thread(s)",
    ]
    served = float(rows[2].split(" | ")[1].rstrip(" %"))
    assert served > 90.0  # the served detector reads the page; the untrained one gets a row all the same
