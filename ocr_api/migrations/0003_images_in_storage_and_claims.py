"""Image bytes move from the job row to file storage (one file per content, named by its hash);
jobs record which worker incarnation claimed them and when they were last queued."""

import hashlib

import django.utils.timezone
from django.db import migrations, models

_EXTENSIONS = {"JPEG": "jpg", "TIFF": "tif"}


def move_images_to_storage(apps, schema_editor):
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    storage = storages["ocr_images"]
    OcrJob = apps.get_model("ocr_api", "OcrJob")
    for pk, image, image_format in OcrJob.objects.values_list("pk", "image", "image_format").iterator(chunk_size=200):
        data = bytes(image or b"")
        if not data:
            continue
        sha = hashlib.sha256(data).hexdigest()
        ext = _EXTENSIONS.get(image_format.upper(), image_format.lower() or "bin")
        name = f"images/{sha[:2]}/{sha}.{ext}"
        if not storage.exists(name):
            storage.save(name, ContentFile(data))
        OcrJob.objects.filter(pk=pk).update(image_name=name)


class Migration(migrations.Migration):
    dependencies = [("ocr_api", "0002_lifecycle")]

    operations = [
        migrations.AddField(
            model_name="ocrjob", name="image_name", field=models.CharField(blank=True, db_index=True, max_length=200)
        ),
        migrations.AddField(model_name="ocrjob", name="claimed_by", field=models.CharField(blank=True, max_length=200)),
        migrations.AddField(model_name="ocrjob", name="claim_id", field=models.CharField(blank=True, max_length=32)),
        migrations.AddField(
            model_name="ocrjob", name="queued_at", field=models.DateTimeField(default=django.utils.timezone.now)
        ),
        migrations.RunPython(move_images_to_storage, migrations.RunPython.noop, elidable=True),
        migrations.RemoveField(model_name="ocrjob", name="image"),
    ]
