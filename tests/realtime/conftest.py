"""Fixtures for the websocket tests: a channel layer per test, sockets, server processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from asgiref.sync import SyncToAsync
from channels.layers import channel_layers
from django.conf import settings as django_settings
from django.db import connections

from supportdesk.env import env_str
from tests.realtime.servers import REDIS_SERVER, RedisServer

# The channel layer of these tests gets a Redis database of its own, apart from the
# cache's (REDIS_URL's), which every test clears: server processes of other test runs
# (which may use a plain FLUSHDB-ing cache) cannot wipe the layer under running servers.
LAYER_REDIS_DB = 14
_url = env_str("REDIS_URL")
LAYER_REDIS_URL = urlunsplit(urlsplit(_url)._replace(path=f"/{LAYER_REDIS_DB}")) if _url else None
# One prefix per test run: parallel runs and `make run` can share the Redis.
LAYER_PREFIX = f"sdtest{os.getpid()}{uuid.uuid4().hex[:6]}"


def layer_config() -> dict[str, Any]:
    if LAYER_REDIS_URL:
        return {
            "default": {
                "BACKEND": "supportdesk.layers.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [
                        {"address": LAYER_REDIS_URL, "max_connections": 500, "socket_timeout": None}
                    ],
                    "prefix": LAYER_PREFIX,
                    "capacity": 1000,
                    "expiry": 30,
                },
            }
        }
    return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_redis_layer: Any = None


@pytest.fixture(autouse=True)
def channel_layer() -> Iterator[Any]:
    """A fresh in-memory layer per test, or one channels-redis layer for the whole run
    under this run's own prefix (a new one per test would open new pools each time)."""
    global _redis_layer
    previous = django_settings.CHANNEL_LAYERS
    # Set directly: the settings fixture's change signal would drop the layer again.
    django_settings.CHANNEL_LAYERS = layer_config()
    if LAYER_REDIS_URL:
        if _redis_layer is None:
            _redis_layer = channel_layers.make_backend("default")
        layer = _redis_layer
    else:
        layer = channel_layers.make_backend("default")
    channel_layers.set("default", layer)
    yield layer
    django_settings.CHANNEL_LAYERS = previous
    channel_layers.backends.pop("default", None)


@pytest.fixture(autouse=True)
def _close_thread_connections() -> Iterator[None]:
    # database_sync_to_async runs in asgiref's own thread, whose database connection
    # would outlive the test (PostgreSQL then refuses to drop the test database).
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()
