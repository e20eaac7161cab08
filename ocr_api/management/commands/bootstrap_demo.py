"""Create (or reuse) the demo user, print its API token, and make sure a model is active."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from ocr_api.models import ModelVersion
from ocr_api.registry import active_model, register_model


class Command(BaseCommand):
    help = "Create the demo user (staff) with an API token and register the default model."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-password")

    def handle(self, *args, username, password, **options):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(password)
            user.save()
        token, _ = Token.objects.get_or_create(user=user)
        model = active_model()
        student = settings.OCR_MODELS_DIR / "student.onnx"
        if student.exists():  # listed in the registry so an admin can compare and promote it
            register_model(student, kind=ModelVersion.Kind.STUDENT)
        self.stdout.write(f"demo user: {username} / {password if created else '(unchanged password)'}")
        self.stdout.write(f"API token: {token.key}")
        self.stdout.write(f"active model: {model.label}")
