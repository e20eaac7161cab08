"""The model lifecycle with a real training worker and a real OCR worker."""

import threading
import time
from pathlib import Path

import pytest

from ocr_api.models import DistillJob, ModelVersion
from tests.api.test_lifecycle_api import _copy_model
from tests.conftest import b64

pytestmark = [pytest.mark.integration]


@pytest.fixture
def staff(make_user, api_client_for):
    return api_client_for(make_user("admin", is_staff=True))


@pytest.fixture
def training_worker(worker_factory):
    return worker_factory(queue="training", pool="prefork", concurrency=1, wait=False)


def wait_for(job_id: int, statuses: set[str], timeout: float, worker) -> DistillJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = DistillJob.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(
        f"job {job_id} still {job.status} after {timeout}s: {job.error_message}\n{worker.log()[-3000:]}"
    )


def test_a_tiny_teacher_then_distillation_run_end_to_end_and_register_models(staff, training_worker):
    tiny = {"steps": 3, "batch_size": 4}
    teacher = staff.post("/ocr/v1/distill-jobs", {"kind": "teacher", "params": tiny}, format="json")
    assert teacher.status_code == 201, teacher.content
    done = wait_for(teacher.json()["id"], {"succeeded", "failed"}, 240, training_worker)
    assert done.status == "succeeded", done.error_message
    assert done.progress["step"] == 3 and "ctc" in done.progress["losses"]
    teacher_model = done.result_model
    assert teacher_model.kind == "teacher" and len(teacher_model.sha256) == 64
    assert teacher_model.params and teacher_model.params > 1_000_000
    assert 0.0 <= teacher_model.metrics["char_accuracy"] <= 1.0
    assert Path(teacher_model.file_path).exists() and Path(done.checkpoint_path).exists()

    student = staff.post(
        "/ocr/v1/distill-jobs",
        {"kind": "distill", "params": {**tiny, "teacher": done.pk, "alpha": 0.6, "temperature": 2.0}},
        format="json",
    )
    assert student.status_code == 201, student.content
    finished = wait_for(student.json()["id"], {"succeeded", "failed"}, 240, training_worker)
    assert finished.status == "succeeded", finished.error_message
    assert {"kd", "ctc"} <= set(finished.progress["losses"])
    model = finished.result_model
    assert model.kind == "student" and model.lineage["teacher"] == done.pk
    assert model.lineage["params"]["alpha"] == 0.6 and model.parent is not None
    curves = staff.get(f"/ocr/v1/distill-jobs/{finished.pk}/curves.png")
    assert curves.status_code == 200 and curves.content[:8] == b"\x89PNG\r\n\x1a\n"
    listed = staff.get("/ocr/v1/models").json()["results"]
    assert {m["id"] for m in listed} >= {teacher_model.pk, model.pk}


def test_a_warm_started_distillation_job_refines_the_served_recogniser_end_to_end(staff, training_worker):
    # every term of the seed's loss, on (the default recipe is CTC alone)
    params = {"warm_start": True, "steps": 2, "batch_size": 2, "cache_lines": 8, "kd_weight": 1, "feat_weight": 0.1}
    response = staff.post("/ocr/v1/distill-jobs", {"kind": "distill", "params": params}, format="json")
    assert response.status_code == 201, response.content
    finished = wait_for(response.json()["id"], {"succeeded", "failed"}, 300, training_worker)
    assert finished.status == "succeeded", finished.error_message
    assert finished.progress["step"] == 2 and {"ctc", "kd", "feat"} <= set(finished.progress["losses"])
    # warm-started from PP-OCRv6 tiny, two small steps later it still reads the dev lines
    assert finished.progress["dev_char_accuracy"] > 0.8
    model = finished.result_model
    assert model.kind == "student" and model.lineage["params"]["warm_start"] is True
    assert model.lineage["params"]["teacher"] == "ppocrv6-small" and model.metrics["char_accuracy"] > 0.8
    assert model.params == 1_104_494 and Path(model.file_path).exists()


def test_a_running_job_can_be_cancelled(staff, training_worker):
    job_id = staff.post(
        "/ocr/v1/distill-jobs", {"kind": "teacher", "params": {"steps": 100000, "batch_size": 4}}, format="json"
    ).json()["id"]
    wait_for(job_id, {"running"}, 120, training_worker)
    deadline = time.monotonic() + 120
    while DistillJob.objects.get(pk=job_id).progress.get("step", 0) < 1:
        assert time.monotonic() < deadline, training_worker.log()[-3000:]
        time.sleep(0.5)
    assert staff.post(f"/ocr/v1/distill-jobs/{job_id}/cancel").status_code == 202
    job = wait_for(job_id, {"cancelled", "failed", "succeeded"}, 90, training_worker)
    assert job.status == "cancelled" and job.result_model is None


def test_a_running_ocr_worker_switches_to_a_promoted_model_without_failing_requests(
    staff, make_user, api_client_for, worker_factory, tmp_path, invoice_png
):
    from ocr_api.registry import active_model, register_model
    from tests.conftest import png_bytes, render_lines

    worker_factory(OCR_MODEL_POLL_S="0.5")
    client = api_client_for(make_user("crm"))
    old = active_model()
    candidate = register_model(_copy_model(tmp_path, "candidate"))
    # the same weights read the same: equal reports let the gate through
    ModelVersion.objects.filter(pk__in=[old.pk, candidate.pk]).update(report={"suite": {"photo": 94.0}})
    failures: list = []
    labels: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        from django.db import connection

        i = 0
        while not stop.is_set():
            i += 1
            image = png_bytes(render_lines([f"发票号码 {i:05d}"]))
            response = client.post("/ocr/v1/recognize", {"image_base64": b64(image)}, format="json")
            if response.status_code != 200:
                failures.append(response.content)
            else:
                labels.append(response.json()["model_version"])
        connection.close()

    thread = threading.Thread(target=traffic)
    thread.start()
    time.sleep(1.5)
    assert staff.post(f"/ocr/v1/models/{candidate.pk}/promote").status_code == 200
    deadline = time.monotonic() + 15
    while not labels or labels[-1] != candidate.label:
        assert time.monotonic() < deadline, f"worker still on {labels[-1:]}"
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    thread.join(timeout=60)
    assert not failures
    assert labels[0] == old.label and labels[-1] == candidate.label
    # The cache is keyed by model: the same bytes under the new model are recognised again.
    body = client.post("/ocr/v1/recognize", {"image_base64": b64(invoice_png)}, format="json").json()
    assert body["model_version"] == candidate.label and body["cached"] is False
    assert ModelVersion.objects.get(is_active=True) == candidate


def test_a_crashing_trainer_ends_as_failed_with_its_error(staff, training_worker, make_user):
    from ocr_api.training import run_dir

    broken = DistillJob.objects.create(
        kind="teacher", status="succeeded", params={}, created_by=make_user("root", is_staff=True)
    )
    run_dir(broken).mkdir(parents=True, exist_ok=True)
    (run_dir(broken) / "last.pt").write_bytes(b"this is not a checkpoint")
    job_id = staff.post(
        "/ocr/v1/distill-jobs",
        {"kind": "distill", "params": {"steps": 3, "batch_size": 4, "teacher": broken.pk}},
        format="json",
    ).json()["id"]
    job = wait_for(job_id, {"succeeded", "failed", "cancelled"}, 180, training_worker)
    assert job.status == "failed"
    assert "exited with code" in job.error_message and job.log_tail
    assert job.finished_at is not None and job.result_model is None


def test_a_job_trains_on_an_uploaded_dataset(staff, training_worker):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.api.test_lifecycle_api import _zip
    from tests.conftest import png_bytes, render_lines

    entries = {"labels.tsv": "a.png\t上海明远科技\nb.png\t发票 2026\n".encode()}
    entries["a.png"] = png_bytes(render_lines(["上海明远科技"]))
    entries["b.png"] = png_bytes(render_lines(["发票 2026"]))
    uploaded = staff.post("/ocr/v1/datasets", {"file": SimpleUploadedFile("d.zip", _zip(entries))}, format="multipart")
    assert uploaded.status_code == 201, uploaded.content
    params = {"steps": 2, "batch_size": 4, "data_source": "dataset", "dataset": uploaded.json()["id"]}
    job_id = staff.post("/ocr/v1/distill-jobs", {"kind": "teacher", "params": params}, format="json").json()["id"]
    job = wait_for(job_id, {"succeeded", "failed", "cancelled"}, 240, training_worker)
    assert job.status == "succeeded", job.error_message
    assert job.result_model.lineage["data_source"] == "dataset"
    command = (Path(job.checkpoint_path).parent / "train.log").read_text().splitlines()[0]
    assert "--train-data" in command


def test_a_registered_model_gets_its_report_from_the_training_worker(staff, worker_factory, tmp_path):
    """Registration (and POST .../evaluate) queue the report by name; a real training worker
    writes it from a real `distill evaluate` run on the suite it is configured with."""
    from ocr_api.registry import active_model
    from tests.api.test_model_reports import rendered_lines

    folder = rendered_lines(tmp_path / "suite" / "clean", ["开票日期二零二六"])
    worker_factory(queue="training", pool="prefork", concurrency=1, wait=False, OCR_EVAL_SUITE_DIR=str(folder.parent))
    version = active_model()
    assert staff.post(f"/ocr/v1/models/{version.pk}/evaluate").status_code == 202
    deadline = time.monotonic() + 120
    while not ModelVersion.objects.get(pk=version.pk).report.get("suite"):
        assert time.monotonic() < deadline, "no report after 120 s"
        time.sleep(0.5)
    report = staff.get(f"/ocr/v1/models/{version.pk}/report").json()
    assert report["candidate"]["report"]["suite"] == {"clean": 100.0} and report["passes"] is True


def _wait_for_report(version_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while not ModelVersion.objects.get(pk=version_id).report.get("suite"):
        assert time.monotonic() < deadline, f"model {version_id} has no report after {timeout} s"
        time.sleep(0.5)
    return ModelVersion.objects.get(pk=version_id).report


def test_corrections_adapt_the_served_model_which_passes_the_gate_and_is_served(
    staff, make_user, api_client_for, worker_factory, tmp_path
):
    """correction -> dataset -> adaptation job -> report -> gate -> promotion -> served."""
    from ocr_api.images import store
    from ocr_api.models import OcrJob
    from ocr_api.registry import active_model
    from tests.api.test_model_reports import rendered_lines
    from tests.conftest import png_bytes, render_lines

    suite = rendered_lines(tmp_path / "suite" / "clean", ["开票日期二零二六"])
    trainer = worker_factory(
        queue="training", pool="prefork", concurrency=1, wait=False, OCR_EVAL_SUITE_DIR=str(suite.parent)
    )
    worker_factory(OCR_MODEL_POLL_S="0.5")
    clerk = make_user("clerk")
    texts = ["上海明远科技有限公司", "发票号码 20260917", "开票日期：2026年09月17日", "合计金额 ¥1,280.00"]
    for k, text in enumerate(texts):
        image = png_bytes(render_lines([text]))
        job = OcrJob.objects.create(
            owner=clerk,
            status="succeeded",
            image_name=store(image, "PNG"),
            image_sha256=f"{k:064d}",
            image_format="PNG",
            width=400,
            height=60,
            size_bytes=len(image),
            cache_key=f"k{k}",
            lines=[{"text": text[:-1] + "?", "confidence": 0.6, "box": [0, 0, 400, 60]}],
            text_content=text[:-1] + "?",
        )
        corrected = api_client_for(clerk).put(
            f"/ocr/v1/jobs/{job.pk}/lines/0/correction", {"text": text}, format="json"
        )
        assert corrected.status_code == 200, corrected.content
    served = active_model()
    assert staff.post(f"/ocr/v1/models/{served.pk}/evaluate").status_code == 202
    _wait_for_report(served.pk)

    params = {"data_source": "corrections", "steps": 2, "batch_size": 2, "replay_lines": 8, "general_lines": 8}
    response = staff.post("/ocr/v1/distill-jobs", {"kind": "adapt", "params": params}, format="json")
    assert response.status_code == 201, response.content
    finished = wait_for(response.json()["id"], {"succeeded", "failed"}, 300, trainer)
    assert finished.status == "succeeded", finished.error_message
    model = finished.result_model
    adaptation = model.lineage["adaptation"]
    assert model.name == f"adapted-job{finished.pk}" and model.parent == served
    assert finished.params["student_file"] == served.file_path and adaptation["lines"] >= 1
    assert adaptation["left_out_counts"] == {"unproducible": 0, "too_long": 0, "duplicate": 0, "unreadable": 0}
    assert finished.progress["step"] == 2 and "ctc" in finished.progress["losses"]

    report = _wait_for_report(model.pk)
    assert set(report["suite"]) == {"clean"}
    compared = staff.get(f"/ocr/v1/models/{model.pk}/report").json()
    assert compared["active"]["id"] == served.pk and compared["passes"] is True, compared
    assert staff.post(f"/ocr/v1/models/{model.pk}/promote").status_code == 200
    client = api_client_for(clerk)
    deadline = time.monotonic() + 30
    while True:
        image = png_bytes(render_lines([f"发票号码 {int(deadline * 1000) % 100000:05d}"]))
        body = client.post("/ocr/v1/recognize", {"image_base64": b64(image)}, format="json").json()
        if body["model_version"] == model.label:
            break
        assert time.monotonic() < deadline, f"still served by {body['model_version']}"
        time.sleep(0.5)
