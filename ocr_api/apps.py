from django.apps import AppConfig


class OcrApiConfig(AppConfig):
    name = "ocr_api"
    verbose_name = "OCR"
