"""Cross-origin access for the embedded widget: CORS on the customer API, and the
websockets' Origin check.

A shop puts the widget's script tag on its own site; the widget then calls the customer
API and opens the customer socket from the shop's origin, which browsers allow only when
the server says so. ``SUPPORTDESK_WIDGET_ORIGINS`` lists the origins that may (empty:
same origin only; ``*``: any). Only the customer endpoints (views with ``widget_cors``)
answer them, and never with credentials: customers authenticate with the thread token in
the ``Authorization`` header, not with cookies. The staff API and the desk socket stay
same-origin (session cookie and CSRF token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_vary_headers

from supportdesk.env import normalize_origin

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSE_HEADERS = "Retry-After, Idempotent-Replayed"
# Seconds a browser may reuse a preflight answer (Chromium caps this at 7200).
PREFLIGHT_MAX_AGE = "3600"
CUSTOMER_SOCKET_PREFIX = "/ws/threads/"


def widget_origin_allowed(origin: str | None) -> bool:
    """Whether a page at ``origin`` (an ``Origin`` header) may use the customer API and
    the customer socket."""
    allowed = settings.SUPPORTDESK_WIDGET_ORIGINS
    if not origin or not allowed:
        return False
    return "*" in allowed or normalize_origin(origin) in allowed


def is_widget_endpoint(path: str) -> bool:
    """Whether ``path`` is served by a customer API view (``widget_cors = True``)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return bool(getattr(getattr(match.func, "view_class", None), "widget_cors", False))


class WidgetCorsMiddleware:
    """CORS headers on the customer API for the widget's origins, and the answer to
    their preflight requests; nothing anywhere else. Outermost, so that errors answered
    by other middleware (413, 503) are readable by the widget too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        origin = request.headers.get("Origin")
        if (
            not origin
            or not settings.SUPPORTDESK_WIDGET_ORIGINS
            or not is_widget_endpoint(request.path_info)
        ):
            return self.get_response(request)
        allowed = widget_origin_allowed(origin)
        if (
            allowed
            and request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
        ):
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        else:
            response = self.get_response(request)
            if allowed:
                response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if allowed:
            wildcard = "*" in settings.SUPPORTDESK_WIDGET_ORIGINS
            response["Access-Control-Allow-Origin"] = "*" if wildcard else origin
        # Whether the headers are there depends on Origin: caches must not mix answers.
        patch_vary_headers(response, ("Origin",))
        return response


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


class SocketOriginValidator:
    """The websockets' Origin check: ``ALLOWED_HOSTS`` for every socket (like Channels'
    ``AllowedHostsOriginValidator``), and the widget's origins for the customer socket
    only. Anything else is refused at the handshake (HTTP 403)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if self.allows(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @staticmethod
    def allows(scope: dict[str, Any]) -> bool:
        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                origin = value.decode("latin1")
        try:
            parsed = urlparse(origin) if origin is not None else None
            if OriginValidator(None, _allowed_hosts()).valid_origin(parsed):
                return True
        except ValueError:  # a malformed Origin (bad port, bad IPv6 literal)
            return False
        return str(scope.get("path", "")).startswith(
            CUSTOMER_SOCKET_PREFIX
        ) and widget_origin_allowed(origin)
