"""The OCR engine: image in, lines of text out. Plain functions and classes over NumPy arrays,
OpenCV and ONNX Runtime; no Django, Celery, PyTorch or ``ocr_api`` import (tests/workers/
test_engine_imports.py checks it), so the web and queue layers call it and never the other way."""
