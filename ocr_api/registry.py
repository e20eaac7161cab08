"""The model registry: which ONNX file serves, registered with its sha256 and metrics."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from engine.modelfile import file_sha256
from engine.modelpkg import REFERENCE_FILES, SERVED_DEFAULT, ModelSpec

from . import queues
from .models import ModelVersion

log = logging.getLogger(__name__)

# The model served when the registry has none active, in order of preference: the warm-started
# student (docs/models.md: PP-OCRv6 tiny refined by our distillation; it reads more than v6 tiny
# on every subset of the out-of-distribution suite at the same time per line), then PP-OCRv6 tiny
# (more than PP-OCRv4-mobile on every subset at a quarter of its time), then PP-OCRv4-mobile, then
# the student trained from scratch. An admin can register and promote any of them.
# the imported recognisers an admin can name (a training job's teacher)
RECOGNISERS = {name: REFERENCE_FILES[name] for name in ("ppocrv6-tiny", "ppocrv4-mobile", "ppocrv6-small")}
DEFAULT_CANDIDATES = (
    SERVED_DEFAULT,
    REFERENCE_FILES["ppocrv6-tiny"],
    REFERENCE_FILES["ppocrv4-mobile"],
    "student.onnx",
)


def default_model_path() -> Path:
    """The model served when the registry has none: OCR_DEFAULT_MODEL, else the first candidate present."""
    if settings.OCR_DEFAULT_MODEL:
        return Path(settings.OCR_DEFAULT_MODEL)
    for candidate in DEFAULT_CANDIDATES:
        path = settings.OCR_MODELS_DIR / candidate
        if path.exists():
            return path
    raise FileNotFoundError(
        f"no model under {settings.OCR_MODELS_DIR}: expected one of {', '.join(DEFAULT_CANDIDATES)} (run `make models`)"
    )


def register_model(
    path: Path,
    *,
    kind: str = ModelVersion.Kind.STUDENT,
    name: str | None = None,
    metrics: dict | None = None,
    lineage: dict | None = None,
    parent: ModelVersion | None = None,
) -> ModelVersion:
    """Register a model file (idempotent by sha256). The file must follow the model package contract."""
    path = Path(path).resolve()
    spec = ModelSpec.from_file(path)
    sha = file_sha256(path)
    existing = ModelVersion.objects.filter(sha256=sha).first()
    if existing:
        return existing
    params = spec.extra.get("params") or (metrics or {}).get("params")
    try:
        with transaction.atomic():
            version = ModelVersion.objects.create(
                name=name or spec.name,
                kind=kind,
                file_path=str(path),
                sha256=sha,
                params=int(params) if params is not None and str(params).isdigit() else None,
                size_bytes=path.stat().st_size,
                metrics=metrics or {},
                lineage=lineage or {},
                parent=parent,
            )
    except IntegrityError:  # registered by another request at the same moment (the first requests)
        return ModelVersion.objects.get(sha256=sha)
    transaction.on_commit(lambda: request_report(version.pk))
    return version


def request_report(version_id: int) -> bool:
    """Queue the model's evaluation report on the training queue (ocr_api.tasks.evaluate_model).
    A broker that is down leaves the model without a report (the gate then refuses it) rather than
    failing the registration; ``POST /ocr/v1/models/<id>/evaluate`` asks again."""
    try:
        queues.send(queues.EVALUATE, version_id)
        return True
    except Exception:  # registration must not fail on the broker
        log.warning("could not queue the report of model %s", version_id, exc_info=True)
        return False


def promote(version: ModelVersion) -> ModelVersion:
    with transaction.atomic():
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        version.is_active = True
        version.promoted_at = timezone.now()
        version.save(update_fields=["is_active", "promoted_at"])
    return version


def active_model() -> ModelVersion:
    """The active version; registers and activates the default model on first use."""
    current = ModelVersion.objects.filter(is_active=True).first()
    if current:
        return current
    path = default_model_path()
    kind = ModelVersion.Kind.REFERENCE if "reference" in path.parts else ModelVersion.Kind.STUDENT
    version = register_model(path, kind=kind)
    try:
        return promote(version) if not ModelVersion.objects.filter(is_active=True).exists() else active_model()
    except IntegrityError:  # another process activated one at the same moment
        return ModelVersion.objects.get(is_active=True)
