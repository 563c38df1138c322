"""Small strict helpers that read settings from the environment.

Each helper fails loudly with the variable's name when a value is malformed, so a
misconfigured deployment stops at start-up instead of misbehaving later.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} is required.")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")


def env_slugs(
    name: str, default: list[str], *, required: bool = False, reserved: tuple[str, ...] = ()
) -> list[str]:
    """A comma-separated list of distinct lower-case slugs (1..30 of a-z, 0-9, ``_``, ``-``)."""
    items = [item.lower() for item in env_list(name, default)]
    for item in items:
        if not _SLUG.match(item) or item in reserved:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not a valid name (1..30 of a-z, 0-9, '_', '-'"
                + (f"; not {', '.join(reserved)}" if reserved else "")
                + ")."
            )
    if len(set(items)) != len(items):
        raise ImproperlyConfigured(f"{name} lists a name twice.")
    if required and not items:
        raise ImproperlyConfigured(f"{name} needs at least one name.")
    return items


def _test_database_name(name: str) -> str:
    """Each test process gets its own test database (DATABASE_TEST_NAME overrides), so
    two test runs on one machine never drop each other's database."""
    explicit = os.environ.get("DATABASE_TEST_NAME")
    if explicit:
        return explicit
    if name.endswith(".sqlite3") or "/" in name:
        return f"{name}.test-{os.getpid()}"
    return f"test_{name}_{os.getpid()}"


def database_from_url(url: str, *, base_dir: str) -> dict[str, object]:
    """Turn a DATABASE_URL into a Django DATABASES entry (SQLite or PostgreSQL)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path.sqlite3 → /abs/path.sqlite3; sqlite:///rel.sqlite3 → base_dir/rel
        path = unquote(parts.path)
        if path.startswith("//"):
            path = path[1:]
        elif path.startswith("/"):
            path = os.path.join(base_dir, path[1:])
        if not path or path == "/":
            raise ImproperlyConfigured("DATABASE_URL for SQLite needs a file path.")
        return sqlite_database(path)
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Persistent connections: a new PostgreSQL connection per request costs
            # more than the write itself on the message endpoint.
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": query,
            "TEST": {"NAME": _test_database_name(unquote(parts.path.lstrip("/")) or "postgres")},
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported (use sqlite:// or postgres://)."
    )


def sqlite_database(path: str) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the busy
            # timeout instead of failing with "database is locked" on lock upgrade.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"
                "PRAGMA busy_timeout=20000;"
                "PRAGMA foreign_keys=ON;"
            ),
        },
        # Persistent here too: closing the last connection makes SQLite checkpoint the WAL
        # and sync, which doubled the message POST's latency at low concurrency.
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0),
        "TEST": {"NAME": _test_database_name(path)},
    }


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in the form browsers send in ``Origin`` (lower case, no
    default port, no trailing slash), or None when ``value`` is not such an origin."""
    try:
        parts = urlsplit(value.strip().lower().rstrip("/"))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == {"http": 80, "https": 443}[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def env_origins(name: str) -> list[str]:
    """A comma-separated list of origins (``https://shop.example``, ``http://host:8080``)
    or ``*`` for any origin; each entry is checked and normalised."""
    origins = []
    for item in env_list(name, []):
        if item == "*":
            origins.append(item)
            continue
        origin = normalize_origin(item)
        if origin is None:
            raise ImproperlyConfigured(
                f"{name} must list origins like https://shop.example or http://host:8080 "
                f"(scheme, host and optional port, nothing else), got {item!r}."
            )
        origins.append(origin)
    return origins
