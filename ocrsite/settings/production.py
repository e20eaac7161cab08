"""Production: everything sensitive comes from the environment; nothing insecure by default.

The site is served over HTTPS, with TLS ended at a proxy or load balancer that sets
X-Forwarded-Proto. `manage.py check --deploy` is clean with DJANGO_SECRET_KEY (50+ random
characters), DJANGO_ALLOWED_HOSTS and DJANGO_HSTS_PRELOAD=true (docs/running.md).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BASE_DIR, SECRET_KEY
from .env import env_bool, env_int, env_str

if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")

DEBUG = False
STATIC_ROOT = env_str("OCR_STATIC_ROOT", str(BASE_DIR / "staticfiles"))
WHITENOISE_USE_FINDERS = False

# --- HTTPS ---------------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
# Load balancers probe over plain HTTP on the internal network; a redirect would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^ocr/v1/health$"]
# Strict-Transport-Security: one year, subdomains included. DJANGO_HSTS_SECONDS=0 turns it off
# (e.g. while trying TLS out); preloading is a commitment to the browsers' list, so it is opt-in.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)

# --- cookies: only over HTTPS, never readable by scripts for the session ------------------------
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- headers -------------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
