"""One machine: `make run`. Debug on, a development secret unless one is given."""

from .base import *  # noqa: F403
from .env import env_bool, env_str

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-development-only-not-secret")
