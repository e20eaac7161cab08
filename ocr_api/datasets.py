"""Labelled line datasets: validating an uploaded zip, and turning users' corrections into one.

The format is the line dataset of the whole platform: a folder with ``labels.tsv``, one
``relative/path.png<TAB>text`` per line, UTF-8.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from PIL import Image

from engine.charset import load_charset, normalize  # pure Python: the one reader of charset.txt
from engine.images import ImageError, ImageLimits, decode_image

from .images import read_image
from .models import Dataset, LineCorrection

MAX_ZIP_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 200_000
MAX_UNPACKED_BYTES = 2 * 1024 * 1024 * 1024
LINE_LIMITS = ImageLimits(max_bytes=8 * 1024 * 1024, max_pixels=8_000_000, min_side=4)


class DatasetError(ValueError):
    pass


@dataclass
class ValidatedDataset:
    path: Path
    lines: int
    characters_outside_charset: list[str]
    report: dict


def datasets_root() -> Path:
    return settings.VAR_DIR / "datasets"


def _problem(errors: list[str], message: str) -> None:
    if len(errors) < 20:
        errors.append(message)


def validate_zip(data: bytes) -> ValidatedDataset:
    """Check and unpack an uploaded dataset; every problem found is reported, none is skipped silently."""
    archive, names = _open_zip(data)
    label_name, base = _labels_member(names)
    try:
        labels = archive.read(label_name).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError("labels.tsv is not UTF-8") from None
    entries, outside, duplicates = _check_lines(archive, names, base, labels)
    target = datasets_root() / f"upload-{uuid.uuid4().hex[:12]}"
    (target / "images").mkdir(parents=True)
    with open(target / "labels.tsv", "w", encoding="utf-8") as out:
        for i, (member, text) in enumerate(entries):
            rel = f"images/{i:06d}{PurePosixPath(member).suffix.lower() or '.png'}"
            (target / rel).write_bytes(archive.read(member))
            out.write(f"{rel}\t{text}\n")
    # the report names lines as the upload's labels.tsv did
    report = line_report([(str(PurePosixPath(m).relative_to(base)), t) for m, t in entries], duplicates, [])
    return ValidatedDataset(target, len(entries), sorted(outside), report)


def _open_zip(data: bytes) -> tuple[zipfile.ZipFile, dict]:
    """The archive and its files by name, within the size and count limits."""
    if len(data) > MAX_ZIP_BYTES:
        raise DatasetError(f"the zip is larger than {MAX_ZIP_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DatasetError("the upload is not a zip file") from None
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise DatasetError(f"the zip holds more than {MAX_MEMBERS} files")
    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
        raise DatasetError("the zip unpacks to more than 2 GiB")
    return archive, {m.filename: m for m in members if not m.is_dir()}


def _labels_member(names: dict) -> tuple[str, PurePosixPath]:
    """labels.tsv at the top, or inside one top-level folder: its name and its folder."""
    label_names = [n for n in names if PurePosixPath(n).name == "labels.tsv" and len(PurePosixPath(n).parts) <= 2]
    if len(label_names) != 1:
        raise DatasetError("the zip must hold exactly one labels.tsv (at its top or in one top-level folder)")
    return label_names[0], PurePosixPath(label_names[0]).parent


def _check_lines(
    archive: zipfile.ZipFile, names: dict, base: PurePosixPath, labels: str
) -> tuple[list[tuple[str, str]], set[str], list[dict]]:
    """(zip member, text) of every labelled line, the characters outside the charset and the
    duplicates left out (the same image with the same text again); every problem of every line is
    collected before the upload is refused."""
    known = load_charset().index
    errors: list[str] = []
    entries: list[tuple[str, str]] = []
    outside: set[str] = set()
    seen: dict[tuple[bytes, str], str] = {}
    duplicates: list[dict] = []
    for number, raw in enumerate(labels.splitlines(), start=1):
        if not raw.strip():
            continue
        rel, sep, text = raw.partition("\t")
        if not sep or not text.strip():
            _problem(errors, f"labels.tsv line {number}: expected path<TAB>text")
            continue
        rel_path = PurePosixPath(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            _problem(errors, f"labels.tsv line {number}: {rel!r} leaves the dataset folder")
            continue
        member = str(base / rel_path) if str(base) != "." else str(rel_path)
        if member not in names:
            _problem(errors, f"labels.tsv line {number}: {rel!r} is not in the zip")
            continue
        data = archive.read(member)
        try:
            decode_image(data, LINE_LIMITS)
        except ImageError as exc:
            _problem(errors, f"labels.tsv line {number}: {rel!r}: {exc.message}")
            continue
        key = (hashlib.sha256(data).digest(), text.strip())
        if key in seen:
            duplicates.append({"line": rel, "same_as": seen[key]})
            continue
        seen[key] = rel
        outside.update(ch for ch in normalize(text) if ch not in known)
        entries.append((member, text))
    if errors:
        raise DatasetError("; ".join(errors))
    if not entries:
        raise DatasetError("labels.tsv lists no lines")
    return entries, outside, duplicates


def served_classes() -> frozenset[str] | None:
    """The characters the served model can produce (None without an active model)."""
    from engine.modelpkg import ModelSpec

    from .registry import active_model

    version = active_model()
    return frozenset(c for c in ModelSpec.from_file(version.file_path).classes if c) if version else None


def line_report(entries: list[tuple[str, str]], duplicates: list[dict], skipped: list[dict]) -> dict:
    """A dataset's report: the lines left out (``duplicates``, ``skipped``, each with why) and the
    lines kept whose characters the served model cannot produce (training leaves them out)."""
    classes = served_classes()
    unproducible = []
    for rel, text in entries:
        missing = sorted({c for c in normalize(text) if not c.isspace() and classes is not None and c not in classes})
        if missing:
            unproducible.append({"line": rel, "text": text, "characters": "".join(missing)})
    return {"duplicates": duplicates, "skipped": skipped, "unproducible": unproducible}


@dataclass
class JobLine:
    """One recognised line to cut out of its job's image: ``source`` names it in the report."""

    source: dict
    job: object
    box: list
    text: str


def write_job_lines(
    name: str, source: str, lines: list[JobLine], created_by, skipped: list[dict] | None = None, empty_ok: bool = True
) -> Dataset:
    """Cut each line's box out of its job's image into a new dataset; a line whose image is gone,
    whose box is empty or whose (image, text) came before is left out and reported. Without
    ``empty_ok``, a dataset that would hold no line is refused (DatasetError, with the report)."""
    target = datasets_root() / f"{source}-{uuid.uuid4().hex[:12]}"
    (target / "images").mkdir(parents=True)
    limits = ImageLimits(max_bytes=settings.OCR_MAX_IMAGE_BYTES, max_pixels=settings.OCR_MAX_PIXELS, min_side=1)
    skipped, duplicates, entries, seen = list(skipped or []), [], [], {}
    decoded: tuple[str, np.ndarray] | None = None  # the last job image: a job's lines come together
    try:
        for item in lines:
            if not item.job.image_name:  # deleted after the retention period
                skipped.append({**item.source, "why": "the job's image was deleted"})
                continue
            if not item.text.strip():
                skipped.append({**item.source, "why": "the line has no text"})
                continue
            if decoded is None or decoded[0] != item.job.image_name:
                decoded = (item.job.image_name, decode_image(read_image(item.job.image_name), limits))
            rgb = decoded[1]
            x0, y0, x1, y1 = (int(v) for v in item.box)
            crop = np.ascontiguousarray(rgb[max(0, y0) : y1, max(0, x0) : x1])
            if crop.size == 0:
                skipped.append({**item.source, "why": "the line's box is empty"})
                continue
            rel = f"images/{len(entries):07d}.png"
            key = (crop.shape, crop.tobytes(), item.text.strip())
            if key in seen:
                duplicates.append({**item.source, "same_as": seen[key]})
                continue
            seen[key] = rel
            Image.fromarray(crop).save(target / rel)
            entries.append((rel, " ".join(item.text.split())))  # no tab or newline inside a label
        with open(target / "labels.tsv", "w", encoding="utf-8") as out:
            out.writelines(f"{rel}\t{text}\n" for rel, text in entries)
        report = line_report(entries, duplicates, skipped)
        if not entries and not empty_ok:
            raise DatasetError(f"none of the lines could be used: {json.dumps(report)[:2000]}")
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Dataset.objects.create(
        name=name[:120], source=source, path=str(target), lines=len(entries), report=report, created_by=created_by
    )


def corrections_dataset(created_by) -> Dataset:
    """Every line users corrected, cut from its job's image, as a dataset."""
    corrections = list(LineCorrection.objects.select_related("job").order_by("pk"))
    if not corrections:
        raise DatasetError("there are no corrections yet")
    lines = [JobLine({"correction": c.pk}, c.job, c.box, c.corrected_text) for c in corrections]
    dataset = write_job_lines("corrections", Dataset.Source.CORRECTIONS, lines, created_by)
    dataset.name = f"corrections ({dataset.lines} lines)"
    dataset.save(update_fields=["name"])
    return dataset


MAX_EXPORTED_LINES = 10_000


def job_lines_dataset(name: str, picks: list, created_by) -> Dataset:
    """The lines a staff member chose from finished jobs (``[{"job": id, "line": index}, ...]``),
    each with its text as the job holds it now (a corrected line: the correction)."""
    from .models import OcrJob

    if not isinstance(picks, list) or not picks or len(picks) > MAX_EXPORTED_LINES:
        raise DatasetError(f"lines must be a list of 1 to {MAX_EXPORTED_LINES} {{job, line}} objects")
    wanted = []
    for pick in picks:
        try:
            wanted.append((str(uuid.UUID(str(pick["job"]))), int(pick["line"])))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise DatasetError("each of lines must be an object with a job id and a line index") from None
    jobs = {str(job.pk): job for job in OcrJob.objects.filter(pk__in={job for job, _ in wanted})}
    lines, skipped = [], []
    for job_id, index in wanted:
        source = {"job": job_id, "line": index}
        job = jobs.get(job_id)
        if job is None or job.status != OcrJob.Status.SUCCEEDED:
            skipped.append({**source, "why": "no finished job with this id"})
        elif not 0 <= index < len(job.lines or []):
            skipped.append({**source, "why": f"the job has {len(job.lines or [])} lines"})
        else:
            lines.append(JobLine(source, job, job.lines[index]["box"], job.lines[index]["text"]))
    return write_job_lines(name or "lines from jobs", Dataset.Source.JOBS, lines, created_by, skipped, empty_ok=False)
