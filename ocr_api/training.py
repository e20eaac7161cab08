"""Training jobs from the platform's side: parameters, the distill command line, progress.

The training worker runs ``python -m distill ...`` in a child process: PyTorch stays out of
Django's processes, a crash of the trainer cannot take the worker down, and cancelling is a
signal. Progress is read from the run's ``metrics.jsonl`` (``engine.report``, torch-free).
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.report import Metrics, plot_png

from . import queues
from .models import Dataset, DistillJob

DEFAULTS = {
    DistillJob.Kind.TEACHER: {"steps": 20000, "batch_size": 32, "lr": None},
    DistillJob.Kind.DISTILL: {"steps": 20000, "batch_size": 32, "lr": None},
}


class ParamError(ValueError):
    pass


def start_job(job: DistillJob, user) -> DistillJob:
    """Start an unsaved job (``kind`` and raw ``params`` set): check its parameters (ParamError),
    save it as ``user``'s and queue it on the "training" queue once the transaction commits.
    The admin's add form and ``POST /ocr/v1/distill-jobs`` both start jobs here."""
    if job.kind not in DistillJob.Kind.values:
        raise ParamError(f"kind must be one of {', '.join(DistillJob.Kind.values)}")
    raw = {} if job.params is None else job.params
    if not isinstance(raw, dict):
        raise ParamError("params must be an object")
    job.params = adapt_params(raw) if job.kind == DistillJob.Kind.ADAPT else clean_params(job.kind, raw)
    job.created_by = user
    job.save()
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    queues.send(queues.TRAIN, job_id)


def cancel_jobs(jobs) -> int:
    """Ask the unfinished jobs of a queryset to stop: a queued one is cancelled at once, a running
    one when its worker next polls (it stops the trainer, which saves a checkpoint). Returns how
    many were asked. Used by the admin's action and ``POST /ocr/v1/distill-jobs/<id>/cancel``."""
    finished = (DistillJob.Status.SUCCEEDED, DistillJob.Status.FAILED, DistillJob.Status.CANCELLED)
    asked = jobs.exclude(status__in=finished).update(cancel_requested=True)
    jobs.filter(status=DistillJob.Status.QUEUED).update(status=DistillJob.Status.CANCELLED, finished_at=timezone.now())
    return asked


def training_root() -> Path:
    return settings.VAR_DIR / "training"


def run_dir(job: DistillJob) -> Path:
    return training_root() / f"job-{job.pk}"


def _number(params: dict, key: str, cast, lo, hi) -> None:
    """``params[key]`` cast and checked to lie in [lo, hi] (ParamError otherwise); absent or None: left."""
    if params.get(key) is None:
        return
    try:
        value = cast(params[key])
    except (TypeError, ValueError):
        raise ParamError(f"{key} must be a number") from None
    if not lo <= value <= hi:
        raise ParamError(f"{key} must lie in [{lo}, {hi}]")
    params[key] = value


def clean_params(kind: str, raw: dict) -> dict:
    """Validate an admin's parameters; unknown keys are refused rather than ignored."""
    allowed = {
        "steps",
        "batch_size",
        "lr",
        "alpha",
        "beta",
        "temperature",
        "kd_top_k",
        "seed",
        "data_source",
        "dataset",
        "teacher",
        "threads",
        "arch",
        "warm_start",
    } | set(WARM_DEFAULTS)
    unknown = set(raw) - allowed
    if unknown:
        raise ParamError(f"unknown parameters: {', '.join(sorted(unknown))}")
    if raw.get("warm_start"):
        return _warm_params(kind, raw)
    warm_only = sorted(set(raw) & (set(WARM_DEFAULTS) - set(DEFAULTS[kind]) - {"teacher", "seed", "data_source"}))
    if warm_only:
        raise ParamError(f"{', '.join(warm_only)}: parameters of a warm-started job (warm_start: true)")
    params = dict(DEFAULTS[kind])
    params.update({k: v for k, v in raw.items() if v is not None})

    def number(key, cast, lo, hi):
        _number(params, key, cast, lo, hi)

    number("steps", int, 1, 10_000_000)
    number("batch_size", int, 1, 1024)
    number("lr", float, 1e-6, 1.0)
    number("alpha", float, 0.0, 1.0)
    number("beta", float, 0.0, 100.0)
    number("temperature", float, 0.1, 20.0)
    number("kd_top_k", int, 0, 100_000)
    number("seed", int, 0, 2**31 - 1)
    number("threads", int, 1, 256)
    source = params.setdefault("data_source", "synthetic")
    if source not in ("synthetic", "dataset", "corrections"):
        raise ParamError("data_source must be synthetic, dataset or corrections")
    if source == "dataset":
        if not Dataset.objects.filter(pk=params.get("dataset"), source=Dataset.Source.UPLOAD).exists():
            raise ParamError("data_source dataset needs the id of an uploaded dataset in dataset")
    if kind == DistillJob.Kind.DISTILL:
        params.setdefault("alpha", 0.6)
        params.setdefault("temperature", 2.0)
        params.setdefault("beta", 0.0)
        params.setdefault("kd_top_k", 8)
        # the served reference (docs/models.md: PP-OCRv6 tiny reads the out-of-distribution suite
        # better than v4 at a quarter of its time, so it also teaches faster), not the CRNN teacher
        params.setdefault("teacher", "reference")
        teacher_path(params["teacher"])  # refuses an unknown teacher now, not in the worker
    return params


# A warm-started distillation (distill/warmstart.py, docs/models.md): the served recogniser refined
# with CTC + KD + feature mimicking from a stronger one, on lines cached with the teacher's targets.
# The recipe of the shipped warm-started student (docs/models.md "Warm-started distillation"): CTC on
# the cached lines the teacher reads, the exported weights halfway between the start and the trained
# average, the blank's logit lowered by 1. The KD and feature terms are offered at weight 0.
WARM_DEFAULTS = {
    "steps": 2000,
    "batch_size": 16,
    "lr": 3e-5,
    "student": "ppocrv6-tiny",
    "teacher": "ppocrv6-small",
    "cache_lines": 2000,
    "seed": 0,
    "data_source": "synthetic",
    "ctc_weight": 1.0,
    "kd_weight": 0.0,
    "feat_weight": 0.0,
    "interpolate": 0.5,
    "blank_offset": 1.0,
}
WARM_LIMITS = {
    "steps": (int, 1, 10_000_000),
    "batch_size": (int, 1, 1024),
    "lr": (float, 1e-7, 1.0),
    "cache_lines": (int, 8, 10_000_000),
    "seed": (int, 0, 2**31 - 1),
    "threads": (int, 1, 256),
    "ctc_weight": (float, 0.0, 100.0),
    "kd_weight": (float, 0.0, 100.0),
    "feat_weight": (float, 0.0, 100.0),
    "interpolate": (float, 0.0, 1.0),
    "blank_offset": (float, 0.0, 20.0),
}


def _warm_params(kind: str, raw: dict) -> dict:

    if kind != DistillJob.Kind.DISTILL:
        raise ParamError("warm_start is a distillation job's parameter")
    unknown = set(raw) - {"warm_start", "student", "teacher", "data_source", *WARM_LIMITS}
    if unknown:
        raise ParamError(f"not parameters of a warm-started job: {', '.join(sorted(unknown))}")
    params = {**WARM_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}, "warm_start": True}
    for key, (cast, lo, hi) in WARM_LIMITS.items():
        if key in params:
            _number(params, key, cast, lo, hi)
    if params["data_source"] != "synthetic":
        raise ParamError("a warm-started job trains on its cached synthetic lines: data_source must be synthetic")
    for role in ("student", "teacher"):
        _check_recogniser(role, params[role])
    return params


def _check_recogniser(role: str, name: str) -> None:
    """A job's ``role`` recogniser must be an imported reference by name, and its file present."""
    from .registry import RECOGNISERS

    if name not in RECOGNISERS:
        raise ParamError(f"{role} must be one of {', '.join(RECOGNISERS)}")
    if not (settings.OCR_MODELS_DIR / RECOGNISERS[name]).exists():
        raise ParamError(f"no {role} recogniser at {settings.OCR_MODELS_DIR / RECOGNISERS[name]} (make models)")


def warm_command(job: DistillJob, dev: Path | None = None) -> list[str]:
    """``python -m distill warm-distill`` for a warm-started job: the line cache is built in the
    run's folder first (resumable like the run), the package lands in ``<run>/student.onnx``."""
    from .registry import RECOGNISERS

    p, out = job.params, run_dir(job)
    cmd = [
        sys.executable,
        "-m",
        "distill",
        "warm-distill",
        "--out",
        str(out),
        "--cache",
        str(out / "cache"),
        "--cache-lines",
        str(p["cache_lines"]),
        "--student",
        str(settings.OCR_MODELS_DIR / RECOGNISERS[p["student"]]),
        "--teacher",
        str(settings.OCR_MODELS_DIR / RECOGNISERS[p["teacher"]]),
        "--steps",
        str(p["steps"]),
        "--batch-size",
        str(p["batch_size"]),
        "--lr",
        str(p["lr"]),
        "--seed",
        str(p.get("seed", 0)),
        "--threads",
        str(p.get("threads", settings.OCR_TRAIN_THREADS)),
        "--eval-every",
        str(max(50, p["steps"] // 10)),
        "--quiet",
    ]
    for key in ("ctc_weight", "kd_weight", "feat_weight", "interpolate", "blank_offset"):
        cmd += ["--" + key.replace("_", "-"), str(p.get(key, WARM_DEFAULTS[key]))]
    if dev is not None:
        cmd += ["--dev-data", str(dev)]
    return cmd


def teacher_path(teacher) -> tuple[str, Path]:
    """("pt" | "onnx", path) for a teacher parameter: "reference" (PP-OCRv6 tiny), a reference by
    name (ocr_api.registry.REFERENCE_FILES) or a teacher job's id."""
    from .registry import RECOGNISERS

    if teacher == "reference" or teacher in RECOGNISERS:
        path = settings.OCR_MODELS_DIR / RECOGNISERS["ppocrv6-tiny" if teacher == "reference" else teacher]
        if not path.exists():
            raise ParamError(f"no reference recogniser at {path} (make models)")
        return "onnx", path
    job = DistillJob.objects.filter(
        pk=teacher, kind=DistillJob.Kind.TEACHER, status=DistillJob.Status.SUCCEEDED
    ).first()
    if job is None:
        raise ParamError(
            f"teacher must be 'reference', one of {', '.join(RECOGNISERS)} or the id of a finished teacher job"
        )
    return "pt", run_dir(job) / "last.pt"


def train_command(job: DistillJob, train_data: Path | None, dev: Path | None = None) -> list[str]:
    p = job.params
    if job.kind == DistillJob.Kind.ADAPT:
        return adapt_command(job, train_data)
    if p.get("warm_start"):
        return warm_command(job, dev)
    sub = "train-teacher" if job.kind == DistillJob.Kind.TEACHER else "distill"
    cmd = [
        sys.executable,
        "-m",
        "distill",
        sub,
        "--run-dir",
        str(run_dir(job)),
        "--steps",
        str(p["steps"]),
        "--batch-size",
        str(p["batch_size"]),
        "--seed",
        str(p.get("seed", 0)),
        "--quiet",
        "--threads",
        str(p.get("threads", settings.OCR_TRAIN_THREADS)),
    ]
    if p.get("lr"):
        cmd += ["--lr", str(p["lr"])]
    if p.get("arch"):
        cmd += ["--arch", p["arch"]]
    if job.kind == DistillJob.Kind.DISTILL:
        kind, path = teacher_path(p["teacher"])
        cmd += [
            "--teacher" if kind == "pt" else "--teacher-onnx",
            str(path),
            "--alpha",
            str(p["alpha"]),
            "--beta",
            str(p["beta"]),
            "--temperature",
            str(p["temperature"]),
        ]
        if p.get("kd_top_k") is not None:  # jobs queued before the parameter existed use the trainer's default
            cmd += ["--kd-top-k", str(p["kd_top_k"])]
    if train_data is not None:
        cmd += ["--train-data", str(train_data)]
    return cmd


def progress(metrics: Metrics, eta_s: float | None) -> dict:
    """What a job row shows of its run: the step, the latest loss terms, dev accuracy, the ETA."""
    last_dev = metrics.devs[-1] if metrics.devs else {}
    return {
        "step": metrics.step,
        "steps": metrics.steps,
        "losses": {k: v for k, v in metrics.losses[-1].items() if k != "step"} if metrics.losses else {},
        "dev_char_accuracy": last_dev.get("dev_char_accuracy"),
        "dev_line_accuracy": last_dev.get("dev_line_accuracy"),
        "eta_s": None if eta_s is None else round(eta_s, 1),
    }


def curves_png(metrics: Metrics) -> bytes | None:
    """Loss terms and dev accuracy against steps, as a PNG (matplotlib is on the training worker)."""
    if not (metrics.losses or metrics.devs):
        return None
    return plot_png({"": metrics}, size=(9, 3.2), dpi=90)


# Adapting the served recogniser to a dataset (distill/adapt.py, docs/lifecycle.md "Adapting the
# served model"): the defaults are the ones measured on the two domains there.
ADAPT_DEFAULTS = {
    "student": "active",
    "teacher": "ppocrv6-small",
    "data_source": "corrections",
    "steps": 1500,
    "batch_size": 16,
    "lr": 2e-4,
    "replay_lines": 2000,
    "domain_share": 0.5,
    "kd_weight": 1.0,
    "eval_every": 200,
    "patience": 3,
    "forget_margin": 0.005,
    "general_lines": 300,
    "anchor": "start",
    "augment": 0.5,
    "join": 0.5,
    "dataset_kd": 0.0,
    "mix": 0.0,
    "noise_band": 1.0,
    "guard_margin": 0.05,
    "seed": 0,
}
ADAPT_LIMITS = {
    "steps": (int, 1, 1_000_000),
    "batch_size": (int, 2, 1024),
    "lr": (float, 1e-7, 1.0),
    "replay_lines": (int, 8, 1_000_000),
    "domain_share": (float, 0.05, 1.0),
    "kd_weight": (float, 0.0, 100.0),
    "eval_every": (int, 1, 1_000_000),
    "patience": (int, 1, 1000),
    "forget_margin": (float, 0.0, 1.0),
    "general_lines": (int, 8, 100_000),
    "augment": (float, 0.0, 1.0),
    "join": (float, 0.0, 1.0),
    "dataset_kd": (float, 0.0, 100.0),
    "mix": (float, 0.0, 1.0),
    "noise_band": (float, 0.0, 10.0),
    "guard_margin": (float, -1.0, 1.0),
    "seed": (int, 0, 2**31 - 1),
    "threads": (int, 1, 256),
}


def adapt_params(raw: dict) -> dict:
    """An adaptation job's parameters: the dataset (``data_source`` "dataset" with ``dataset``, any
    dataset's id, or "corrections": every correction so far), the package to adapt ("active": the
    one served when the job starts, or a reference by name) and the training knobs."""
    from .registry import RECOGNISERS

    unknown = set(raw) - {"dataset", "student", "teacher", "data_source", "anchor", *ADAPT_LIMITS}
    if unknown:
        raise ParamError(f"not parameters of an adaptation job: {', '.join(sorted(unknown))}")
    params = {**ADAPT_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    for key, (cast, lo, hi) in ADAPT_LIMITS.items():
        _number(params, key, cast, lo, hi)
    if params["data_source"] not in ("dataset", "corrections"):
        raise ParamError("an adaptation job learns a dataset: data_source must be dataset or corrections")
    if params["data_source"] == "dataset" and not Dataset.objects.filter(pk=params.get("dataset")).exists():
        raise ParamError("data_source dataset needs the id of a dataset in dataset")
    if params["anchor"] not in ("start", "teacher"):
        raise ParamError("anchor must be start (the model being adapted) or teacher")
    if params["student"] != "active" and params["student"] not in RECOGNISERS:
        raise ParamError(f"student must be 'active' or one of {', '.join(RECOGNISERS)}")
    _check_recogniser("teacher", params["teacher"])
    return params


def student_package(params: dict) -> Path:
    """The package an adaptation job starts from: the active model's file, or a reference."""
    from .registry import RECOGNISERS, active_model

    if params["student"] == "active":
        return Path(active_model().file_path)
    return settings.OCR_MODELS_DIR / RECOGNISERS[params["student"]]


def adapt_command(job: DistillJob, dataset: Path) -> list[str]:
    """``python -m distill adapt``: the package lands in ``<run>/adapted.onnx``; the replayed lines'
    cache is shared by jobs (``var/training/replay``)."""
    from .registry import RECOGNISERS

    p = job.params
    cmd = [sys.executable, "-m", "distill", "adapt", "--quiet", "--dataset", str(dataset), "--out", str(run_dir(job))]
    cmd += ["--student", p["student_file"], "--teacher", str(settings.OCR_MODELS_DIR / RECOGNISERS[p["teacher"]])]
    cmd += ["--replay-root", str(training_root() / "replay")]
    for key in (k for k in ADAPT_DEFAULTS if k not in ("student", "teacher", "data_source")):
        cmd += ["--" + key.replace("_", "-"), str(p[key])]
    return cmd + ["--threads", str(p.get("threads", settings.OCR_TRAIN_THREADS))]
