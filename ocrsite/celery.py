import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrsite.settings.local")

# Celery's Django fix-up (database connections closed around each task, Django set up in the
# worker) imports the worker machinery (celery.worker). Only a worker needs it, so the app is made
# without it and a starting worker installs it when it imports the task modules (import_modules,
# sent before worker_init, where the fix-up hooks the tasks). The web process, which only sends
# tasks by name (ocr_api.queues), never loads the worker.
app = Celery("ocrsite", fixups=[])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_default()  # current_app in every thread of the process (the web's request threads send tasks)


@signals.import_modules.connect(sender=app)  # connected before the autodiscovery below: runs first
def _install_django_fixup(**kwargs) -> None:
    import django
    from celery.fixups.django import fixup

    fixup(app)
    django.setup()


app.autodiscover_tasks(["ocr_api"])  # ocr_api.tasks: the training queue
app.autodiscover_tasks(["ocr_api"], related_name="recognition")  # the OCR queue
