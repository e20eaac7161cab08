"""The test suite: a throw-away SQLite file per run, small limits so edge cases are cheap to hit."""

import os

from .base import *  # noqa: F403
from .base import DATABASES

SECRET_KEY = "test-only"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A file (not :memory:) so that real worker processes share the database with the test process.
# On PostgreSQL (scripts/with-postgres.sh sets OCR_DB_ENGINE), Django makes its own test database.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    TEST_SQLITE_PATH = os.environ.setdefault("OCR_TEST_SQLITE_PATH", f"/tmp/ocr-test-{os.getpid()}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": TEST_SQLITE_PATH}
OCR_SYNC_TIMEOUT_S = float(os.environ.get("OCR_SYNC_TIMEOUT_S", "20"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# One private Redis per test run (tests/conftest.py starts it); worker subprocesses inherit the port.
_REDIS_PORT = os.environ.setdefault("OCR_TEST_REDIS_PORT", str(_free_port()))
REDIS_URL = f"redis://127.0.0.1:{_REDIS_PORT}/0"
CELERY_BROKER_URL = REDIS_URL
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
# Tests serve what a deployment serves by default (ocr_api.registry.DEFAULT_CANDIDATES: PP-OCRv6
# tiny); OCR_DEFAULT_MODEL=models/student.onnx (or any packaged model) runs them on another one.
OCR_DEFAULT_MODEL = os.environ.get("OCR_DEFAULT_MODEL", "")
OCR_MODEL_POLL_S = float(os.environ.get("OCR_MODEL_POLL_S", "0.5"))
# Training runs, datasets and registered models of the test run go to a throw-away folder,
# shared with the worker processes through the environment.
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

VAR_DIR = Path(os.environ.setdefault("OCR_VAR_DIR", tempfile.mkdtemp(prefix="ocr-test-var-")))
OCR_DEV_SET_SIZE = int(os.environ.get("OCR_DEV_SET_SIZE", "16"))
OCR_TRAIN_THREADS = int(os.environ.get("OCR_TRAIN_THREADS", "1"))
OCR_TRAIN_POLL_S = float(os.environ.get("OCR_TRAIN_POLL_S", "0.5"))

# No frozen suite unless a test names one: registering a model in a test must not start a
# 1,300-line evaluation in the training worker.
OCR_EVAL_SUITE_DIR = Path(os.environ.get("OCR_EVAL_SUITE_DIR", str(Path(tempfile.gettempdir()) / "ocr-test-no-suite")))
OCR_EVAL_PAGES_DIR = Path(os.environ.get("OCR_EVAL_PAGES_DIR", str(Path(tempfile.gettempdir()) / "ocr-test-no-pages")))
