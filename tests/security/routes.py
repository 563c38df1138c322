"""Every HTTP and websocket route of the project, walked from the URLconf and the consumer
routes, and the access class each one belongs to.

The authorisation matrix (``test_authorization.py``) is generated from this walk: a new
route that nobody classified here makes ``test_it_classifies_every_route`` fail, so a view
cannot ship without its access rule being checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

# --- Access classes ---------------------------------------------------------------------

STAFF_API = "staff_api"  # DRF, active staff or the agents group (token or session)
CUSTOMER = "customer"  # DRF, the thread's own token (Authorization: Bearer)
DESK_PAGE = "desk_page"  # Django pages for agents (session), login redirect otherwise
ADMIN = "admin"  # Django admin: active is_staff only
PUBLIC = "public"  # anybody (login forms, thread creation, health, schema, widget demo)

# Unsafe-method bodies that would succeed for an allowed caller: a denial must be the
# access rule's doing, not a validation error.
STAFF_BODIES: dict[str, dict[str, Any]] = {
    "desk-thread-detail": {"priority": "high"},
    "desk-thread-reply": {"content": "matrix reply"},
    "desk-thread-assign": {"responder": "human"},
    "desk-thread-status": {"status": "resolved"},
    "desk-escalation-claim": {},
    "desk-escalation-resolve": {},
    "desk-human-request-answer": {"answer": "matrix answer"},
    "desk-approval-approve": {},
    "desk-approval-reject": {"review": "matrix review", "next": "human"},
    "desk-customer-detail": {"tier": "standard"},
}
# Methods of staff routes that also need a model permission (supervisors, as in the
# admin): agents get 403 there, superusers get through.
SUPERVISOR_ONLY: set[tuple[str, str]] = {("desk-customer-detail", "PATCH")}
CUSTOMER_BODIES: dict[str, dict[str, Any]] = {
    "thread-messages": {"content": "matrix message"},
    "thread-handoff": {},
}

# Route name (or, for unnamed routes, the pattern) → access class. Routes that Django's
# ModelAdmin generates for a registered model are classified ADMIN by ``classify``; every
# other admin route (custom views included) must be listed here.
CLASSIFIED: dict[str, str] = {
    # Customer API
    "thread-create": PUBLIC,
    "thread-detail": CUSTOMER,
    "thread-messages": CUSTOMER,
    "thread-handoff": CUSTOMER,
    # Staff API
    "auth-token": PUBLIC,
    "desk-thread-list": STAFF_API,
    "desk-thread-detail": STAFF_API,
    "desk-thread-messages": STAFF_API,
    "desk-thread-reply": STAFF_API,
    "desk-thread-assign": STAFF_API,
    "desk-thread-assignments": STAFF_API,
    "desk-thread-status": STAFF_API,
    "desk-escalations": STAFF_API,
    "desk-escalation-claim": STAFF_API,
    "desk-escalation-resolve": STAFF_API,
    "desk-human-requests": STAFF_API,
    "desk-human-request-answer": STAFF_API,
    "desk-approvals": STAFF_API,
    "desk-approval-approve": STAFF_API,
    "desk-approval-reject": STAFF_API,
    "desk-usage": STAFF_API,
    "desk-customer-detail": STAFF_API,
    "schema": PUBLIC,
    "docs": PUBLIC,
    "healthz": PUBLIC,
    # Desk pages
    "desk-inbox": DESK_PAGE,
    "desk-approvals-page": DESK_PAGE,
    "desk-thread": DESK_PAGE,
    "desk-thread-turns": DESK_PAGE,
    "desk-login": PUBLIC,
    "desk-logout": PUBLIC,
    "widget-demo": PUBLIC,
    # Admin site views (beyond the ModelAdmin-generated ones)
    "admin:index": ADMIN,
    "admin:login": PUBLIC,
    "admin:logout": PUBLIC,
    "admin:password_change": ADMIN,
    "admin:password_change_done": ADMIN,
    "admin:autocomplete": ADMIN,
    "admin:jsi18n": PUBLIC,
    "admin:view_on_site": ADMIN,
    "admin:app_list": ADMIN,
    "admin:auth_user_password_change": ADMIN,
    "admin:threads_thread_dashboard": ADMIN,
    "admin:threads_thread_conversation": ADMIN,
    "admin/(?P<url>.*)$": ADMIN,  # the admin's catch-all (login redirect, then 404)
}

# Routes whose names collide across the API and the pages get a distinct key here.
_RENAMES = {("desk/approvals/", "desk-approvals"): "desk-approvals-page"}

_MODEL_ADMIN_VIEWS = {"changelist", "add", "history", "delete", "change"}


@dataclass(frozen=True)
class Route:
    pattern: str  # the full pattern, as Django prints it
    name: str  # "namespace:name", or "" when unnamed
    callback: Any

    @property
    def key(self) -> str:
        return _RENAMES.get((self.pattern, self.name), self.name or self.pattern)

    @property
    def view_class(self) -> Any:
        return getattr(self.callback, "cls", None)

    @property
    def model_admin(self) -> Any:
        return getattr(self.callback, "model_admin", None)

    def methods(self) -> list[str]:
        """The HTTP methods to try: a DRF view's handlers, else GET and POST."""
        cls = self.view_class
        if cls is not None and hasattr(cls, "http_method_names"):
            handlers = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
            if handlers:
                return [m.upper() for m in handlers]
        return ["GET", "POST"]

    def __str__(self) -> str:
        return f"{self.key} ({self.pattern})"


def walk(urlconf: Any = None) -> Iterator[Route]:
    """Every URL pattern under the root URLconf, with its full pattern and name."""

    def visit(resolver: URLResolver, prefix: str, namespace: str) -> Iterator[Route]:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                inner = namespace + (f"{entry.namespace}:" if entry.namespace else "")
                yield from visit(entry, prefix + str(entry.pattern), inner)
            elif isinstance(entry, URLPattern):
                name = f"{namespace}{entry.name}" if entry.name else ""
                yield Route(prefix + str(entry.pattern), name, entry.callback)

    yield from visit(get_resolver(urlconf), "", "")


def _generated_by_model_admin(route: Route) -> bool:
    """A changelist/add/history/delete/change view (or the object URL redirect) that
    Django's ModelAdmin.get_urls made for a registered model: admin_view-wrapped by it."""
    if route.model_admin is None:
        return False
    if not route.name:
        return route.pattern.endswith("<path:object_id>/")
    opts = route.model_admin.opts
    prefix = f"admin:{opts.app_label}_{opts.model_name}_"
    return route.name.startswith(prefix) and route.name[len(prefix) :] in _MODEL_ADMIN_VIEWS


def classify(route: Route) -> str | None:
    """The access class of ``route``; None when nobody classified it."""
    if route.key in CLASSIFIED:
        return CLASSIFIED[route.key]
    if route.pattern.startswith("admin/") and _generated_by_model_admin(route):
        return ADMIN
    return None


def unclassified(urlconf: Any = None) -> list[Route]:
    return [route for route in walk(urlconf) if classify(route) is None]


def routes_of(access: str) -> list[Route]:
    return [route for route in walk() if classify(route) == access]


# --- Filling path parameters ----------------------------------------------------------

_CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_NAMED_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


def fill(pattern: str, values: dict[str, Any]) -> str:
    """``pattern`` with every ``<conv:name>`` / ``(?P<name>…)`` replaced by ``values[name]``
    (a KeyError names a parameter nobody knows how to fill)."""
    text = _NAMED_GROUP.sub(lambda m: str(values[m.group("name")]), pattern)
    text = _CONVERTER.sub(lambda m: str(values[m.group("name")]), text)
    return "/" + text.replace("^", "").replace("$", "")


# --- Websocket routes -------------------------------------------------------------------

WS_CUSTOMER = "ws_customer"
WS_DESK = "ws_desk"
WS_NOT_FOUND = "ws_not_found"

WS_CLASSIFIED = {
    "CustomerThreadConsumer": WS_CUSTOMER,
    "DeskConsumer": WS_DESK,
    "NotFoundConsumer": WS_NOT_FOUND,
}


@dataclass(frozen=True)
class SocketRoute:
    pattern: str
    consumer: str  # the consumer class name under any middleware

    def path(self, values: dict[str, Any]) -> str:
        if not self.pattern:
            return "/ws/no-such-socket/"
        return fill(self.pattern, values)


def _consumer_name(app: Any) -> str:
    for _ in range(10):
        consumer = getattr(app, "consumer_class", None)
        if consumer is not None:
            return str(consumer.__name__)
        app = getattr(app, "inner", None)
        if app is None:
            break
    return "?"


def socket_routes() -> list[SocketRoute]:
    from supportdesk.routing import websocket_urlpatterns

    routes = []
    for entry in websocket_urlpatterns:
        pattern = entry.pattern
        raw = getattr(pattern, "_route", None) or getattr(pattern, "_regex", "")
        routes.append(SocketRoute(str(raw), _consumer_name(entry.callback)))
    return routes
