"""Websocket routes; the consumers arrive with the realtime work."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
