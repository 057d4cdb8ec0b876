"""Settings for Suanli Exchange: one module, driven by the environment (see README, Configuration).

Local defaults are safe and need nothing set. With ``DJANGO_ENV=production`` the values marked
``required=True`` must be set; a missing one raises ``ImproperlyConfigured`` naming it.
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

from marketplace.core.env import Env, database_from_url, derived_key, read_env_file
from marketplace.core.logs import configure_structlog, structured_formatter

django_stubs_ext.monkeypatch()  # lets runtime code write admin.ModelAdmin[Model] like the stubs

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()
PRODUCTION = env.production
VAR_DIR = Path(env.string("SUANLI_VAR_DIR", str(BASE_DIR / "var")))

# `make run` writes the URLs of the servers it started here, so that `manage.py shell` in another
# terminal finds them. The environment always wins; production never reads the file.
_run_env = {} if PRODUCTION else read_env_file(VAR_DIR / "run.env")

SECRET_KEY = env.string(
    "SECRET_KEY", "insecure-local-development-key-do-not-use-in-production", required=True
)
DEBUG = env.boolean("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.strings(
    "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"], required=True
)
CSRF_TRUSTED_ORIGINS = env.strings("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "ledger",
    "marketplace",
    "matching",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "marketplace.core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "marketplace.core.middleware.DomainErrorMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "marketplace.portal.context_processors.navigation",
            ],
        },
    },
]

# --------------------------------------------------------------------------- data stores

DATABASE_URL = env.string(
    "DATABASE_URL",
    _run_env.get("DATABASE_URL", "postgresql://postgres@localhost/suanli"),
    required=True,
)
_database = database_from_url(DATABASE_URL)
# Server-side parameter binding lets psycopg prepare a statement it has run twice on a
# connection: PostgreSQL stops parsing and planning the same few dozen statements on every
# request (a third of its CPU per placed order). Turn it off behind a pooler in transaction
# mode (PgBouncer before 1.21), which cannot keep prepared statements per session.
if env.boolean("DB_PREPARED_STATEMENTS", True):
    _database["OPTIONS"] = {
        "server_side_binding": True,
        "prepare_threshold": 2,
        **_database["OPTIONS"],
    }
DATABASES = {
    "default": {
        **_database,
        "CONN_MAX_AGE": env.integer("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "ATOMIC_REQUESTS": False,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.string(
    "REDIS_URL", _run_env.get("REDIS_URL", "redis://127.0.0.1:6379/0"), required=True
)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.string("CACHE_KEY_PREFIX", "suanli"),
    }
}

# --------------------------------------------------------------------------- accounts

AUTH_USER_MODEL = "marketplace.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
INVITATION_TTL_DAYS = env.integer("INVITATION_TTL_DAYS", 7)

EMAIL_BACKEND = env.string(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.string("EMAIL_HOST", "localhost", required=True)
EMAIL_PORT = env.integer("EMAIL_PORT", 587)
EMAIL_HOST_USER = env.string("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.string("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.boolean("EMAIL_USE_TLS", PRODUCTION)
DEFAULT_FROM_EMAIL = env.string(
    "DEFAULT_FROM_EMAIL", "Suanli Exchange <noreply@localhost>", required=True
)
SITE_URL = env.string("SITE_URL", "http://127.0.0.1:8000", required=True)

# --------------------------------------------------------------------------- i18n and static

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "static/"
# Front-end libraries are npm dependencies (package.json; `make run`/`make test` install them) and
# are served from node_modules under vendor/, never copied into the repository.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist"),
]
# Production serves collected files (`collectstatic`); development serves them from the finders.
STATIC_ROOT = Path(env.string("STATIC_ROOT", str(BASE_DIR / "staticfiles"))) if PRODUCTION else None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# --------------------------------------------------------------------------- security

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env.boolean("SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --------------------------------------------------------------------------- API

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketplace.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "marketplace.api.pagination.EnvelopeCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "marketplace.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Suanli Exchange API",
    "DESCRIPTION": (
        "Trade and lease compute. Authenticate with `Authorization: Bearer <api key>`. "
        "Every POST that creates something needs an `Idempotency-Key` header."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "marketplace.api.schema.add_examples",
    ],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "marketplace.models.trading.OrderStatus",
        "OfferStatusEnum": "marketplace.models.trading.OfferStatus",
        "QuantityKindEnum": "marketplace.models.trading.QuantityKind",
        "KybStatusEnum": "marketplace.models.accounts.KybStatus",
        "LeaseRoleEnum": "marketplace.leases.queries.LeaseRole",
        "RoleEnum": "marketplace.models.accounts.Role",
        "LeaseStatusEnum": "marketplace.models.leases.LeaseStatus",
    },
}
IDEMPOTENCY_KEY_TTL_HOURS = env.integer("IDEMPOTENCY_KEY_TTL_HOURS", 48)
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60

# --------------------------------------------------------------------------- leases

# A provider may reclaim a lease only with this much notice, and then owes the buyer this share
# (basis points) of the undelivered value on top of the refund.
LEASE_RECLAIM_NOTICE_HOURS = env.integer("LEASE_RECLAIM_NOTICE_HOURS", 1)
LEASE_RECLAIM_PENALTY_BPS = env.integer("LEASE_RECLAIM_PENALTY_BPS", 1000)
# Live leases are settled this often (the beat schedule below); lease pages show when next.
SETTLEMENT_INTERVAL_SECONDS = env.integer("SETTLEMENT_INTERVAL_SECONDS", 3600)

# Outgoing webhooks: a failed POST is retried after 30 s, 60 s, 120 s, ... at most 6 attempts.
WEBHOOK_RETRY_SECONDS = env.integer("WEBHOOK_RETRY_SECONDS", 30)
WEBHOOK_MAX_ATTEMPTS = env.integer("WEBHOOK_MAX_ATTEMPTS", 6)

# --------------------------------------------------------------------------- Celery

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60  # the longest task may run 30 minutes...
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 2 * 60 * 60
}  # ...and is redelivered after 2 h
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "marketplace.tasks.heartbeat",
        "schedule": float(env.integer("HEARTBEAT_INTERVAL_SECONDS", 15)),
    },
    "ledger-seal": {"task": "ledger.tasks.seal", "schedule": 1.0},
    "ledger-void-expired-holds": {"task": "ledger.tasks.void_expired_holds", "schedule": 10.0},
    "market-expiry": {"task": "marketplace.tasks.expire_orders_and_offers", "schedule": 10.0},
    "leases-settle": {
        "task": "marketplace.tasks.settle_leases",
        "schedule": float(SETTLEMENT_INTERVAL_SECONDS),
    },
    "leases-end": {"task": "marketplace.tasks.end_due_leases", "schedule": 30.0},
    # Each market clears at its own interval; the task clears every slot that is due and not done.
    "matching-clear-rounds": {
        "task": "matching.tasks.clear_due_rounds",
        "schedule": float(env.integer("MATCHING_TICK_SECONDS", 5)),
    },
    "purge-idempotency-records": {
        "task": "marketplace.tasks.purge_idempotency_records",
        "schedule": crontab(minute=17),
    },
}
HEARTBEAT_MAX_AGE_SECONDS = env.integer("HEARTBEAT_MAX_AGE_SECONDS", 90)

# --------------------------------------------------------------------------- market

# The reference precision of the standard compute unit: 1 SCU-hour = 1 PFLOP/s for one hour.
SCU_PRECISION = env.string("SCU_PRECISION", "bf16")

# --------------------------------------------------------------------------- matching

# All-or-none and same-pool orders clear through a MIP; past this many seconds its best incumbent
# is kept (European day-ahead practice).
MATCHING_MIP_TIME_LIMIT = float(env.integer("MATCHING_MIP_TIME_LIMIT_SECONDS", 5))
# A bound on the MIP's work too (branch-and-bound nodes; 0: none): unlike the clock, it stops at
# the same incumbent on any machine (``simulate --mip-nodes`` uses it without a time limit).
MATCHING_MIP_NODE_LIMIT = env.integer("MATCHING_MIP_NODE_LIMIT", 0)
# Per-class McAfee trade reduction on top of the equilibrium (truthful for thin books, but it
# drops each class's marginal trade).
MATCHING_TRADE_REDUCTION = env.boolean("MATCHING_TRADE_REDUCTION", False)

# --------------------------------------------------------------------------- ledger

# Base64 of the 32-byte Ed25519 seed that signs ledger checkpoints (development: generated in var/).
LEDGER_SIGNING_KEY = env.string("LEDGER_SIGNING_KEY", "", required=True)
LEDGER_CHECKPOINT_EVERY = env.integer("LEDGER_CHECKPOINT_EVERY", 1000)  # transfers...
LEDGER_CHECKPOINT_SECONDS = env.integer("LEDGER_CHECKPOINT_SECONDS", 60)  # ...or seconds

# --------------------------------------------------------------------------- provider agents

# Fernet key(s) that encrypt the access details agents post for buyers. Several keys may be given,
# comma-separated, to rotate: the first encrypts, any of them decrypts. Development derives one
# from SECRET_KEY (HKDF), so nothing needs setting locally.
LEASE_ACCESS_KEY = env.string("LEASE_ACCESS_KEY", "", required=True) or derived_key(
    SECRET_KEY, "suanli lease access v1"
)
# A metering event may be this late: one dated before the lease's open settlement period (its last
# settlement, or its start) minus the grace is refused as too late; one inside it is an adjustment
# in the next settlement.
METERING_GRACE_SECONDS = env.integer("METERING_GRACE_SECONDS", 3600)

# --------------------------------------------------------------------------- logging

LOG_LEVEL = env.string("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {"()": structured_formatter, "json": PRODUCTION},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
configure_structlog()
