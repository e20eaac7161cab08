"""The Celery tasks the web sends, by name: the web never imports a task module (the recognition
task's module loads the engine). ``CELERY_TASK_ROUTES`` sends each to its queue."""

from __future__ import annotations

from celery import current_app

RECOGNIZE = "ocr_api.recognition.recognize"  # the "ocr" queue
TRAIN = "ocr_api.tasks.run_training_job"  # the "training" queue
EVALUATE = "ocr_api.tasks.evaluate_model"  # the "training" queue


def send(task: str, job_id) -> None:
    """Queue ``task`` for one job; a broker that refuses raises at once (no retry loop)."""
    current_app.send_task(task, args=[str(job_id)], retry=False)
