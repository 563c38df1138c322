"""Websocket routes (API.md "Realtime"); ``supportdesk.asgi`` checks the Origin first."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import path, re_path

from threads.consumers import CustomerThreadConsumer, DeskConsumer, NotFoundConsumer

websocket_urlpatterns: list[Any] = [
    # Any id matches here so that a malformed one is refused like a wrong token (4403).
    re_path(r"^ws/threads/(?P<thread_id>[^/]{1,64})/$", CustomerThreadConsumer.as_asgi()),
    # The session cookie is read for the desk only; customers use their thread token.
    path("ws/desk/", AuthMiddlewareStack(DeskConsumer.as_asgi())),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
