"""Who sees which OCR jobs: written once, for the API's job views and line corrections."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import OcrJob


def jobs_visible_to(user, jobs: QuerySet | None = None) -> QuerySet:
    """``jobs`` (all jobs by default) narrowed to the ones ``user`` may read and change: their own,
    or every job for staff. Serving an uploaded image and deleting a whole history are stricter
    (the owner only, staff included) and filter on ``owner`` themselves."""
    jobs = OcrJob.objects.all() if jobs is None else jobs
    return jobs if user.is_staff else jobs.filter(owner=user)
