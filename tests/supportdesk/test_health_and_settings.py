from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from supportdesk import env
from supportdesk.agent.models import WorkerHeartbeat


@pytest.mark.django_db
def test_it_reports_health(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "channel_layer": "ok",
        "worker": "stale",
    }


@pytest.mark.django_db
def test_it_reports_a_live_worker(client: Any) -> None:
    WorkerHeartbeat.objects.create(worker_id="w1", last_seen_at=timezone.now())
    assert client.get("/healthz").json()["worker"] == "ok"


@pytest.mark.django_db
def test_it_answers_503_naming_a_dead_channel_layer(client: Any, monkeypatch: Any) -> None:
    from supportdesk import views

    monkeypatch.setattr(views, "_check_channel_layer", lambda: False)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["channel_layer"] == "down"
    assert response["Retry-After"] == "5"


def test_it_parses_a_postgres_url() -> None:
    config = env.database_from_url(
        "postgres://u:p%40ss@db.local:6543/desk?sslmode=require", base_dir="/srv"
    )
    assert (config["ENGINE"], config["NAME"], config["USER"], config["PASSWORD"]) == (
        "django.db.backends.postgresql", "desk", "u", "p@ss"
    )  # fmt: skip
    assert (config["HOST"], config["PORT"], config["OPTIONS"]) == (
        "db.local",
        "6543",
        {"sslmode": "require"},
    )
    assert config["CONN_MAX_AGE"] == 600


def test_it_parses_sqlite_urls() -> None:
    absolute = env.database_from_url("sqlite:////var/lib/desk.sqlite3", base_dir="/srv")
    relative = env.database_from_url("sqlite:///data/desk.sqlite3", base_dir="/srv")
    assert (absolute["NAME"], relative["NAME"]) == (
        "/var/lib/desk.sqlite3",
        "/srv/data/desk.sqlite3",
    )
    assert absolute["OPTIONS"]["transaction_mode"] == "IMMEDIATE"  # type: ignore[index]
    assert "journal_mode=WAL" in absolute["OPTIONS"]["init_command"]  # type: ignore[index]


def test_it_refuses_an_unknown_database_scheme() -> None:
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        env.database_from_url("mysql://x/y", base_dir="/srv")


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("off", False), ("0", False)]
)
def test_it_reads_booleans(monkeypatch: Any, raw: str, expected: bool) -> None:
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env.env_bool("SOME_FLAG") is expected


def test_it_rejects_a_malformed_boolean(monkeypatch: Any) -> None:
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env.env_bool("SOME_FLAG")


def test_it_rejects_a_malformed_integer(monkeypatch: Any) -> None:
    monkeypatch.setenv("SOME_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="SOME_INT"):
        env.env_int("SOME_INT", 1)


def test_it_reads_a_list_of_names_in_lower_case(monkeypatch: Any) -> None:
    monkeypatch.setenv("SOME_NAMES", " Billing, shipping ,returns-eu")
    assert env.env_slugs("SOME_NAMES", []) == ["billing", "shipping", "returns-eu"]


@pytest.mark.parametrize("raw", ["billing,bad name", "billing,billing", "ai,billing", ""])
def test_it_rejects_a_malformed_list_of_names(monkeypatch: Any, raw: str) -> None:
    monkeypatch.setenv("SOME_NAMES", raw)
    with pytest.raises(ImproperlyConfigured, match="SOME_NAMES"):
        env.env_slugs("SOME_NAMES", ["x"], required=True, reserved=("ai",))


def test_it_requires_a_secret_key_without_debug() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='supportdesk.settings'; django.setup()",
        ],
        env={"PATH": "/usr/bin:/bin", "DEBUG": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_it_configures_channels_redis_with_max_connections() -> None:
    import subprocess
    import sys

    code = (
        "import os, json; os.environ['DJANGO_SETTINGS_MODULE']='supportdesk.settings';"
        "from django.conf import settings;"
        "print(json.dumps(settings.CHANNEL_LAYERS['default']['CONFIG']['hosts']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x", "REDIS_URL": "redis://127.0.0.1:6379/3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"max_connections": 2000' in result.stdout
