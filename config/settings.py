"""Custos settings: one file, every value from the environment (see README, "Configuration")."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.utils.csp import CSP

from config.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_duration,
    env_int,
    env_list,
    env_str,
)

# Lets classes such as ModelAdmin take type parameters at run time, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CUSTOS_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if not DEBUG and len(key) < 50:
            raise ImproperlyConfiguredEnv("SECRET_KEY must be at least 50 characters when DEBUG is off")
        return key
    if not DEBUG:
        raise ImproperlyConfiguredEnv("SECRET_KEY is required when DEBUG is off")
    # Development only: a random key kept in an ignored file so sessions survive restarts.
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "console",
    "audit",
    "governance",
    "scim",
    "reviews",
    "custody",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.roles_of_viewer",
                "governance.context_processors.console",
                "reviews.context_processors.console",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'custos.sqlite3'}") or ""
try:
    _db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL))
except ValueError as exc:
    raise ImproperlyConfiguredEnv(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_MAX_AGE"] = env_int("CUSTOS_DB_CONN_MAX_AGE", 600, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    _db["OPTIONS"] = {
        # Server-side binding lets psycopg prepare statements; Django's default (client-side binding)
        # never prepares, which costs about 3x on the short queries of the hot paths.
        # Turn off with CUSTOS_DB_PREPARE=false behind a transaction-pooling PgBouncer.
        "server_side_binding": env_bool("CUSTOS_DB_PREPARE", True),
        "prepare_threshold": 1 if env_bool("CUSTOS_DB_PREPARE", True) else None,
    }
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE: a writing transaction takes the write lock when it begins, so two writers queue
    # instead of failing with "database is locked" when one upgrades from read to write.
    _db["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
else:
    raise ImproperlyConfiguredEnv("DATABASE_URL must point to PostgreSQL (postgres://) or SQLite (sqlite://)")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker -----------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The broker defaults to REDIS_URL's Redis; CUSTOS_BROKER_URL puts it elsewhere (another Redis database or
# server), e.g. to keep the cache's evictions and flushes away from queued tasks.
CELERY_BROKER_URL = env_str("CUSTOS_BROKER_URL", REDIS_URL) or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (remote control) messages; kombu's default is a "control" folder in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"

# --- Auth and sessions ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "login"

SECURE = not DEBUG and env_bool("CUSTOS_SECURE", True)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE and env_bool("CUSTOS_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("CUSTOS_HSTS_SECONDS", 31_536_000 if SECURE else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (Django's own): the console loads only its own scripts, styles and images, and
# runs no inline script, inline style or eval (htmx is configured accordingly in base.html). The API's
# docs page relaxes styles for Swagger UI (config/urls.py).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("CUSTOS_STATIC_ROOT", str(VAR_DIR / "staticfiles")) or "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("CUSTOS_MANIFEST_STATIC", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.api.auth.ApiTokenAuthentication",
        # Agents' keys and delegation tokens; before the session so a bearer presented wins over a cookie.
        "governance.api.auth.AgentAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Custos API",
    "DESCRIPTION": "Governance of AI-agent identities: humans, agents, resources, grants, delegations, keys.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models share a choice set (grant/delegation/key status; risk tier/sensitivity): one name each.
    "ENUM_NAME_OVERRIDES": {
        "HumanStatusEnum": "governance.models.HumanStatus",
        "AgentStatusEnum": "governance.models.AgentStatus",
        "LifecycleStatusEnum": "governance.models.GrantStatus",
        "LevelEnum": "governance.models.Sensitivity",
        "AccessRequestStatusEnum": "governance.models.AccessRequestStatus",
        "ResourceKindEnum": "governance.models.ResourceKind",
        "CampaignKindEnum": "reviews.models.CampaignKind",
        "ReviewItemKindEnum": "reviews.models.ItemKind",
        "ReviewDecisionEnum": "reviews.models.Decision",
    },
    # The interactive page loads Swagger UI from the vendored copy (static/vendor/swagger-ui, see its
    # VERSION file), never from a CDN, so /api/docs/ works offline and behind strict egress rules.
    "SWAGGER_UI_DIST": f"/{STATIC_URL.strip('/')}/vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": f"/{STATIC_URL.strip('/')}/vendor/swagger-ui/favicon-32x32.png",
}

# --- Custos policy --------------------------------------------------------------------------
# Upper bounds: a request for longer is refused with a clear error, never silently shortened.
CUSTOS_GRANT_MAX_LIFETIME = env_duration("CUSTOS_GRANT_MAX_LIFETIME", "90d")
CUSTOS_DELEGATION_MAX_LIFETIME = env_duration("CUSTOS_DELEGATION_MAX_LIFETIME", "30d")
CUSTOS_DELEGATION_MAX_DEPTH = env_int("CUSTOS_DELEGATION_MAX_DEPTH", 3, minimum=0, maximum=10)
CUSTOS_KEY_TTL = env_duration("CUSTOS_KEY_TTL", "30d")
CUSTOS_KEY_MAX_TTL = env_duration("CUSTOS_KEY_MAX_TTL", "90d")
# On rotation the old key keeps working for at most this long (never longer than it already would).
CUSTOS_KEY_ROTATION_OVERLAP = env_duration("CUSTOS_KEY_ROTATION_OVERLAP", "1h")
# Key hygiene (governance.services.keys.agentkey_hygiene, daily): an active key unused this many days (or
# never used, created that long ago) is stale; one older than CUSTOS_KEY_MAX_AGE is due for rotation.
# Stale keys are revoked only when CUSTOS_KEY_AUTO_REVOKE_STALE is true; otherwise they are reported.
CUSTOS_KEY_STALE_DAYS = env_int("CUSTOS_KEY_STALE_DAYS", 30, minimum=1)
CUSTOS_KEY_MAX_AGE = env_duration("CUSTOS_KEY_MAX_AGE", "90d")
CUSTOS_KEY_AUTO_REVOKE_STALE = env_bool("CUSTOS_KEY_AUTO_REVOKE_STALE", False)
# Rotation reminders (reviews.services.key_reminders, daily): a key's sponsor is told, once per key and
# reason, that it expires within this notice, is past CUSTOS_KEY_MAX_AGE, or is stale.
CUSTOS_KEY_ROTATION_NOTICE = env_duration("CUSTOS_KEY_ROTATION_NOTICE", "14d")
# Keyed hashes of agent keys and API tokens use this pepper (defaults to one derived from SECRET_KEY),
# so a stolen database alone does not let anyone test guesses offline.
CUSTOS_CREDENTIAL_PEPPER = env_str("CUSTOS_CREDENTIAL_PEPPER", SECRET_KEY) or SECRET_KEY

# Delegation tokens (RFC 8693 token exchange).
CUSTOS_ISSUER = env_str("CUSTOS_ISSUER", "http://127.0.0.1:8000") or ""
CUSTOS_TOKEN_LIFETIME = env_duration("CUSTOS_TOKEN_LIFETIME", "10m")
CUSTOS_TOKEN_MAX_LIFETIME = env_duration("CUSTOS_TOKEN_MAX_LIFETIME", "60m")
CUSTOS_TOKEN_LEEWAY = env_duration("CUSTOS_TOKEN_LEEWAY", "30s")
CUSTOS_SIGNING_KEY_ROTATION = env_duration("CUSTOS_SIGNING_KEY_ROTATION", "30d")
# Signing keys' private halves are encrypted at rest with a key derived from this secret.
CUSTOS_KEY_ENCRYPTION_SECRET = env_str("CUSTOS_KEY_ENCRYPTION_SECRET", SECRET_KEY) or SECRET_KEY
# Just-in-time access requests and drift detection.
CUSTOS_JIT_DEFAULT_LIFETIME = env_duration("CUSTOS_JIT_DEFAULT_LIFETIME", "15m")
CUSTOS_JIT_MAX_LIFETIME = env_duration("CUSTOS_JIT_MAX_LIFETIME", "60m")
CUSTOS_JIT_REQUEST_TTL = env_duration("CUSTOS_JIT_REQUEST_TTL", "15m")
CUSTOS_DRIFT_THRESHOLD = env_int("CUSTOS_DRIFT_THRESHOLD", 5, minimum=1)
CUSTOS_DRIFT_WINDOW = env_duration("CUSTOS_DRIFT_WINDOW", "10m")
# The runtime check keeps the state it read between checks, confirmed unchanged by its own write (on
# PostgreSQL only). Off: every check reads the state afresh (one more round trip).
CUSTOS_CHECK_STATE_CACHE = env_bool("CUSTOS_CHECK_STATE_CACHE", True)
# Checks whose credential identifies no agent: per client address and window, the first of each kind is
# recorded in full and the rest counted into one summary event; past the limit the check answers 429.
CUSTOS_CHECK_REPEAT_WINDOW = env_duration("CUSTOS_CHECK_REPEAT_WINDOW", "1m")
CUSTOS_CHECK_INVALID_LIMIT = env_int("CUSTOS_CHECK_INVALID_LIMIT", 600, minimum=1)
# The audit log's sealer: how often it looks for new events when idle, and how old an unsealed event
# may grow before verification reports it (and operators should be alerted).
CUSTOS_AUDIT_SEAL_INTERVAL = env_duration("CUSTOS_AUDIT_SEAL_INTERVAL", "100ms")
CUSTOS_AUDIT_MAX_SEAL_DELAY = env_duration("CUSTOS_AUDIT_MAX_SEAL_DELAY", "30s")
# Signed checkpoints of the chain: the signing key is derived from this secret (never stored), copies go
# to the directory (and the witness) where a database-only attacker cannot reach them.
CUSTOS_AUDIT_CHECKPOINT_SECRET = env_str("CUSTOS_AUDIT_CHECKPOINT_SECRET", SECRET_KEY) or SECRET_KEY
CUSTOS_AUDIT_CHECKPOINT_DIR = (
    env_str("CUSTOS_AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "checkpoints") if DEBUG else "") or ""
)
CUSTOS_AUDIT_CHECKPOINT_INTERVAL = env_duration("CUSTOS_AUDIT_CHECKPOINT_INTERVAL", "5m")
CUSTOS_AUDIT_WITNESS_URL = env_str("CUSTOS_AUDIT_WITNESS_URL", "") or ""
# Fingerprints of earlier checkpoint keys (after CUSTOS_AUDIT_CHECKPOINT_SECRET changed) whose checkpoints
# still count. The current key is always trusted; nothing the database holds is.
CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS = env_list("CUSTOS_AUDIT_CHECKPOINT_TRUSTED_KEYS", [])
# Access reviews: a scope unused this many days is advised for revocation; access this close to its end
# opens a "renew?" item, and a renewal lasts this long (within the grant and delegation maxima);
# micro-reviews (drift, a sponsor gone, a used just-in-time grant, a leaked key) are due this soon; a
# decision faster than this after the item was opened counts towards the rubber-stamp signals.
# Expiry sweeps: how many sweep at once in one job (threads, each with its own connection; PostgreSQL).
CUSTOS_SWEEPERS = env_int("CUSTOS_SWEEPERS", 2, minimum=1, maximum=8)
CUSTOS_REVIEW_UNUSED_DAYS = env_int("CUSTOS_REVIEW_UNUSED_DAYS", 60, minimum=1)
CUSTOS_RECERT_LEAD_TIME = env_duration("CUSTOS_RECERT_LEAD_TIME", "7d")
CUSTOS_RECERT_RENEWAL = env_duration("CUSTOS_RECERT_RENEWAL", "30d")
CUSTOS_MICRO_REVIEW_DUE = env_duration("CUSTOS_MICRO_REVIEW_DUE", "7d")
CUSTOS_RUBBER_STAMP_SECONDS = env_int("CUSTOS_RUBBER_STAMP_SECONDS", 5, minimum=1)
# Reminder and escalation emails (Django's email framework): printed to the console under DEBUG
# (make run), sent over SMTP otherwise.
_MAIL_BACKEND = env_str(
    "CUSTOS_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS: dict[str, Any] = {"default": {"BACKEND": _MAIL_BACKEND}}
if _MAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend":
    MAILERS["default"]["OPTIONS"] = {
        "host": env_str("EMAIL_HOST", "localhost") or "localhost",
        "port": env_int("EMAIL_PORT", 25, minimum=1, maximum=65535),
        "username": env_str("EMAIL_HOST_USER", "") or "",
        "password": env_str("EMAIL_HOST_PASSWORD", "") or "",
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": 10,
    }
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "custos@localhost") or "custos@localhost"
# Console sign-in: failures per username, then per client address, within the lockout window.
CUSTOS_LOGIN_FAILURE_LIMIT = env_int("CUSTOS_LOGIN_FAILURE_LIMIT", 5, minimum=1)
CUSTOS_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("CUSTOS_LOGIN_ADDRESS_FAILURE_LIMIT", 100, minimum=1)
CUSTOS_LOGIN_LOCKOUT = env_duration("CUSTOS_LOGIN_LOCKOUT", "15m")
if CUSTOS_TOKEN_LIFETIME > CUSTOS_TOKEN_MAX_LIFETIME:
    raise ImproperlyConfiguredEnv("CUSTOS_TOKEN_LIFETIME must not exceed CUSTOS_TOKEN_MAX_LIFETIME")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CUSTOS_LOG_LEVEL", "INFO")},
    # HTTP and MCP client libraries log every request and session at INFO (the demo's MCP server and
    # simulated agents make several a second): only their warnings are worth a line.
    "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2", "mcp", "fastmcp")},
}
