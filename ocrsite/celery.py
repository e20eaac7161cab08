import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrsite.settings.local")

app = Celery("ocrsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "ocr_api"])
