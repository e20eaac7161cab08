"""Delete the stored images of jobs older than the retention period; the jobs keep their text.

Run it daily (cron, a systemd timer, or a Kubernetes CronJob): `manage.py purge_images`.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ocr_api.images import purge_older_than


class Command(BaseCommand):
    help = "Delete stored images older than OCR_IMAGE_RETENTION_DAYS (or --days); jobs keep their text."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="retention in days (default: OCR_IMAGE_RETENTION_DAYS; 0 keeps everything)",
        )

    def handle(self, *args, days=None, **options):
        days = settings.OCR_IMAGE_RETENTION_DAYS if days is None else days
        if days < 0:
            raise CommandError("--days must be 0 or more")
        if days == 0:
            self.stdout.write("Retention is 0 (keep images forever); nothing deleted.")
            return
        jobs, files = purge_older_than(days)
        self.stdout.write(f"Cleared the image of {jobs} jobs older than {days} days; deleted {files} files.")
