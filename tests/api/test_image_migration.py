"""Migration 0003 moves the image bytes of existing jobs out of their rows into file storage."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ocr_api.images import read_image
from ocr_api.models import OcrJob
from tests.conftest import png_bytes, render_lines

BEFORE = [("ocr_api", "0002_lifecycle")]
AFTER = [("ocr_api", "0003_images_in_storage_and_claims")]


@pytest.mark.django_db(transaction=True)
def test_existing_jobs_keep_their_images_in_storage_once_per_content():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        owner = old.get_model("auth", "User").objects.create(username="before")
        Job = old.get_model("ocr_api", "OcrJob")
        shared, own = png_bytes(render_lines(["旧发票"])), png_bytes(render_lines(["另一张"]))
        common = dict(
            owner_id=owner.pk, image_sha256="0" * 64, image_format="PNG", width=1, height=1, size_bytes=1, cache_key="k"
        )
        first = Job.objects.create(image=shared, **common).pk
        second = Job.objects.create(image=shared, **common).pk
        third = Job.objects.create(image=own, **common).pk
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
    finally:  # the rest of the suite runs on the latest schema
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("ocr_api"))
    jobs = {job.pk: job for job in OcrJob.objects.all()}
    assert jobs[first].image_name == jobs[second].image_name != jobs[third].image_name
    assert jobs[first].image_name.startswith("images/") and jobs[first].image_name.endswith(".png")
    assert read_image(jobs[first].image_name) == shared and read_image(jobs[third].image_name) == own
    assert "image" not in {f.name for f in OcrJob._meta.get_fields()}
