"""Labelled line datasets: validating an uploaded zip, and turning users' corrections into one.

The format is the line dataset of the whole platform: a folder with ``labels.tsv``, one
``relative/path.png<TAB>text`` per line, UTF-8.
"""

from __future__ import annotations

import io
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
    entries, outside = _check_lines(archive, names, base, labels)
    target = datasets_root() / f"upload-{uuid.uuid4().hex[:12]}"
    (target / "images").mkdir(parents=True)
    with open(target / "labels.tsv", "w", encoding="utf-8") as out:
        for i, (member, text) in enumerate(entries):
            rel = f"images/{i:06d}{PurePosixPath(member).suffix.lower() or '.png'}"
            (target / rel).write_bytes(archive.read(member))
            out.write(f"{rel}\t{text}\n")
    return ValidatedDataset(path=target, lines=len(entries), characters_outside_charset=sorted(outside))


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
) -> tuple[list[tuple[str, str]], set[str]]:
    """(zip member, text) of every labelled line, and the characters outside the charset; every
    problem of every line is collected before the upload is refused."""
    known = load_charset().index
    errors: list[str] = []
    entries: list[tuple[str, str]] = []
    outside: set[str] = set()
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
        try:
            decode_image(archive.read(member), LINE_LIMITS)
        except ImageError as exc:
            _problem(errors, f"labels.tsv line {number}: {rel!r}: {exc.message}")
            continue
        outside.update(ch for ch in normalize(text) if ch not in known)
        entries.append((member, text))
    if errors:
        raise DatasetError("; ".join(errors))
    if not entries:
        raise DatasetError("labels.tsv lists no lines")
    return entries, outside


def corrections_dataset(created_by) -> Dataset:
    """Crop every corrected line from its job's image and write them as a dataset."""
    corrections = list(LineCorrection.objects.select_related("job"))
    if not corrections:
        raise DatasetError("there are no corrections yet")
    target = datasets_root() / f"corrections-{uuid.uuid4().hex[:12]}"
    (target / "images").mkdir(parents=True)
    limits = ImageLimits(max_bytes=settings.OCR_MAX_IMAGE_BYTES, max_pixels=settings.OCR_MAX_PIXELS, min_side=1)
    written = 0
    try:
        with open(target / "labels.tsv", "w", encoding="utf-8") as out:
            for c in corrections:
                if not c.job.image_name:  # deleted after the retention period
                    continue
                rgb = decode_image(read_image(c.job.image_name), limits)
                x0, y0, x1, y1 = (int(v) for v in c.box)
                crop = rgb[max(0, y0) : y1, max(0, x0) : x1]
                if crop.size == 0 or not c.corrected_text.strip():
                    continue
                rel = f"images/{c.pk:07d}.png"
                Image.fromarray(np.ascontiguousarray(crop)).save(target / rel)
                out.write(f"{rel}\t{c.corrected_text.strip()}\n")
                written += 1
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Dataset.objects.create(
        name=f"corrections ({written} lines)",
        source=Dataset.Source.CORRECTIONS,
        path=str(target),
        lines=written,
        created_by=created_by,
    )
