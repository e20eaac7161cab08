"""Staff-only lifecycle endpoints, parameter checks, datasets, corrections, promotion and rollback."""

import io
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from ocr_api.models import Dataset, DistillJob, LineCorrection, ModelVersion, OcrJob, PromotionEvent
from ocr_api.registry import active_model, promote, register_model
from tests.conftest import png_bytes, render_lines

pytestmark = pytest.mark.django_db
REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference" / "ppocrv4_mobile_rec.onnx"


@pytest.fixture
def staff(make_user, api_client_for):
    return api_client_for(make_user("admin", is_staff=True))


@pytest.fixture
def member(make_user, api_client_for):
    return api_client_for(make_user("clerk"))


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/ocr/v1/distill-jobs"),
        ("post", "/ocr/v1/distill-jobs"),
        ("get", "/ocr/v1/distill-jobs/1"),
        ("post", "/ocr/v1/distill-jobs/1/cancel"),
        ("get", "/ocr/v1/models"),
        ("post", "/ocr/v1/models/1/promote"),
        ("post", "/ocr/v1/models/rollback"),
        ("get", "/ocr/v1/datasets"),
        ("post", "/ocr/v1/datasets"),
    ],
)
def test_non_staff_are_refused_with_403(member, method, url):
    response = getattr(member, method)(url, {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(
    "params,message",
    [
        ({"steps": 0}, "steps"),
        ({"alpha": 1.5}, "alpha"),
        ({"temperature": "hot"}, "temperature"),
        ({"kd_top_k": -1}, "kd_top_k"),
        ({"teacher": 99999}, "teacher"),
        ({"bogus": 1}, "unknown parameters"),
        ({"data_source": "dataset", "dataset": 12345}, "dataset"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_queued(staff, params, message):
    response = staff.post("/ocr/v1/distill-jobs", {"kind": "distill", "params": params}, format="json")
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert not DistillJob.objects.exists()


def test_a_distillation_job_defaults_to_the_reference_teacher_and_top_k_kd(staff, settings, monkeypatch):
    from ocr_api import queues
    from ocr_api.training import train_command

    monkeypatch.setattr(queues, "send", lambda task, job_id: None)

    response = staff.post("/ocr/v1/distill-jobs", {"kind": "distill", "params": {"steps": 5}}, format="json")
    assert response.status_code == 201, response.content
    job = DistillJob.objects.get(pk=response.json()["id"])
    assert job.params["teacher"] == "reference" and job.params["kd_top_k"] == 8
    cmd = train_command(job, None)
    reference = settings.OCR_MODELS_DIR / "reference" / "ppocrv6_tiny_rec.onnx"  # the served reference
    assert cmd[cmd.index("--teacher-onnx") + 1] == str(reference)
    assert cmd[cmd.index("--kd-top-k") + 1] == "8"
    job.params["teacher"] = "ppocrv4-mobile"  # another reference, by name
    cmd = train_command(job, None)
    assert cmd[cmd.index("--teacher-onnx") + 1] == str(
        settings.OCR_MODELS_DIR / "reference" / "ppocrv4_mobile_rec.onnx"
    )


def test_a_warm_started_job_refines_the_served_recogniser_with_the_small_teacher(staff, settings, monkeypatch):
    from ocr_api import queues
    from ocr_api.training import train_command

    monkeypatch.setattr(queues, "send", lambda task, job_id: None)
    response = staff.post(
        "/ocr/v1/distill-jobs", {"kind": "distill", "params": {"warm_start": True, "steps": 50}}, format="json"
    )
    assert response.status_code == 201, response.content
    job = DistillJob.objects.get(pk=response.json()["id"])
    assert job.params["student"] == "ppocrv6-tiny" and job.params["teacher"] == "ppocrv6-small"
    assert job.params["lr"] == 3e-5 and job.params["cache_lines"] == 2000
    cmd = train_command(job, None, Path("/dev-set"))
    assert cmd[cmd.index("-m") + 2] == "warm-distill"
    assert cmd[cmd.index("--student") + 1] == str(settings.OCR_MODELS_DIR / "reference" / "ppocrv6_tiny_rec.onnx")
    assert cmd[cmd.index("--teacher") + 1] == str(settings.OCR_MODELS_DIR / "reference" / "ppocrv6_small_rec.onnx")
    assert cmd[cmd.index("--steps") + 1] == "50" and cmd[cmd.index("--dev-data") + 1] == "/dev-set"
    # the shipped student's recipe by default: CTC only, halfway back to the start, blank lowered by 1
    recipe = {k: float(cmd[cmd.index(k) + 1]) for k in ("--ctc-weight", "--kd-weight", "--feat-weight")}
    assert recipe == {"--ctc-weight": 1.0, "--kd-weight": 0.0, "--feat-weight": 0.0}
    assert (cmd[cmd.index("--interpolate") + 1], cmd[cmd.index("--blank-offset") + 1]) == ("0.5", "1.0")


def test_a_warm_started_job_takes_the_teachers_terms_from_its_parameters(staff, monkeypatch):
    from ocr_api import queues
    from ocr_api.training import train_command

    monkeypatch.setattr(queues, "send", lambda task, job_id: None)
    params = {"warm_start": True, "kd_weight": 1, "feat_weight": 0.1, "interpolate": 1, "blank_offset": 0}
    response = staff.post("/ocr/v1/distill-jobs", {"kind": "distill", "params": params}, format="json")
    assert response.status_code == 201, response.content
    cmd = train_command(DistillJob.objects.get(pk=response.json()["id"]), None)
    assert [
        float(cmd[cmd.index(k) + 1]) for k in ("--kd-weight", "--feat-weight", "--interpolate", "--blank-offset")
    ] == [1.0, 0.1, 1.0, 0.0]


@pytest.mark.parametrize(
    "kind,params,message",
    [
        ("teacher", {"warm_start": True}, "distillation job"),
        ("distill", {"warm_start": True, "alpha": 0.5}, "not parameters of a warm-started job: alpha"),
        ("distill", {"warm_start": True, "student": "mine"}, "student must be one of"),
        ("distill", {"warm_start": True, "cache_lines": 2}, "cache_lines must lie in"),
        ("distill", {"warm_start": True, "interpolate": 1.5}, "interpolate must lie in"),
        ("distill", {"warm_start": True, "data_source": "corrections"}, "data_source must be synthetic"),
        ("distill", {"cache_lines": 100}, "warm_start: true"),
    ],
)
def test_bad_warm_start_parameters_are_refused(staff, kind, params, message):
    response = staff.post("/ocr/v1/distill-jobs", {"kind": kind, "params": params}, format="json")
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert not DistillJob.objects.exists()


def test_an_adaptation_job_adapts_the_active_model_to_a_dataset(staff, monkeypatch, tmp_path):
    from django.conf import settings

    from ocr_api import queues
    from ocr_api.tasks import _training_data
    from ocr_api.training import train_command

    monkeypatch.setattr(queues, "send", lambda task, job_id: None)
    owner = DistillJob._meta.get_field("created_by").related_model.objects.get(username="admin")
    dataset = Dataset.objects.create(name="d", source="upload", path=str(tmp_path), lines=3, created_by=owner)
    params = {
        "data_source": "dataset",
        "dataset": dataset.pk,
        "steps": 40,
        "patience": 2,
        "join": 0.5,
        "dataset_kd": 0.5,
        "mix": 0.25,
        "noise_band": 1.5,
    }
    response = staff.post("/ocr/v1/distill-jobs", {"kind": "adapt", "params": params}, format="json")
    assert response.status_code == 201, response.content
    job = DistillJob.objects.get(pk=response.json()["id"])
    assert job.params["student"] == "active" and job.params["lr"] == 2e-4 and job.params["replay_lines"] == 2000
    # the package served when the job starts is the one adapted, and the job remembers which
    assert _training_data(job) == tmp_path
    assert job.params["student_file"] == active_model().file_path
    cmd = train_command(job, tmp_path)
    assert cmd[cmd.index("-m") + 2] == "adapt" and cmd[cmd.index("--dataset") + 1] == str(tmp_path)
    assert cmd[cmd.index("--student") + 1] == active_model().file_path
    assert cmd[cmd.index("--teacher") + 1] == str(settings.OCR_MODELS_DIR / "reference" / "ppocrv6_small_rec.onnx")
    assert (cmd[cmd.index("--steps") + 1], cmd[cmd.index("--patience") + 1]) == ("40", "2")
    assert cmd[cmd.index("--replay-root") + 1].endswith("replay")
    assert cmd[cmd.index("--guard-margin") + 1] == "0.05"  # guarded by the start unless told otherwise
    assert (cmd[cmd.index("--augment") + 1], cmd[cmd.index("--join") + 1]) == ("0.5", "0.5")
    assert cmd[cmd.index("--dataset-kd") + 1] == "0.5"
    assert cmd[cmd.index("--mix") + 1] == "0.25" and cmd[cmd.index("--noise-band") + 1] == "1.5"


@pytest.mark.parametrize(
    "params,message",
    [
        ({"data_source": "synthetic"}, "data_source must be dataset or corrections"),
        ({"data_source": "dataset", "dataset": 999}, "needs the id of a dataset"),
        ({"student": "mine"}, "student must be 'active' or one of"),
        ({"teacher": "mine"}, "teacher must be one of"),
        ({"domain_share": 0}, "domain_share must lie in"),
        ({"alpha": 0.5}, "not parameters of an adaptation job: alpha"),
        ({"anchor": "nothing"}, "anchor must be start"),
        ({"guard_margin": 2}, "guard_margin must lie in"),
        ({"join": 1.5}, "join must lie in"),
        ({"dataset_kd": -1}, "dataset_kd must lie in"),
        ({"mix": 1.5}, "mix must lie in"),
        ({"noise_band": -1}, "noise_band must lie in"),
    ],
)
def test_bad_adaptation_parameters_are_refused(staff, params, message):
    response = staff.post("/ocr/v1/distill-jobs", {"kind": "adapt", "params": params}, format="json")
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert not DistillJob.objects.exists()


def test_cancelling_a_queued_job_ends_it_at_once(staff, make_user):
    job = DistillJob.objects.create(kind="teacher", params={"steps": 5}, created_by=make_user("x", is_staff=True))
    response = staff.post(f"/ocr/v1/distill-jobs/{job.pk}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert staff.post(f"/ocr/v1/distill-jobs/{job.pk}/cancel").status_code == 409


def test_a_job_whose_worker_died_ends_as_failed(staff, make_user):
    job = DistillJob.objects.create(
        kind="teacher",
        params={"steps": 5},
        created_by=make_user("x", is_staff=True),
        status="running",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    body = staff.get(f"/ocr/v1/distill-jobs/{job.pk}").json()
    assert body["status"] == "failed" and "heartbeat" in body["error_message"]


def _copy_model(tmp_path: Path, name: str) -> Path:
    """A second, distinct file with the same contract (different bytes, so a different sha256)."""
    import onnx

    model = onnx.load(str(REFERENCE))
    for prop in model.metadata_props:
        if prop.key == "ocr.name":
            prop.value = name
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def test_promote_and_roll_back(staff, tmp_path):
    first = active_model()
    assert first.params and first.params > 1_000_000  # read from the file's metadata, no metrics needed
    second = register_model(_copy_model(tmp_path, "candidate"))
    ModelVersion.objects.update(report={"suite": {"clean": 99.0, "photo": 94.0}})  # the same weights
    listed = staff.get("/ocr/v1/models").json()
    assert {m["id"] for m in listed["results"]} == {first.pk, second.pk}
    promoted = staff.post(f"/ocr/v1/models/{second.pk}/promote").json()
    assert promoted["is_active"] is True and promoted["label"].startswith("candidate@")
    assert ModelVersion.objects.get(is_active=True) == second
    rolled = staff.post("/ocr/v1/models/rollback").json()
    assert rolled["id"] == first.pk
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    log = list(PromotionEvent.objects.order_by("created_at").values_list("action", "version", "previous", "user"))
    staff_user = ModelVersion._meta.apps.get_model("auth", "User").objects.get(username="admin")
    assert log == [("promote", second.pk, first.pk, staff_user.pk), ("rollback", first.pk, second.pk, staff_user.pk)]


def _with_report(path, **suite) -> ModelVersion:
    version = register_model(path)
    version.report = {"suite": suite}
    version.save(update_fields=["report"])
    return version


def test_the_gate_refuses_a_worse_model_until_staff_override_it_with_a_reason(staff, tmp_path):
    active = active_model()
    active.report = {"suite": {"clean": 99.02, "photo": 94.56}}
    active.save(update_fields=["report"])
    worse = _with_report(_copy_model(tmp_path, "worse"), clean=99.10, photo=40.4)
    report = staff.get(f"/ocr/v1/models/{worse.pk}/report").json()
    assert report["passes"] is False and report["active"]["id"] == active.pk
    assert report["comparison"]["photo"] == {"candidate": 40.4, "active": 94.56, "delta": -54.16}
    refused = staff.post(f"/ocr/v1/models/{worse.pk}/promote", {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_failed"
    assert "photo -54.16" in refused.json()["error"]["message"]
    assert [s["subset"] for s in refused.json()["gate"]["shortfalls"]] == ["photo"]
    # the refusal is in the audit log, and nothing changed
    refusal = PromotionEvent.objects.get()
    assert (refusal.action, refusal.version, refusal.previous) == ("refused", worse, active)
    assert refusal.gate["shortfalls"][0]["subset"] == "photo"
    assert ModelVersion.objects.get(is_active=True) == active
    forced = staff.post(f"/ocr/v1/models/{worse.pk}/promote", {"override_reason": "customer asked"}, format="json")
    assert forced.status_code == 200 and ModelVersion.objects.get(is_active=True) == worse
    event = PromotionEvent.objects.exclude(pk=refusal.pk).get()
    assert (event.action, event.overridden, event.reason, event.previous) == ("promote", True, "customer asked", active)
    assert event.gate["shortfalls"][0]["subset"] == "photo"


@pytest.mark.parametrize(
    "suite, passes",
    [
        ({"clean": 98.8, "photo": 94.4}, True),
        ({"clean": 98.6, "photo": 95.0}, False),
        ({}, False),
        ({"kai": 99.0}, False),
    ],
)
def test_the_gate_allows_the_margin_and_refuses_a_candidate_it_cannot_compare(tmp_path, settings, suite, passes):
    from ocr_api.reports import gate

    settings.OCR_PROMOTION_MARGIN = 0.3
    active = _with_report(_copy_model(tmp_path, "active"), clean=99.0, photo=94.6)
    candidate = _with_report(_copy_model(tmp_path, "candidate"), **suite)
    assert gate(candidate, active).passes is passes


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _upload(client, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/ocr/v1/datasets", {"file": SimpleUploadedFile("d.zip", data)}, format="multipart")


def test_a_valid_dataset_zip_is_accepted(staff):
    line = png_bytes(render_lines(["上海明远科技"]))
    data = _zip(
        {"set/labels.tsv": "a.png\t上海明远科技\nb.png\tABC 123\n".encode(), "set/a.png": line, "set/b.png": line}
    )
    response = _upload(staff, data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lines"] == 2 and body["source"] == "upload"
    folder = Path(Dataset.objects.get(pk=body["id"]).path)
    assert len((folder / "labels.tsv").read_text(encoding="utf-8").splitlines()) == 2
    shutil.rmtree(folder)


def test_an_uploaded_dataset_reports_its_duplicates_and_the_lines_the_served_model_cannot_produce(staff):
    line, other = png_bytes(render_lines(["上海明远科技"])), png_bytes(render_lines(["发票 2026"]))
    labels = "a.png\t上海明远科技\nb.png\t上海明远科技\nc.png\t发票 2026\nd.png\t𠀋发票\n"
    data = _zip({"labels.tsv": labels.encode(), "a.png": line, "b.png": line, "c.png": other, "d.png": other})
    response = _upload(staff, data)
    assert response.status_code == 201, response.content
    body = response.json()
    # b.png is a.png again with the same text: left out and said so; d.png is kept (a model with
    # more classes can learn it) and named with the character the served model lacks
    assert body["lines"] == 3
    assert body["report"]["duplicates"] == [{"line": "b.png", "same_as": "a.png"}]
    assert body["report"]["unproducible"] == [{"line": "d.png", "text": "𠀋发票", "characters": "𠀋"}]
    shutil.rmtree(Dataset.objects.get(pk=body["id"]).path)


def _finished_job(owner, texts: list[str], image_name: str | None = "stored") -> OcrJob:
    from ocr_api.images import store

    image = png_bytes(render_lines(texts))
    height = 60 * len(texts)
    return OcrJob.objects.create(
        owner=owner,
        status="succeeded",
        image_name=store(image, "PNG") if image_name else "",
        image_sha256="1" * 64,
        image_format="PNG",
        width=400,
        height=height,
        size_bytes=len(image),
        cache_key="k",
        lines=[{"text": t, "confidence": 0.9, "box": [0, 60 * k, 400, 60 * (k + 1)]} for k, t in enumerate(texts)],
        text_content="\n".join(texts),
    )


def test_staff_make_a_dataset_of_lines_they_choose_from_finished_jobs(staff, member, make_user):
    import uuid

    clerk = OcrJob._meta.get_field("owner").related_model.objects.get(username="clerk")
    job = _finished_job(clerk, ["上海明远科技有限公司", "发票号码 20260917"])
    gone = _finished_job(clerk, ["开票日期"], image_name=None)
    picks = [
        {"job": str(job.pk), "line": 1},
        {"job": str(job.pk), "line": 0},
        {"job": str(job.pk), "line": 1},
        {"job": str(job.pk), "line": 5},
        {"job": str(gone.pk), "line": 0},
        {"job": str(uuid.uuid4()), "line": 0},
    ]
    assert member.post("/ocr/v1/datasets/from-jobs", {"lines": picks}, format="json").status_code == 403
    response = staff.post("/ocr/v1/datasets/from-jobs", {"name": "invoices", "lines": picks}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["source"], body["lines"]) == ("invoices", "jobs", 2)
    folder = Path(Dataset.objects.get(pk=body["id"]).path)
    labels = [row.split("\t") for row in (folder / "labels.tsv").read_text(encoding="utf-8").splitlines()]
    assert [text for _, text in labels] == ["发票号码 20260917", "上海明远科技有限公司"]
    assert all((folder / rel).is_file() for rel, _ in labels)
    report = body["report"]
    assert report["duplicates"] == [{"job": str(job.pk), "line": 1, "same_as": labels[0][0]}]
    assert {(r["line"], r["why"]) for r in report["skipped"]} == {
        (5, "the job has 2 lines"),
        (0, "the job's image was deleted"),
        (0, "no finished job with this id"),
    }
    bad = staff.post("/ocr/v1/datasets/from-jobs", {"lines": [{"job": "x", "line": 0}]}, format="json")
    assert bad.status_code == 400 and "job id and a line index" in bad.json()["error"]["message"]
    nothing = staff.post("/ocr/v1/datasets/from-jobs", {"lines": [picks[-1]]}, format="json")
    assert nothing.status_code == 400 and "none of the lines could be used" in nothing.json()["error"]["message"]
    assert Dataset.objects.count() == 1
    shutil.rmtree(folder)


@pytest.mark.parametrize(
    "entries,message",
    [
        ({"labels.tsv": b"a.png\tx\n"}, "not in the zip"),
        ({"a.png": b"x"}, "exactly one labels.tsv"),
        ({"labels.tsv": b"a.png\tx\n", "a.png": b"not a png"}, "not an image"),
        ({"labels.tsv": b"../evil.png\tx\n"}, "leaves the dataset folder"),
        ({"labels.tsv": b"a.png no tab\n"}, "path<TAB>text"),
        ({"labels.tsv": "a.png\tx\n".encode("utf-16")}, "UTF-8"),
    ],
)
def test_a_bad_dataset_gets_a_clear_error(staff, entries, message):
    response = _upload(staff, _zip(entries))
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert not Dataset.objects.exists()


def test_a_file_that_is_not_a_zip_is_refused(staff):
    response = _upload(staff, b"plain text")
    assert response.status_code == 400 and "not a zip" in response.json()["error"]["message"]


def test_users_correct_their_own_lines_and_corrections_become_a_dataset(member, make_user, api_client_for):
    from ocr_api.datasets import corrections_dataset
    from ocr_api.images import store

    owner = OcrJob._meta.get_field("owner").related_model.objects.get(username="clerk")
    image = png_bytes(render_lines(["上海明远科技有限公司"]))
    job = OcrJob.objects.create(
        owner=owner,
        status="succeeded",
        image_name=store(image, "PNG"),
        image_sha256="0" * 64,
        image_format="PNG",
        width=300,
        height=60,
        size_bytes=len(image),
        cache_key="k",
        lines=[
            {
                "text": "上海明远科技有限公同",
                "confidence": 0.7,
                "box": [10, 10, 290, 50],
                "chars": [{"text": c, "confidence": 0.9} for c in "上海明远科技有限公同"],
            }
        ],
        text_content="上海明远科技有限公同",
    )
    url = f"/ocr/v1/jobs/{job.pk}/lines/0/correction"
    other = api_client_for(make_user("stranger"))
    assert other.put(url, {"text": "x"}, format="json").status_code == 404
    assert member.put(url, {"text": "  "}, format="json").status_code == 400
    response = member.put(url, {"text": "上海明远科技有限公司"}, format="json")
    assert response.status_code == 200 and response.json()["original_text"] == "上海明远科技有限公同"
    job.refresh_from_db()
    assert job.lines[0]["text"] == "上海明远科技有限公司" and job.lines[0]["corrected"] is True
    assert "chars" not in job.lines[0]  # they described the recogniser's text, not the corrected one
    assert member.get("/ocr/v1/jobs", {"search": "有限公司"}).json()["count"] == 1
    dataset = corrections_dataset(owner)
    folder = Path(dataset.path)
    rel, text = (folder / "labels.tsv").read_text(encoding="utf-8").strip().split("\t")
    assert text == "上海明远科技有限公司" and (folder / rel).exists()
    assert LineCorrection.objects.count() == 1
    shutil.rmtree(folder)


def test_only_one_model_is_ever_active(tmp_path):
    first = active_model()
    second = register_model(_copy_model(tmp_path, "other"))
    promote(second)
    promote(first)
    assert list(ModelVersion.objects.filter(is_active=True)) == [first]


def test_the_admin_starts_a_job_and_shows_its_progress(
    client, admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    from ocr_api import queues

    sent = []
    monkeypatch.setattr(queues, "send", lambda task, job_id: sent.append((task, job_id)))
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/ocr_api/distilljob/add/", {"kind": "teacher", "params": '{"steps": 5}'})
    assert response.status_code == 302
    job = DistillJob.objects.get()
    assert job.params["steps"] == 5 and job.created_by == admin_user
    assert sent == [(queues.TRAIN, job.pk)]
    job.progress = {"step": 2, "steps": 5, "losses": {"ctc": 3.5}, "dev_char_accuracy": 0.1, "eta_s": 12}
    job.save()
    page = client.get(f"/admin/ocr_api/distilljob/{job.pk}/change/").content.decode()
    assert "step 2/5" in page and "ctc 3.5" in page


def test_the_admin_starts_an_adaptation_and_shows_a_model_beside_the_active_one(
    client, admin_user, monkeypatch, tmp_path, django_capture_on_commit_callbacks
):
    from ocr_api import queues

    monkeypatch.setattr(queues, "send", lambda task, job_id: None)
    client.force_login(admin_user)
    dataset = Dataset.objects.create(name="d", source="jobs", path=str(tmp_path), lines=3, created_by=admin_user)
    params = f'{{"data_source": "dataset", "dataset": {dataset.pk}}}'
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/ocr_api/distilljob/add/", {"kind": "adapt", "params": params})
    assert response.status_code == 302 and DistillJob.objects.get().params["student"] == "active"
    active = _with_report(_copy_model(tmp_path, "active"), clean=99.0, photo=94.6)
    promote(active)
    candidate = _with_report(_copy_model(tmp_path, "candidate"), clean=99.1, photo=93.9)
    page = client.get(f"/admin/ocr_api/modelversion/{candidate.pk}/change/").content.decode()
    assert "refused by the gate" in page and f"active: {active.label}" in page
    assert "<td>photo</td><td>93.90</td><td>94.60</td><td>-0.70</td>" in page


def test_the_default_model_is_the_first_candidate_present(settings, tmp_path):
    from ocr_api.registry import default_model_path

    settings.OCR_DEFAULT_MODEL = ""
    settings.OCR_MODELS_DIR = tmp_path
    (tmp_path / "reference").mkdir()
    student = tmp_path / "student.onnx"
    student.write_bytes(b"x")
    assert default_model_path() == student
    reference = tmp_path / "reference" / "ppocrv4_mobile_rec.onnx"
    reference.write_bytes(b"x")
    assert default_model_path() == reference
    tiny = tmp_path / "reference" / "ppocrv6_tiny_rec.onnx"
    tiny.write_bytes(b"x")
    assert default_model_path() == tiny  # PP-OCRv6 tiny reads the out-of-distribution suite best for its cost
    settings.OCR_DEFAULT_MODEL = str(student)
    assert default_model_path() == student
