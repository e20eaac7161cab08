"""Uploaded images in file storage, stored once per content and named by their hash.

A job row keeps only the storage name (``images/ab/<sha256>.<ext>``); jobs with the same bytes
share one file. The storage is ``STORAGES["ocr_images"]``: a folder under the var directory by
default, any Django storage backend (an S3-compatible bucket through django-storages) when
configured. A file is deleted when the last job naming it is deleted, or when the retention period
(``OCR_IMAGE_RETENTION_DAYS``) clears it from old jobs (``manage.py purge_images``).

Ordering keeps a shared file from being deleted under a new job: a new job's row is written
before its file is checked, and a deleted job's row is gone before anyone looks whether its file
is still named.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.functional import cached_property

from .models import OcrJob

log = logging.getLogger(__name__)

STORAGE_ALIAS = "ocr_images"
_EXTENSIONS = {"JPEG": "jpg", "TIFF": "tif"}


class LocalImageStorage(FileSystemStorage):
    """The default backend: ``<var dir>/media`` unless a location is configured. The folder is
    read from the settings when first used, so that every process of one deployment agrees."""

    @cached_property
    def base_location(self):
        return self._value_or_setting(self._location, str(settings.VAR_DIR / "media"))


def image_storage() -> Storage:
    return storages[STORAGE_ALIAS]


def image_name(sha256: str, image_format: str) -> str:
    ext = _EXTENSIONS.get(image_format.upper(), image_format.lower() or "bin")
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ensure_stored(name: str, data: bytes) -> None:
    """Write the file unless it is there. Two writers racing on one new name both end with that name."""
    storage = image_storage()
    if storage.exists(name):
        return
    saved = storage.save(name, ContentFile(data))
    if saved != name:  # another process stored the same bytes a moment earlier
        storage.delete(saved)


def store(data: bytes, image_format: str) -> str:
    """Store the bytes under their hash name and return the name (for code that has no row yet)."""
    name = image_name(sha256_of(data), image_format)
    ensure_stored(name, data)
    return name


def read_image(name: str) -> bytes:
    """The stored bytes; FileNotFoundError when the name is blank or the file is gone."""
    if not name:
        raise FileNotFoundError("the job's image has been deleted")
    with image_storage().open(name, "rb") as f:
        return f.read()


def release(names: Iterable[str]) -> int:
    """Delete the files that no job names any more. Returns how many were deleted."""
    storage = image_storage()
    deleted = 0
    for name in set(n for n in names if n):
        if OcrJob.objects.filter(image_name=name).exists():
            continue
        try:
            storage.delete(name)
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted


def purge_older_than(days: int, now=None, chunk: int = 500) -> tuple[int, int]:
    """Clear the image of finished jobs created more than ``days`` days ago (their text stays).
    Returns (jobs cleared, files deleted)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = OcrJob.objects.filter(
        created_at__lt=cutoff, status__in=[OcrJob.Status.SUCCEEDED, OcrJob.Status.FAILED]
    ).exclude(image_name="")
    jobs = files = 0
    while True:
        batch = list(old.values_list("pk", "image_name")[:chunk])
        if not batch:
            return jobs, files
        jobs += OcrJob.objects.filter(pk__in=[pk for pk, _ in batch]).update(image_name="")
        files += release(name for _, name in batch)


@receiver(post_delete, sender=OcrJob)
def _release_image(sender, instance: OcrJob, **kwargs) -> None:
    """A deleted job gives up its image file once the deletion is committed (and no other job shares it)."""
    if instance.image_name:
        name = instance.image_name
        transaction.on_commit(lambda: release([name]), robust=True)
