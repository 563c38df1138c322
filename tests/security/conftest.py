"""The security tests use the configured channel layer the way the realtime tests do
(in-memory, or channels-redis under this run's own prefix when REDIS_URL is set)."""

from __future__ import annotations

from tests.realtime.conftest import (  # noqa: F401  (fixtures)
    _close_thread_connections,
    anyio_backend,
    channel_layer,
)
