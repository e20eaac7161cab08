"""Tasks of the "training" queue: teacher training and distillation jobs started by an admin.

A job runs ``python -m distill`` in a child process and follows it: progress, loss curves and
a heartbeat go to the DistillJob row every few seconds; a cancel request stops the child; on
success the checkpoint is exported, evaluated on the fixed dev set and registered.

Training takes hours, longer than any sensible broker visibility timeout, so these tasks are
acknowledged when they start (not late): a worker that dies leaves a job whose heartbeat
stops, and the next training worker to start (or anyone reading the job) marks it failed
with its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from engine.report import read_metrics

from .datasets import DatasetError, corrections_dataset
from .models import Dataset, DistillJob, ModelVersion
from .queues import EVALUATE, TRAIN
from .registry import active_model, register_model
from .training import curves_png, progress, run_dir, train_command

log = logging.getLogger(__name__)


def dev_set_dir() -> Path:
    return settings.VAR_DIR / "devset"


def ensure_dev_set() -> Path:
    """The fixed dev set every finished job is evaluated on (generated once, held-out fonts and text)."""
    target = dev_set_dir()
    if not (target / "labels.tsv").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "distill",
                "generate",
                "--out",
                str(target),
                "--count",
                str(settings.OCR_DEV_SET_SIZE),
                "--split",
                "dev",
                "--seed",
                "2026",
                "--quiet",
            ],
            check=True,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
        )
    return target


def _training_data(job: DistillJob) -> Path | None:
    if job.kind == DistillJob.Kind.ADAPT and "student_file" not in job.params:
        # the package served now is the one adapted (a resumed job keeps the one it started from)
        from .training import student_package

        job.params = {**job.params, "student_file": str(student_package(job.params))}
        job.save(update_fields=["params"])
    source = job.params.get("data_source", "synthetic")
    if source == "dataset":
        return Path(Dataset.objects.get(pk=job.params["dataset"]).path)
    if source == "corrections":
        dataset = corrections_dataset(job.created_by)
        job.params = {**job.params, "dataset": dataset.pk}
        job.save(update_fields=["params"])
        return Path(dataset.path)
    return None


def _fail(job: DistillJob, message: str) -> None:
    """A running job ends as failed, with its last checkpoint: a conditional update, so a job that
    ended meanwhile (or was reaped twice) keeps its first end, and no other field is overwritten."""
    checkpoint = run_dir(job) / "last.pt"
    fields = {
        "status": DistillJob.Status.FAILED,
        "error_message": message[-4000:],
        "checkpoint_path": str(checkpoint) if checkpoint.exists() else "",
        "finished_at": timezone.now(),
    }
    DistillJob.objects.filter(pk=job.pk, status=DistillJob.Status.RUNNING).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)


def _update_progress(job: DistillJob, started: float, draw: bool) -> None:
    metrics = read_metrics(run_dir(job) / "metrics.jsonl")
    elapsed = time.monotonic() - started
    eta = None
    if metrics.step > 0 and metrics.steps:
        eta = elapsed / metrics.step * max(0, metrics.steps - metrics.step)
    job.progress = progress(metrics, eta)
    job.heartbeat_at = timezone.now()
    fields = ["progress", "heartbeat_at"]
    if draw:
        png = curves_png(metrics)
        if png:
            job.curves_png = png
            fields.append("curves_png")
    job.save(update_fields=fields)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the trainer (it saves a checkpoint), then SIGKILL its group if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _claim(job_id: int) -> bool:
    """Queued and not cancelled -> running (a conditional update: a second delivery does nothing);
    a queued job whose cancel was requested ends as cancelled."""
    claimed = DistillJob.objects.filter(pk=job_id, status=DistillJob.Status.QUEUED, cancel_requested=False).update(
        status=DistillJob.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if claimed != 1:
        DistillJob.objects.filter(pk=job_id, status=DistillJob.Status.QUEUED, cancel_requested=True).update(
            status=DistillJob.Status.CANCELLED, finished_at=timezone.now()
        )
    return claimed == 1


def _start_trainer(
    job: DistillJob, train_data: Path | None, log_path: Path, dev: Path | None = None
) -> subprocess.Popen:
    """The trainer in a session of its own (so it can be stopped as a group), logging to ``log_path``."""
    cmd = train_command(job, train_data, dev)
    log.info("training job %s: %s", job.pk, " ".join(cmd))
    with open(log_path, "ab") as log_file:
        log_file.write(("$ " + " ".join(cmd) + "\n").encode())
        log_file.flush()
        return subprocess.Popen(
            cmd, cwd=settings.BASE_DIR, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def _follow(job: DistillJob, proc: subprocess.Popen) -> bool:
    """Poll the trainer until it exits: progress and heartbeat every poll, curves every 15 s; stop
    it when a cancel is requested. True when it was cancelled."""
    started = time.monotonic()
    last_draw = 0.0
    cancelled = False
    while proc.poll() is None:
        time.sleep(settings.OCR_TRAIN_POLL_S)
        close_old_connections()
        job.refresh_from_db(fields=["cancel_requested"])
        if job.cancel_requested:
            _stop(proc)
            cancelled = True
            break
        draw = time.monotonic() - last_draw > 15
        _update_progress(job, started, draw)
        if draw:
            last_draw = time.monotonic()
    _update_progress(job, started, True)
    return cancelled


def _keep_log_tail(job: DistillJob, log_path: Path, lines: int = 60) -> list[str]:
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    job.log_tail = "\n".join(tail)
    job.save(update_fields=["log_tail"])
    return tail


def _end(job: DistillJob, status: str, checkpoint: Path, version: ModelVersion | None = None) -> str:
    job.status = status
    job.result_model = version
    job.checkpoint_path = str(checkpoint) if checkpoint.exists() else ""
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "result_model", "checkpoint_path", "finished_at"])
    return str(status)


@shared_task(name=TRAIN, acks_late=False, soft_time_limit=None, time_limit=None)
def run_training_job(job_id: int) -> str:
    if not _claim(job_id):
        return "skipped"
    job = DistillJob.objects.get(pk=job_id)
    out_dir = run_dir(job)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        train_data = _training_data(job)
        dev = ensure_dev_set()
    except (DatasetError, subprocess.CalledProcessError, OSError, Dataset.DoesNotExist) as exc:
        detail = getattr(exc, "stderr", "") or ""
        _fail(job, f"could not prepare data: {exc} {detail}".strip())
        return "failed"

    log_path = out_dir / "train.log"
    proc = _start_trainer(job, train_data, log_path, dev)
    cancelled = _follow(job, proc)
    tail = _keep_log_tail(job, log_path)
    checkpoint = out_dir / "last.pt"
    if cancelled:
        return _end(job, DistillJob.Status.CANCELLED, checkpoint)
    if proc.returncode != 0:
        _fail(job, f"the trainer exited with code {proc.returncode}:\n" + "\n".join(tail[-20:]))
        return "failed"
    try:
        version = _export_and_register(job, checkpoint, dev)
    except subprocess.CalledProcessError as exc:
        _fail(job, f"export or evaluation failed: {exc.stderr or exc}")
        return "failed"
    return _end(job, DistillJob.Status.SUCCEEDED, checkpoint, version)


def _export_and_register(job: DistillJob, checkpoint: Path, dev: Path) -> ModelVersion:
    models_dir = settings.VAR_DIR / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    role = {DistillJob.Kind.TEACHER: "teacher", DistillJob.Kind.ADAPT: "adapted"}.get(job.kind, "student")
    name = f"{role}-job{job.pk}"
    onnx_path = models_dir / f"{name}.onnx"
    run = dict(cwd=settings.BASE_DIR, check=True, capture_output=True, text=True)
    adapted = {}
    if job.kind == DistillJob.Kind.ADAPT:  # the best package on the dataset's held-back lines
        shutil.copyfile(checkpoint.parent / "adapted.onnx", onnx_path)
        adapted = json.loads((checkpoint.parent / "adapt.json").read_text())
    elif job.params.get("warm_start"):  # the trainer exported the package itself (distill/warmstart.py)
        shutil.copyfile(checkpoint.parent / "student.onnx", onnx_path)
    else:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "distill",
                "export",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(onnx_path),
                "--name",
                name,
            ],
            **run,
        )
    evaluated = subprocess.run(
        [sys.executable, "-m", "distill", "evaluate", "--data", str(dev), "--model", str(onnx_path)], **run
    )
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    teacher = job.params.get("teacher")
    return register_model(
        onnx_path,
        kind=ModelVersion.Kind.TEACHER if job.kind == DistillJob.Kind.TEACHER else ModelVersion.Kind.STUDENT,
        name=name,
        metrics={**metrics, "dev_set": str(dev)},
        lineage={
            "job": job.pk,
            "kind": job.kind,
            "params": job.params,
            "teacher": teacher,
            "data_source": job.params.get("data_source", "synthetic"),
            "checkpoint": str(checkpoint),
            **({"adaptation": adapted} if adapted else {}),
        },
        parent=active_model(),  # the version it was trained to replace
    )


def reap_stale_jobs() -> int:
    """Running jobs whose heartbeat stopped (their worker died) end as failed, with their checkpoint."""
    cutoff = timezone.now() - timedelta(seconds=settings.OCR_TRAIN_STALE_S)
    stale = DistillJob.objects.filter(status=DistillJob.Status.RUNNING, heartbeat_at__lt=cutoff)
    count = 0
    for job in stale:
        _fail(job, "the training worker stopped while this job ran (no heartbeat)")
        count += 1
    return count


@worker_ready.connect
def _reap_on_start(sender, **kwargs) -> None:
    queues = sender.app.amqp.queues.consume_from or sender.app.amqp.queues
    if "training" in queues:
        reap_stale_jobs()


# --- evaluation reports --------------------------------------------------------------------------
def suite_folders(root: Path | None = None) -> list[Path]:
    """The frozen suite's subsets: the labels.tsv folders under OCR_EVAL_SUITE_DIR, by name."""
    root = Path(root or settings.OCR_EVAL_SUITE_DIR)
    return sorted(p.parent for p in root.glob("*/labels.tsv")) if root.is_dir() else []


def _distill_evaluate(path: str | Path, folder: Path, held_back: bool = False) -> dict:
    """``python -m distill evaluate`` on one labels.tsv folder (one ONNX Runtime thread, the serving
    path's preprocessing and decoding), in a child process like the training jobs, so this worker
    never loads the training code."""
    cmd = [sys.executable, "-m", "distill", "evaluate", "--data", str(folder), "--model", str(path), "--threads", "1"]
    cmd += ["--held-back"] if held_back else []
    cmd += ["--limit", str(settings.OCR_EVAL_LINES)] if settings.OCR_EVAL_LINES else []
    done = subprocess.run(cmd, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"evaluate {folder} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _page_suite(path: str | Path) -> dict | None:
    """The frozen page suite read with the model (``python -m distill evaluate-pages``, cascade
    off: the report measures the model), or None where the deployment has no page suite."""
    folder = Path(settings.OCR_EVAL_PAGES_DIR)
    if not (folder / "pages.jsonl").exists():
        return None
    cmd = [sys.executable, "-m", "distill", "evaluate-pages", "--data", str(folder), "--model", str(path)]
    done = subprocess.run(cmd, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"evaluate-pages {folder} failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: result[k] for k in ("pages", "in_order", "order_free", "s_per_page_p50")}


def dataset_folders() -> dict[str, Path]:
    """The deployment's labelled datasets (uploads, corrections) by report key: each is scored on
    the lines training leaves out (``distill.data.held_back``: one in ten)."""
    out = {}
    for pk, name, path in Dataset.objects.order_by("pk").values_list("pk", "name", "path"):
        if (Path(path) / "labels.tsv").exists():
            out[f"dataset {pk}: {name}"] = Path(path)
    return out


def evaluate_file(path: str | Path, folders: list[Path]) -> dict:
    """The report of one model file: char accuracy (%) on each subset of the frozen suite, and on
    the held-back lines of each dataset of the deployment (a dataset too small to hold any back
    is left out), and the mean ms per line."""
    suite, datasets, ms = {}, {}, []
    for folder in folders:
        result = _distill_evaluate(path, folder)
        suite[folder.name] = round(100 * result["char_accuracy"], 2)
        ms.append(result["ms_per_line_p50"])
    for key, folder in dataset_folders().items():
        try:
            datasets[key] = round(100 * _distill_evaluate(path, folder, held_back=True)["char_accuracy"], 2)
        except RuntimeError as exc:
            if "has no lines" not in str(exc):
                raise
    return {
        "suite": suite,
        "datasets": datasets,
        "pages": _page_suite(path),
        "ms_per_line": round(sum(ms) / len(ms), 2) if ms else None,
        "suite_dir": str(settings.OCR_EVAL_SUITE_DIR),
        "lines_per_subset": settings.OCR_EVAL_LINES or "all",
        "evaluated_at": timezone.now().isoformat(),
    }


@shared_task(name=EVALUATE, acks_late=False, soft_time_limit=None, time_limit=None)
def evaluate_model(version_id: int) -> str:
    """Write the evaluation report of a registered model (on registration and on demand)."""
    close_old_connections()
    return write_report(version_id)


def write_report(version_id: int) -> str:
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return "gone"
    folders = suite_folders()
    if not folders:
        log.warning(
            "no evaluation suite under %s (make ood-suite): %s has no report",
            settings.OCR_EVAL_SUITE_DIR,
            version.label,
        )
        ModelVersion.objects.filter(pk=version_id).update(
            report={
                "error": f"no suite under {settings.OCR_EVAL_SUITE_DIR}",
                "evaluated_at": timezone.now().isoformat(),
            }
        )
        return "no_suite"
    report = evaluate_file(version.file_path, folders)
    ModelVersion.objects.filter(pk=version_id).update(report=report)
    log.info("report of %s: %s", version.label, report["suite"])
    return "evaluated"
