from django.apps import AppConfig


class OcrApiConfig(AppConfig):
    name = "ocr_api"
    verbose_name = "OCR"

    def ready(self) -> None:
        from . import images  # noqa: F401 - connects the receiver that releases a deleted job's image
