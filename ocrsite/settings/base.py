"""Settings shared by every environment. `local`, `production` and `test` hold only the differences."""

import os
from pathlib import Path

from engine.modelpkg import REFERENCE_FILES

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("OCR_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ocr_api",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ocr_api.metrics.RequestMetrics",
]

ROOT_URLCONF = "ocrsite.urls"
WSGI_APPLICATION = "ocrsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict:
    """SQLite under var/ by default; PostgreSQL when OCR_DB_ENGINE=postgresql."""
    engine = env_str("OCR_DB_ENGINE", "sqlite")
    if engine == "sqlite":
        path = Path(env_str("OCR_SQLITE_PATH", str(VAR_DIR / "ocr.sqlite3")))
        path.parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            # WAL with synchronous=NORMAL: a commit no longer waits for an fsync (about 3.7 ms each here,
            # three per recognised image), and the file cannot be corrupted by any crash; what a power
            # cut can lose is the last commits, as the Redis queue's appendfsync everysec does.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Each web thread and OCR task thread keeps its connection: opening one (and its PRAGMAs)
            # cost ~0.7 ms per request and per task.
            "CONN_MAX_AGE": env_int("OCR_SQLITE_CONN_MAX_AGE", 600, minimum=0),
            "CONN_HEALTH_CHECKS": True,
        }
    if engine == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env_str("POSTGRES_DB", "ocr"),
            "USER": env_str("POSTGRES_USER", "ocr"),
            "PASSWORD": env_str("POSTGRES_PASSWORD", ""),
            "HOST": env_str("POSTGRES_HOST", "localhost"),
            "PORT": env_str("POSTGRES_PORT", "5432"),
            "CONN_MAX_AGE": env_int("POSTGRES_CONN_MAX_AGE", 60, minimum=0),
        }
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"OCR_DB_ENGINE={engine!r}: use sqlite or postgresql")


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
TIME_ZONE = env_str("OCR_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Uploaded images (ocr_api.images): under VAR_DIR/media by default. Every web and OCR worker process
# must reach the same storage; across machines point "ocr_images" at a shared bucket, e.g.
# {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": ...}} (django-storages).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "ocr_images": {"BACKEND": "ocr_api.images.LocalImageStorage"},
}
# Images older than this many days are deleted (`manage.py purge_images`); jobs keep their text. 0 keeps them.
OCR_IMAGE_RETENTION_DAYS = env_int("OCR_IMAGE_RETENTION_DAYS", 0, minimum=0)

STATIC_URL = "/static/"
# Served by WhiteNoise straight from the apps here; production collects them into STATIC_ROOT.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:portal"
LOGOUT_REDIRECT_URL = "frontend:login"

# --- Redis: broker, result notifications, OCR cache, throttling counters -------------
REDIS_URL = env_str("OCR_REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ocrsite",
        # A Redis that does not answer fails the request in seconds (503, Retry-After), not minutes.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    }
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacknowledged message (its worker died) goes back to the queue after this long. Short is safe:
    # a redelivered copy of a job still running under a live worker is refused by the claim (ocr_api.recognition).
    "visibility_timeout": env_int("OCR_VISIBILITY_TIMEOUT_S", 30, minimum=1),
    # How often a worker sweeps for such messages (kombu's default is every ~100 s).
    "unacked_restore_interval": env_int("OCR_UNACKED_RESTORE_INTERVAL_S", 10, minimum=1),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_DEFAULT_QUEUE = "ocr"
CELERY_TASK_ROUTES = {"ocr_api.recognition.*": {"queue": "ocr"}, "ocr_api.tasks.*": {"queue": "training"}}
# The threads pool of the OCR worker enforces neither limit; the soft one is also the recognition deadline
# that ocr_api.recognition enforces itself (checked between stages and batches). See docs/serving.md.
CELERY_TASK_SOFT_TIME_LIMIT = env_float("OCR_TASK_SOFT_TIME_LIMIT_S", 60.0, minimum=0.05)
CELERY_TASK_TIME_LIMIT = env_int("OCR_TASK_TIME_LIMIT_S", 90, minimum=1)
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # JSON bodies; the operations that take files (recognize, batches, dataset uploads) add multipart
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "ocr_api.pagination.JobPagination",
    "EXCEPTION_HANDLER": "ocr_api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["ocr_api.throttling.UserBurstThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OCR platform API",
    "DESCRIPTION": "Text recognition for Chinese and English documents, invoices and signs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # every operation's common error answers (401, 403, 404, 429, 503, 400), ocr_api/schema_hooks.py
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "ocr_api.schema_hooks.document_errors"],
    "ENUM_NAME_OVERRIDES": {
        "ModelKindEnum": "ocr_api.models.ModelVersion.Kind",
        "TrainingJobKindEnum": "ocr_api.models.DistillJob.Kind",
    },
}

# --- OCR ----------------------------------------------------------------------------------------
# Requests per minute per user on the API (0 disables throttling).
OCR_THROTTLE_PER_MINUTE = env_int("OCR_THROTTLE_PER_MINUTE", 600, minimum=0)
# How long POST /recognize waits for the result before answering 202.
OCR_SYNC_TIMEOUT_S = env_float("OCR_SYNC_TIMEOUT_S", 20.0, minimum=0.0)
# Webhooks (ocr_api/webhooks.py, docs/api.md): how long a delivery is retried (with backoff from
# OCR_WEBHOOK_RETRY_BASE_S, doubling, at most OCR_WEBHOOK_RETRY_MAX_S apart), each attempt's timeout,
# and the networks a callback may reach besides public addresses (an admin's allowance, CIDRs
# separated by commas, e.g. "10.0.0.0/8"; none by default: no loopback, private or link-local address).
OCR_WEBHOOK_RETRY_FOR_S = env_float("OCR_WEBHOOK_RETRY_FOR_S", 6 * 3600.0, minimum=0.0)
OCR_WEBHOOK_RETRY_BASE_S = env_float("OCR_WEBHOOK_RETRY_BASE_S", 10.0, minimum=0.01)
OCR_WEBHOOK_RETRY_MAX_S = env_float("OCR_WEBHOOK_RETRY_MAX_S", 1800.0, minimum=0.01)
OCR_WEBHOOK_TIMEOUT_S = env_float("OCR_WEBHOOK_TIMEOUT_S", 10.0, minimum=0.1)
OCR_WEBHOOK_ALLOWED_NETWORKS = [n.strip() for n in env_str("OCR_WEBHOOK_ALLOWED_NETWORKS", "").split(",") if n.strip()]
# The most images or PDFs one POST /ocr/v1/batches may carry.
OCR_MAX_BATCH_ITEMS = env_int("OCR_MAX_BATCH_ITEMS", 50, minimum=1)
# How long an Idempotency-Key on a submission keeps answering with the job it made (docs/api.md).
OCR_IDEMPOTENCY_TTL_H = env_float("OCR_IDEMPOTENCY_TTL_H", 24.0, minimum=0.0)
OCR_MAX_IMAGE_BYTES = env_int("OCR_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
OCR_MAX_PIXELS = env_int("OCR_MAX_PIXELS", 40_000_000, minimum=10_000)
OCR_MIN_SIDE = env_int("OCR_MIN_SIDE", 8, minimum=1)
# A PDF's pages are rendered at 150 dpi; more pages than this are refused (413 too_many_pages).
OCR_MAX_PDF_PAGES = env_int("OCR_MAX_PDF_PAGES", 20, minimum=1)
# Hotwords: a request's (or a portal user's) words and phrases that the beam search favours
# (engine.beam); more words, or longer ones, are refused with 400 bad_hotwords.
OCR_MAX_HOTWORDS = env_int("OCR_MAX_HOTWORDS", 200, minimum=0)
OCR_HOTWORD_MAX_CHARS = env_int("OCR_HOTWORD_MAX_CHARS", 50, minimum=1)
# Base64 inflates by 4/3; leave room for the JSON around it.
DATA_UPLOAD_MAX_MEMORY_SIZE = OCR_MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = OCR_MAX_IMAGE_BYTES + 64 * 1024
OCR_CACHE_TTL_S = env_int("OCR_CACHE_TTL_S", 7 * 24 * 3600, minimum=0)
OCR_BINARIZE = env_bool("OCR_BINARIZE", False)
# Blurred lines sharpened before recognition (engine.preprocess.sharpen_blurred; docs/serving.md).
OCR_SHARPEN = env_bool("OCR_SHARPEN", True)
# The dynamic batcher inside each OCR worker process: off by default (1 line per run, in the task's
# own thread), which measured faster on CPUs than any batching setting (docs/serving.md). These are
# the batcher's only defaults (engine.batcher.LineBatcher repeats them; a test holds them equal).
OCR_BATCH_MAX_SIZE = env_int("OCR_BATCH_MAX_SIZE", 1, minimum=1)
OCR_BATCH_MAX_WAIT_MS = env_float("OCR_BATCH_MAX_WAIT_MS", 0.0, minimum=0.0)
OCR_BATCH_MAX_WIDTH_RATIO = env_float("OCR_BATCH_MAX_WIDTH_RATIO", 1.15, minimum=1.0)
# Threads of each ONNX Runtime session (0: ONNX Runtime's default, all cores). Two that sleep between
# runs (engine/sessions.py) read a page a quarter faster at one client and lose nothing at 8 or 32
# clients against one per session (docs/serving.md).
OCR_ORT_THREADS = env_int("OCR_ORT_THREADS", min(2, os.cpu_count() or 1), minimum=0)
OCR_TASK_SOFT_TIME_LIMIT_S = CELERY_TASK_SOFT_TIME_LIMIT
# Model files; the registry's active ModelVersion wins, this is the fallback when none is registered.
OCR_MODELS_DIR = Path(env_str("OCR_MODELS_DIR", str(BASE_DIR / "models")))
OCR_DEFAULT_MODEL = env_str("OCR_DEFAULT_MODEL", "")
# The text detector and the 180° line classifier of whole pages (docs/serving.md); an empty
# value turns each off (the detector off: the projection line finder reads every image).
OCR_DETECTOR_MODEL = env_str("OCR_DETECTOR_MODEL", str(OCR_MODELS_DIR / REFERENCE_FILES["ppocrv6-tiny-det"]))
OCR_DIRECTION_MODEL = env_str("OCR_DIRECTION_MODEL", str(OCR_MODELS_DIR / REFERENCE_FILES["ppocr-mobile-cls"]))
# The teacher cascade (docs/serving.md "The teacher cascade"): a line the served recogniser reads with a
# confidence below OCR_CASCADE_BELOW is read again by this stronger, slower recogniser in the same
# worker (empty: off). 0.7 was chosen on the out-of-distribution suite's photographed lines.
OCR_CASCADE_MODEL = env_str("OCR_CASCADE_MODEL", str(OCR_MODELS_DIR / REFERENCE_FILES["ppocrv6-small"]))
OCR_CASCADE_BELOW = env_float("OCR_CASCADE_BELOW", 0.8, minimum=0.0)
# Decoding (engine.decoder, docs/serving.md "Language-aware decoding"): "beam" sends the lines
# where some step was in doubt (a winner below 1 - OCR_BEAM_DOUBT) through the CTC prefix beam search
# with the character language model; "greedy" reads every line greedily. Lines of a request with
# hotwords always go through the beam. The weights were tuned on the out-of-distribution suite.
OCR_DECODER = env_str("OCR_DECODER", "beam")
OCR_LM_MODEL = env_str("OCR_LM_MODEL", str(OCR_MODELS_DIR / "lm" / "zh_char5.arpa.gz"))
OCR_LM_ALPHA = env_float("OCR_LM_ALPHA", 0.3, minimum=0.0)
OCR_LM_BETA = env_float("OCR_LM_BETA", 2.5)
OCR_BEAM_WIDTH = env_int("OCR_BEAM_WIDTH", 8, minimum=1)
OCR_BEAM_DOUBT = env_float("OCR_BEAM_DOUBT", 0.2, minimum=0.0)
OCR_HOTWORD_BONUS = env_float("OCR_HOTWORD_BONUS", 4.0, minimum=0.0)
# How often a worker looks for a newly promoted model.
OCR_MODEL_POLL_S = env_float("OCR_MODEL_POLL_S", 2.0, minimum=0.1)
# A worker is "alive" while its heartbeat key is younger than this.
OCR_WORKER_HEARTBEAT_TTL_S = env_int("OCR_WORKER_HEARTBEAT_TTL_S", 15, minimum=2)
# Every OCR worker sweeps this often for jobs to send again: running under a worker whose heartbeat is
# gone, or queued for longer than OCR_REQUEUE_AFTER_S (a lost message). The claim drops duplicates.
OCR_RECOVERY_SWEEP_S = env_float("OCR_RECOVERY_SWEEP_S", 5.0, minimum=0.2)
OCR_REQUEUE_AFTER_S = env_int("OCR_REQUEUE_AFTER_S", 60, minimum=1)
# Recycling (workers/launcher.py): an OCR worker started by the launcher is replaced, without a gap,
# after this many recognition tasks or once its RSS passes this many MiB (0: never).
OCR_WORKER_MAX_TASKS = env_int("OCR_WORKER_MAX_TASKS", 0, minimum=0)
OCR_WORKER_MAX_RSS_MB = env_int("OCR_WORKER_MAX_RSS_MB", 1500, minimum=0)

# Training jobs (the "training" queue).
OCR_TRAIN_THREADS = env_int("OCR_TRAIN_THREADS", 2, minimum=1)
OCR_TRAIN_POLL_S = env_float("OCR_TRAIN_POLL_S", 2.0, minimum=0.1)
# The promotion gate (ocr_api/reports.py): the frozen suite every registered model is evaluated on
# (labels.tsv folders, `make ood-suite`), the lines read per subset (0: all), and how many points a
# candidate may read less than the active model on any subset.
OCR_EVAL_SUITE_DIR = Path(env_str("OCR_EVAL_SUITE_DIR", str(BASE_DIR / "data" / "ood")))
OCR_EVAL_LINES = env_int("OCR_EVAL_LINES", 0, minimum=0)
# GET /metrics answers staff, and a scraper sending "Authorization: Bearer <this>" when it is set
OCR_METRICS_TOKEN = env_str("OCR_METRICS_TOKEN", "")
# the frozen page suite (make ood-pages); each report reads it too where it exists
OCR_EVAL_PAGES_DIR = Path(env_str("OCR_EVAL_PAGES_DIR", str(BASE_DIR / "data" / "ood_pages")))
OCR_PROMOTION_MARGIN = env_float("OCR_PROMOTION_MARGIN", 0.3, minimum=0.0)
OCR_TRAIN_STALE_S = env_int("OCR_TRAIN_STALE_S", 180, minimum=10)
OCR_DEV_SET_SIZE = env_int("OCR_DEV_SET_SIZE", 300, minimum=10)
OCR_MAX_DATASET_BYTES = env_int("OCR_MAX_DATASET_BYTES", 512 * 1024 * 1024, minimum=1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("OCR_LOG_LEVEL", "INFO")},
}
