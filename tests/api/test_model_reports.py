"""Every registered model gets an evaluation report on the frozen suite (the training queue's
``evaluate_model``), and the promotion gate reads it."""

from __future__ import annotations

import pytest

from distill.data import write_labels
from ocr_api import queues, tasks
from ocr_api.models import ModelVersion, PromotionEvent
from ocr_api.registry import active_model, register_model
from tests.conftest import ROOT, png_bytes, render_lines

STUDENT = ROOT / "models" / "student.onnx"
LINES = {
    "clean": ["开票日期二零二六", "购买方名称上海明远", "金额合计一千二百"],
    "rough": ["纳税人识别号码", "上海市浦东新区路"],
}


@pytest.fixture
def staff_client(make_user, api_client_for):
    return api_client_for(make_user("admin", is_staff=True))


def rendered_lines(folder, texts: list[str]):
    """A labels.tsv folder of ``texts``, each drawn as a one-line image ``<i>.png``."""
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        (folder / f"{i}.png").write_bytes(png_bytes(render_lines([text])))
    return write_labels(folder, [(f"{i}.png", text) for i, text in enumerate(texts)]).parent


@pytest.fixture
def suite(tmp_path, settings):
    for name, texts in LINES.items():
        rendered_lines(tmp_path / name, texts)
    settings.OCR_EVAL_SUITE_DIR = tmp_path
    return tmp_path


def test_registering_a_model_asks_for_its_report(db, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(queues, "send", lambda task, job_id: sent.append((task, job_id)))
    with django_capture_on_commit_callbacks(execute=True):
        version = register_model(STUDENT)
    assert sent == [(queues.EVALUATE, version.pk)]


def test_the_shipped_student_is_reported_below_the_default_and_the_gate_refuses_it(db, suite, staff_client):
    active = active_model()
    assert tasks.write_report(active.pk) == "evaluated"
    student = register_model(STUDENT)
    assert tasks.write_report(student.pk) == "evaluated"
    active.refresh_from_db()
    student.refresh_from_db()
    assert set(active.report["suite"]) == set(student.report["suite"]) == {"clean", "rough"}
    assert active.report["suite"]["clean"] >= 90 and active.report["ms_per_line"] > 0
    assert min(active.report["suite"][s] - student.report["suite"][s] for s in LINES) > 0.3
    refused = staff_client.post(f"/ocr/v1/models/{student.pk}/promote", {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_failed"
    assert ModelVersion.objects.get(is_active=True) == active
    forced = staff_client.post(f"/ocr/v1/models/{student.pk}/promote", {"override_reason": "a test"}, format="json")
    assert forced.status_code == 200 and ModelVersion.objects.get(is_active=True) == student
    # the audit log shows both: the refusal and the override, each with the comparison
    log = list(PromotionEvent.objects.order_by("pk").values_list("action", "overridden", "reason"))
    assert log == [("refused", False, ""), ("promote", True, "a test")]
    assert all(e.gate["shortfalls"] for e in PromotionEvent.objects.all())


def test_without_a_suite_the_report_says_so_and_the_gate_refuses(db, tmp_path, settings):
    settings.OCR_EVAL_SUITE_DIR = tmp_path / "none"
    student = register_model(STUDENT)
    assert tasks.write_report(student.pk) == "no_suite"
    student.refresh_from_db()
    assert "no suite" in student.report["error"]
    from ocr_api.reports import gate

    assert gate(student, active_model()).passes is False


def test_the_report_scores_each_dataset_on_its_held_back_lines_and_the_gate_reads_them(
    db, suite, tmp_path, make_user, monkeypatch
):
    from distill.data import held_back
    from ocr_api.models import Dataset
    from ocr_api.reports import gate

    folder = rendered_lines(tmp_path / "receipts", [f"金额合计{i}元" for i in range(30)])
    assert any(held_back(f"{i}.png") for i in range(30))
    dataset = Dataset.objects.create(
        name="receipts", source=Dataset.Source.UPLOAD, path=str(folder), lines=30, created_by=make_user("owner")
    )
    monkeypatch.setattr(queues, "send", lambda task, job_id: None)
    active = active_model()
    tasks.write_report(active.pk)
    active.refresh_from_db()
    key = f"dataset {dataset.pk}: receipts"
    assert active.report["datasets"][key] >= 80
    candidate = register_model(STUDENT)
    candidate.report = {"suite": dict(active.report["suite"]), "datasets": {key: active.report["datasets"][key] - 5}}
    assert [s["subset"] for s in gate(candidate, active).shortfalls] == [key]


def test_the_report_reads_the_page_suite_and_the_gate_compares_its_pages(db, suite, tmp_path, settings):
    import json

    from ocr_api.reports import gate

    pages = tmp_path / "pages"
    pages.mkdir()
    truth = ["购买方名称上海明远科技", "开票日期二零二六年九月"]
    (pages / "p0.png").write_bytes(png_bytes(render_lines(truth)))
    page = {"image": "p0.png", "layout": "letter", "kind": "scan", "lines": truth}
    (pages / "pages.jsonl").write_text(json.dumps(page, ensure_ascii=False) + "\n", encoding="utf-8")
    settings.OCR_EVAL_PAGES_DIR = pages
    active = active_model()
    assert tasks.write_report(active.pk) == "evaluated"
    active.refresh_from_db()
    read = active.report["pages"]
    assert read["pages"] == 1 and read["in_order"]["letter"] == read["in_order"]["all"] >= 80
    assert read["s_per_page_p50"] > 0
    # a candidate as good on every line subset but worse on pages is refused on "pages"
    candidate = register_model(STUDENT)
    candidate.report = {**active.report, "pages": {"in_order": {"all": read["in_order"]["all"] - 1}}}
    candidate.save(update_fields=["report"])
    result = gate(candidate, active)
    assert result.passes is False and [s["subset"] for s in result.shortfalls] == ["pages"]
