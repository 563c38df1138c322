"""Settings for supportdesk: one module, driven by the environment (see README)."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from supportdesk.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_origins,
    env_slugs,
    env_str,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Sites that embed the widget from this server (supportdesk/cors.py): the customer API
# answers them with CORS headers and the customer socket accepts them. Empty: same origin.
SUPPORTDESK_WIDGET_ORIGINS = env_origins("SUPPORTDESK_WIDGET_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "threads",
    "escalations",
    "approvals",
    "supportdesk.agent",
]

MIDDLEWARE = [
    "supportdesk.cors.WidgetCorsMiddleware",
    "supportdesk.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "supportdesk.urls"
WSGI_APPLICATION = "supportdesk.wsgi.application"
ASGI_APPLICATION = "supportdesk.asgi.application"

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL, base_dir=str(BASE_DIR))}
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {"default": sqlite_database(str(BASE_DIR / "var" / "db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels and cache ---------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 2000, minimum=10)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis with one reader per process (fan-out, Redis failures).
            "BACKEND": "supportdesk.layers.RedisChannelLayer",
            "CONFIG": {
                # redis-py's async pool defaults to 100 connections and raises when
                # exhausted; every websocket holds one while it listens.
                # No socket timeout: redis-py 8's default (5 s) equals channels-redis's
                # blocking BZPOPMIN, so idle receives time out, and with a timeout every
                # send goes through asyncio.wait_for, which on Python 3.11 can swallow the
                # cancellation of a closing socket's receive (the consumer never ends).
                # Dead servers are found by TCP keepalive, on by default.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": REDIS_MAX_CONNECTIONS,
                        "socket_timeout": None,
                    }
                ],
                # Several deployments (or test runs) can share one Redis with their own prefix.
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "asgi"),
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            # clear() deletes this cache's keys only, never the layer's (supportdesk/cache.py).
            "BACKEND": "supportdesk.cache.PrefixedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "supportdesk"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Tasks --------------------------------------------------------------------------
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Auth, i18n, static ------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG and bool(CSRF_TRUSTED_ORIGINS))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Request bodies are capped here and again in BodySizeLimitMiddleware (413 for the API).
SUPPORTDESK_MAX_BODY_BYTES = 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = SUPPORTDESK_MAX_BODY_BYTES

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first so that unauthenticated requests get 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["supportdesk.permissions.IsStaffAgent"],
    "DEFAULT_PARSER_CLASSES": ["supportdesk.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "supportdesk.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "supportdesk.schema.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "supportdesk API",
    "DESCRIPTION": "Customer and staff API of the supportdesk human-in-the-loop support desk.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status"; name each choice set instead of a hashed name.
    "ENUM_NAME_OVERRIDES": {
        "ThreadStatusEnum": "threads.models.ThreadStatus",
        "StaffThreadStatusEnum": ["open", "resolved", "closed"],
        "EscalationStatusEnum": "escalations.models.EscalationStatus",
        "EscalationSourceEnum": "escalations.models.EscalationSource",
        "HumanRequestStatusEnum": "escalations.models.HumanRequestStatus",
        "DraftStatusEnum": "approvals.models.DraftStatus",
        "DraftKindEnum": "approvals.models.DraftKind",
        "RejectNextEnum": "approvals.models.RejectNext",
    },
}

# --- Product settings -------------------------------------------------------------
SUPPORTDESK_AI_MODE = env_choice("SUPPORTDESK_AI_MODE", "auto", ("auto", "draft"))
SUPPORTDESK_ESCALATION_THRESHOLD = env_float("SUPPORTDESK_ESCALATION_THRESHOLD", 0.7, minimum=0)
SUPPORTDESK_LLM_TIMEOUT = env_float("SUPPORTDESK_LLM_TIMEOUT", 30.0, minimum=0.1)
SUPPORTDESK_LLM = env_choice(
    "SUPPORTDESK_LLM", "openai" if env_str("OPENAI_API_KEY") else "offline", ("offline", "openai")
)
SUPPORTDESK_MODEL = env_str("SUPPORTDESK_MODEL", "gpt-4o-mini")
SUPPORTDESK_CLASSIFIER_MODEL = env_str("SUPPORTDESK_CLASSIFIER_MODEL")
SUPPORTDESK_AI_NAME = env_str("SUPPORTDESK_AI_NAME", "AI assistant")
SUPPORTDESK_IDEMPOTENCY_TTL_SECONDS = 24 * 3600
SUPPORTDESK_LLM_MAX_RETRIES = env_int("SUPPORTDESK_LLM_MAX_RETRIES", 3, minimum=0)
SUPPORTDESK_LLM_STREAM = env_bool("SUPPORTDESK_LLM_STREAM", True)
# Seconds before the first retry of a failed model call; doubles each retry (with jitter).
SUPPORTDESK_LLM_BACKOFF = env_float("SUPPORTDESK_LLM_BACKOFF", 0.5, minimum=0.0)
# A tool the model must call before it answers, e.g. search_knowledge to ground every
# reply in the knowledge base; empty: the model chooses. Small models rarely call tools
# unprompted; a server that ignores tool_choice "required" (llama.cpp's may) is asked
# for the tool's arguments as structured output instead.
SUPPORTDESK_LLM_FIRST_TOOL = env_choice(
    "SUPPORTDESK_LLM_FIRST_TOOL", "", ("", "search_knowledge", "escalate", "ask_human")
)
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
# The router chain: each step may decide who responds; the first decision wins.
SUPPORTDESK_ROUTER_STEPS = [
    "supportdesk.agent.router.AssignmentStep",
    "supportdesk.agent.router.RulesStep",
    "supportdesk.agent.router.ClassifierStep",
]
SUPPORTDESK_BLOCKED_TOPICS = env_list(
    "SUPPORTDESK_BLOCKED_TOPICS",
    ["lawsuit", "lawyer", "legal action", "chargeback", "data breach", "self-harm"],
)
# What a customer message is about, for routing (RoutingRule.topic): the classifier
# model names one of these; offline, the best-matching article's category does.
SUPPORTDESK_TOPICS = env_slugs(
    "SUPPORTDESK_TOPICS",
    ["orders", "shipping", "returns", "billing", "account", "product"],
    reserved=("ai", "human", "none"),
)
SUPPORTDESK_MAX_STEPS = env_int("SUPPORTDESK_MAX_STEPS", 6, minimum=1)
SUPPORTDESK_TURN_MAX_ATTEMPTS = env_int("SUPPORTDESK_TURN_MAX_ATTEMPTS", 3, minimum=1)
# A worker must renew its lease within this time or the sweeper re-queues its turn.
SUPPORTDESK_TURN_LEASE_SECONDS = env_int("SUPPORTDESK_TURN_LEASE_SECONDS", 90, minimum=1)
# The model sees the newest SUPPORTDESK_CONTEXT_WINDOW public messages verbatim and a
# short extractive summary of everything older: small enough that a turn at message 500
# costs about what one at message 10 does.
SUPPORTDESK_CONTEXT_WINDOW = env_int("SUPPORTDESK_CONTEXT_WINDOW", 8, minimum=2)
SUPPORTDESK_SUMMARY_MAX_CHARS = env_int("SUPPORTDESK_SUMMARY_MAX_CHARS", 400, minimum=100)
SUPPORTDESK_DRAFT_TTL_SECONDS = env_int("SUPPORTDESK_DRAFT_TTL_SECONDS", 3600, minimum=1)
# Copilot: when a human owns a thread, the AI drafts a suggested reply for them.
SUPPORTDESK_COPILOT = env_bool("SUPPORTDESK_COPILOT", True)
SUPPORTDESK_HUMAN_REQUEST_TTL_SECONDS = env_int(
    "SUPPORTDESK_HUMAN_REQUEST_TTL_SECONDS", 1800, minimum=1
)
# Escalations the auto-assigner hands one agent at once (AgentProfile.max_open overrides).
SUPPORTDESK_AGENT_CAPACITY = env_int("SUPPORTDESK_AGENT_CAPACITY", 5, minimum=1)
SUPPORTDESK_WORKER_POLL_SECONDS = env_float("SUPPORTDESK_WORKER_POLL_SECONDS", 0.05, minimum=0.0)
# USD per million tokens: (prompt, completion). Override with SUPPORTDESK_MODEL_PRICES as
# JSON, e.g. {"my-model": [0.2, 0.8]}.
SUPPORTDESK_MODEL_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "kb-bm25": (0.0, 0.0),
}
_price_override = env_str("SUPPORTDESK_MODEL_PRICES")
if _price_override:
    import json as _json

    try:
        SUPPORTDESK_MODEL_PRICES.update(
            {name: (float(p[0]), float(p[1])) for name, p in _json.loads(_price_override).items()}
        )
    except (ValueError, TypeError, IndexError, AttributeError):
        raise ImproperlyConfigured(
            'SUPPORTDESK_MODEL_PRICES must be JSON like {"model": [0.1, 0.4]}.'
        ) from None

# Rate limits: "<count>/<seconds>" per key; SUPPORTDESK_RATE_LIMITS=off disables all.
SUPPORTDESK_RATE_LIMITS_ENABLED = env_str("SUPPORTDESK_RATE_LIMITS", "on") != "off"
SUPPORTDESK_RATE_LIMITS = {
    "message_per_thread": env_str("SUPPORTDESK_RATE_MESSAGE_PER_THREAD", "20/60"),
    "message_per_ip": env_str("SUPPORTDESK_RATE_MESSAGE_PER_IP", "120/60"),
    "thread_create_per_ip": env_str("SUPPORTDESK_RATE_THREAD_CREATE_PER_IP", "30/60"),
    "login_per_ip": env_str("SUPPORTDESK_RATE_LOGIN_PER_IP", "20/60"),
    "handoff_per_thread": env_str("SUPPORTDESK_RATE_HANDOFF_PER_THREAD", "5/3600"),
}
# Number of proxies in front of us whose X-Forwarded-For we trust (0: use REMOTE_ADDR).
SUPPORTDESK_TRUSTED_PROXIES = env_int("SUPPORTDESK_TRUSTED_PROXIES", 0, minimum=0)

# Only for bench/: exposes a bare authenticated POST endpoint to compare against.
SUPPORTDESK_BENCH_ENDPOINTS = env_bool("SUPPORTDESK_BENCH_ENDPOINTS", False)

# --- Customers: tiers and identity verification ----------------------------------------
# Routing tiers (RoutingRule.tier); the first is every new customer's. Only staff and a
# signed identity set a customer's tier (threads/identity.py), never the customer.
SUPPORTDESK_CUSTOMER_TIERS = env_slugs(
    "SUPPORTDESK_CUSTOMER_TIERS", ["standard", "priority", "vip"], required=True
)
# The embedding site's backend signs a customer's external_id (and tier) with this
# secret (HMAC-SHA256); unset, signed customers are refused. The previous secret is
# accepted as well while a new one is rolled out.
SUPPORTDESK_IDENTITY_SECRET = env_str("SUPPORTDESK_IDENTITY_SECRET")
SUPPORTDESK_IDENTITY_SECRET_PREVIOUS = env_str("SUPPORTDESK_IDENTITY_SECRET_PREVIOUS")
if any(
    secret is not None and len(secret) < 32
    for secret in (SUPPORTDESK_IDENTITY_SECRET, SUPPORTDESK_IDENTITY_SECRET_PREVIOUS)
):
    raise ImproperlyConfigured("Identity verification secrets must be at least 32 characters.")

# --- Human operations: escalation limits, handoff summaries, notifications, usage ------
# Token buckets "<count>/<seconds>" ("off" disables one); beyond them an escalation is
# still opened but marked throttled and nobody is notified (escalations/limits.py).
SUPPORTDESK_ESCALATION_LIMITS = {
    "per_thread": env_str("SUPPORTDESK_ESCALATION_LIMIT_PER_THREAD", "3/3600"),
    "per_customer": env_str("SUPPORTDESK_ESCALATION_LIMIT_PER_CUSTOMER", "10/3600"),
    "per_queue": env_str("SUPPORTDESK_ESCALATION_LIMIT_PER_QUEUE", "300/3600"),
}
SUPPORTDESK_ESCALATION_LIMITS_EXEMPT = env_list("SUPPORTDESK_ESCALATION_LIMITS_EXEMPT", ["staff"])
SUPPORTDESK_ESCALATION_LIMITS_BACKEND = env_choice(
    "SUPPORTDESK_ESCALATION_LIMITS_BACKEND", "redis" if REDIS_URL else "db", ("redis", "db")
)
SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL = env_str(
    "SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL", REDIS_URL
)
SUPPORTDESK_ESCALATION_LIMITS_PREFIX = env_str("CACHE_KEY_PREFIX", "supportdesk")
# Links in notifications point here (the desk's thread page).
_public_url = env_str("SUPPORTDESK_PUBLIC_URL", "http://127.0.0.1:8000") or ""
SUPPORTDESK_PUBLIC_URL = _public_url.rstrip("/")
SUPPORTDESK_ESCALATION_SUMMARY_MAX_CHARS = env_int(
    "SUPPORTDESK_ESCALATION_SUMMARY_MAX_CHARS", 1500, minimum=200
)
# With the openai provider, emails and webhooks about a new escalation wait up to this
# long for the model's summary (the extracted one goes out if it is not ready by then).
SUPPORTDESK_SUMMARY_HOLD_SECONDS = env_int("SUPPORTDESK_SUMMARY_HOLD_SECONDS", 30, minimum=0)
# Who is emailed about new escalations and SLA breaches (assignees are emailed too).
SUPPORTDESK_NOTIFY_EMAILS = env_list("SUPPORTDESK_NOTIFY_EMAILS", [])
SUPPORTDESK_WEBHOOK_TIMEOUT = env_float("SUPPORTDESK_WEBHOOK_TIMEOUT", 5.0, minimum=0.1)
SUPPORTDESK_OUTBOX_MAX_ATTEMPTS = env_int("SUPPORTDESK_OUTBOX_MAX_ATTEMPTS", 10, minimum=1)
# Seconds before the first retry; doubles each attempt (with jitter), at most the cap.
SUPPORTDESK_OUTBOX_BACKOFF = env_float("SUPPORTDESK_OUTBOX_BACKOFF", 10.0, minimum=0.0)
SUPPORTDESK_OUTBOX_BACKOFF_CAP = env_float("SUPPORTDESK_OUTBOX_BACKOFF_CAP", 3600.0, minimum=0.0)
# A claimed row is due again after this long if its sender died mid-send.
SUPPORTDESK_OUTBOX_LEASE_SECONDS = env_int("SUPPORTDESK_OUTBOX_LEASE_SECONDS", 60, minimum=1)
# Sent notifications are deleted after this many days (0 keeps them); pending and failed
# rows are kept until they are sent, retried or deleted by hand.
SUPPORTDESK_OUTBOX_RETENTION_DAYS = env_int("SUPPORTDESK_OUTBOX_RETENTION_DAYS", 30, minimum=0)
# An agent whose desk socket has not sent a heartbeat (every 25 s) for this long is
# offline: the assigner passes them over and the sweeper marks them offline.
SUPPORTDESK_PRESENCE_TIMEOUT_SECONDS = env_int(
    "SUPPORTDESK_PRESENCE_TIMEOUT_SECONDS", 60, minimum=30
)
# Active reply time counts at most this long per human reply (reading and typing).
SUPPORTDESK_HUMAN_REPLY_CAP_SECONDS = env_int("SUPPORTDESK_HUMAN_REPLY_CAP_SECONDS", 600, minimum=1)

# --- Email (notifications go through the outbox, then this backend) -----------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "supportdesk@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # The openai SDK's HTTP client logs every request at INFO: a line per model call.
        # ModelCall rows record them; failures are still logged (WARNING and up).
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
