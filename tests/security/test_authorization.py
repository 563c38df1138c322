"""The authorisation matrix, generated from the URLconf (API.md "Staff API", DESIGN.md
"Security"): every route is classified (``tests/security/routes.py``), and every route of a
class is tried by every principal that class must refuse, with real objects behind the
path parameters. A refused request changes nothing.

- staff API: 401 for no or bad credentials (a customer's thread token included, and an
  inactive user), 403 for an authenticated user who is not an agent;
- customer API: 401 without a thread token, 404 with another thread's token (never
  revealing that the thread exists), staff credentials are not a thread token;
- desk pages: the desk login for the anonymous, 403 for a signed-in non-agent;
- admin: the admin login for anyone who is not active ``is_staff``;
- CSRF: session-authenticated unsafe requests need the CSRF token.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import path
from rest_framework.test import APIClient

from tests.security import routes
from tests.security.routes import ADMIN, CUSTOMER, DESK_PAGE, PUBLIC, STAFF_API, Route
from tests.security.world import (
    World,
    admin_model,
    admin_object_values,
    build_world,
    registered_models,
    snapshot,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return build_world()


def _ids(items: list[Route]) -> list[str]:
    return [route.key for route in items]


STAFF_ROUTES = routes.routes_of(STAFF_API)
CUSTOMER_ROUTES = routes.routes_of(CUSTOMER)
DESK_ROUTES = routes.routes_of(DESK_PAGE)
ADMIN_ROUTES = routes.routes_of(ADMIN)
PUBLIC_ROUTES = routes.routes_of(PUBLIC)


# --- Clients ------------------------------------------------------------------------


def client(world: World, principal: str, *, enforce_csrf: bool = False) -> APIClient:
    """A client acting as ``principal``: ``<user>_token`` (DRF token), ``<user>_session``
    (signed in), ``customer`` (own thread token), ``other_customer`` (another thread's
    token), ``customer_as_drf_token`` (the thread token sent as a DRF token), or
    ``anonymous``."""
    api = APIClient(enforce_csrf_checks=enforce_csrf)
    if principal == "anonymous":
        return api
    if principal == "customer":
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {world.token}")
    elif principal == "other_customer":
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {world.other_token}")
    elif principal == "customer_as_drf_token":
        api.credentials(HTTP_AUTHORIZATION=f"Token {world.token}")
    elif principal.endswith("_token"):
        api.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens[principal[: -len('_token')]]}")
    elif principal.endswith("_session"):
        api.force_login(getattr(world, principal[: -len("_session")]))
    else:
        raise AssertionError(principal)
    return api


def call(api: Client, route: Route, method: str, url: str, body: dict[str, Any] | None) -> Any:
    if method == "GET":
        return api.get(url)
    if route.pattern.startswith("api/"):
        return api.generic(
            method, url, data=json.dumps(body or {}), content_type="application/json"
        )
    return api.generic(method, url, data="", content_type="application/x-www-form-urlencoded")


def url_of(route: Route, world: World) -> str:
    values = world.path_values()
    if route.pattern.startswith("admin/"):
        values |= admin_object_values(route.name, world)
    return routes.fill(route.pattern, values)


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


# --- Every route is classified --------------------------------------------------------


def test_it_classifies_every_route() -> None:
    missing = [str(route) for route in routes.unclassified()]
    assert not missing, f"classify these routes in tests/security/routes.py: {missing}"


def test_it_has_no_stale_classifications() -> None:
    keys = {route.key for route in routes.walk()}
    assert not set(routes.CLASSIFIED) - keys


def _unclassified_view(request: Any) -> Any:
    raise AssertionError("never called")


urlpatterns = [path("api/v1/desk/secret-new-thing/", _unclassified_view, name="secret-new-thing")]


def test_it_reports_a_new_route_nobody_classified() -> None:
    # This module doubles as a URLconf with one route that no one classified.
    assert [route.key for route in routes.unclassified(__name__)] == ["secret-new-thing"]


def test_it_has_a_real_row_behind_every_admin_model(world: World) -> None:
    for model in registered_models():
        assert model._default_manager.exists(), model


def test_it_walks_the_routes_the_api_documents() -> None:
    keys = {route.key for route in routes.walk()}
    assert {"desk-thread-reply", "desk-approval-approve", "thread-messages"} <= keys
    assert len(STAFF_ROUTES) >= 16 and len(CUSTOMER_ROUTES) == 3 and len(ADMIN_ROUTES) > 100


# --- Staff API --------------------------------------------------------------------------

# principal → expected status for every staff endpoint.
STAFF_DENIALS = {
    "anonymous": 401,
    "customer": 401,
    "customer_as_drf_token": 401,
    "inactive_token": 401,
    "inactive_session": 401,
    "plain_token": 403,
    "plain_session": 403,
}


@pytest.mark.parametrize("route", STAFF_ROUTES, ids=_ids(STAFF_ROUTES))
def test_it_refuses_staff_endpoints_to_everyone_but_agents(route: Route, world: World) -> None:
    url = url_of(route, world)
    before = snapshot()
    for principal, expected in STAFF_DENIALS.items():
        for method in route.methods():
            response = call(
                client(world, principal), route, method, url, routes.STAFF_BODIES.get(route.name)
            )
            assert response.status_code == expected, (principal, method, url, response.content)
            assert error_code(response) in (
                ("not_authenticated", "authentication_failed")
                if expected == 401
                else ("permission_denied",)
            ), (principal, method)
            if expected == 401:
                assert response["WWW-Authenticate"].startswith("Token"), (principal, method)
    assert snapshot() == before


@pytest.mark.parametrize(
    "principal", ["staff_token", "agent_member_token", "staff_session", "superuser_token"]
)
@pytest.mark.parametrize("route", STAFF_ROUTES, ids=_ids(STAFF_ROUTES))
def test_it_lets_agents_use_staff_endpoints(route: Route, principal: str, world: World) -> None:
    # The positive control: the URL, its objects and its body are right, so the
    # refusals above are the access rule's doing. Supervisor-only methods refuse agents.
    url = url_of(route, world)
    for method in route.methods():
        response = call(
            client(world, principal), route, method, url, routes.STAFF_BODIES.get(route.name)
        )
        if (route.name, method) in routes.SUPERVISOR_ONLY and principal != "superuser_token":
            assert response.status_code == 403, (method, url, response.content)
            assert error_code(response) == "permission_denied"
            continue
        assert 200 <= response.status_code < 300, (method, url, response.content)


# --- Customer API -------------------------------------------------------------------------

CUSTOMER_DENIALS = {
    "anonymous": 401,
    "other_customer": 404,
    "staff_token": 401,
    "staff_session": 401,
    "customer_as_drf_token": 401,
}


@pytest.mark.parametrize("route", CUSTOMER_ROUTES, ids=_ids(CUSTOMER_ROUTES))
def test_it_refuses_thread_endpoints_without_the_threads_own_token(
    route: Route, world: World
) -> None:
    url = url_of(route, world)
    before = snapshot()
    for principal, expected in CUSTOMER_DENIALS.items():
        for method in route.methods():
            response = call(
                client(world, principal),
                route,
                method,
                url,
                routes.CUSTOMER_BODIES.get(route.name),
            )
            assert response.status_code == expected, (principal, method, response.content)
            assert error_code(response) in (
                ("not_found",)
                if expected == 404
                else ("not_authenticated", "authentication_failed")
            ), principal
            # Nothing about the thread comes back with a refusal.
            assert world.thread.subject not in response.content.decode()
            assert str(world.thread.pk) not in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("route", CUSTOMER_ROUTES, ids=_ids(CUSTOMER_ROUTES))
def test_it_answers_a_wrong_token_and_an_unknown_thread_alike(route: Route, world: World) -> None:
    unknown = routes.fill(route.pattern, {"thread_id": "00000000-0000-4000-8000-000000000000"})
    for method in route.methods():
        body = routes.CUSTOMER_BODIES.get(route.name)
        wrong = call(client(world, "other_customer"), route, method, url_of(route, world), body)
        missing = call(client(world, "customer"), route, method, unknown, body)
        not_found = {"error": {"code": "not_found", "message": "Not found."}}
        assert (wrong.status_code, wrong.json()) == (404, not_found)
        assert (missing.status_code, missing.json()) == (404, not_found)


@pytest.mark.parametrize("route", CUSTOMER_ROUTES, ids=_ids(CUSTOMER_ROUTES))
def test_it_lets_the_customer_use_their_thread(route: Route, world: World) -> None:
    url = url_of(route, world)
    for method in route.methods():
        response = call(
            client(world, "customer"), route, method, url, routes.CUSTOMER_BODIES.get(route.name)
        )
        assert 200 <= response.status_code < 300, (method, response.content)


# --- Desk pages ---------------------------------------------------------------------------

DESK_DENIALS = {
    "anonymous": "login",
    "customer": "login",
    "staff_token": "login",  # pages take the session only
    "inactive_session": "login",
    "plain_session": 403,
}


def _is_login_redirect(response: Any, login: str) -> bool:
    return response.status_code == 302 and response["Location"].startswith(login)


@pytest.mark.parametrize("route", DESK_ROUTES, ids=_ids(DESK_ROUTES))
def test_it_keeps_desk_pages_from_non_agents(route: Route, world: World) -> None:
    url = url_of(route, world)
    before = snapshot()
    for principal, expected in DESK_DENIALS.items():
        response = client(world, principal).get(url)
        if expected == "login":
            assert _is_login_redirect(response, "/desk/login/"), (principal, response)
        else:
            assert response.status_code == expected, (principal, response)
        assert world.thread.subject not in response.content.decode()
        # Unsafe methods are refused too (405 before the agent check, or as above).
        posted = client(world, principal).post(url, {})
        assert posted.status_code in (302, 403, 405), (principal, posted)
    assert snapshot() == before


@pytest.mark.parametrize("principal", ["staff_session", "agent_member_session"])
@pytest.mark.parametrize("route", DESK_ROUTES, ids=_ids(DESK_ROUTES))
def test_it_shows_desk_pages_to_agents(route: Route, principal: str, world: World) -> None:
    assert client(world, principal).get(url_of(route, world)).status_code == 200


# --- Admin ----------------------------------------------------------------------------------

ADMIN_DENIALS = [
    "anonymous",
    "customer",
    "staff_token",
    "plain_session",
    "inactive_session",
    "agent_member_session",  # an agent of the desk, but not is_staff: no admin
]


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=_ids(ADMIN_ROUTES))
def test_it_keeps_the_admin_from_anyone_but_active_staff(route: Route, world: World) -> None:
    url = url_of(route, world)
    before = snapshot()
    for principal in ADMIN_DENIALS:
        api = client(world, principal)
        for response in (api.get(url), api.post(url, {})):
            assert _is_login_redirect(response, "/admin/login/"), (principal, url, response)
    # Even a superuser's form post needs the CSRF token.
    refused = client(world, "superuser_session", enforce_csrf=True).post(url, {"name": "x"})
    assert refused.status_code == 403, refused
    assert snapshot() == before
    # The positive control: the route and its real row are there for a superuser.
    response = client(world, "superuser_session").get(url)
    assert not _is_login_redirect(response, "/admin/login/")
    assert response.status_code in (200, 302, 403, 404), response
    if admin_model(route.name) is not None and route.name.endswith("_change"):
        assert response.status_code in (200, 403), response  # the real row's page


# --- Public routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", PUBLIC_ROUTES, ids=_ids(PUBLIC_ROUTES))
def test_it_serves_public_routes_without_credentials(route: Route, world: World) -> None:
    url = url_of(route, world)
    method = route.methods()[0]
    response = call(client(world, "anonymous"), route, method, url, {})
    assert response.status_code not in (401, 403), (url, response)


# --- CSRF -------------------------------------------------------------------------------------


def _unsafe(route: Route) -> list[str]:
    return [method for method in route.methods() if method not in ("GET", "HEAD", "OPTIONS")]


CSRF_API_ROUTES = [route for route in STAFF_ROUTES if _unsafe(route)]


@pytest.mark.parametrize("route", CSRF_API_ROUTES, ids=_ids(CSRF_API_ROUTES))
def test_it_requires_the_csrf_token_with_session_auth(route: Route, world: World) -> None:
    url = url_of(route, world)
    api = client(world, "staff_session", enforce_csrf=True)
    before = snapshot()
    for method in _unsafe(route):
        response = call(api, route, method, url, routes.STAFF_BODIES.get(route.name))
        assert response.status_code == 403, (method, response.content)
        assert error_code(response) == "permission_denied"
        assert "CSRF" in response.json()["error"]["message"]
    assert snapshot() == before


@pytest.mark.parametrize("route", CSRF_API_ROUTES, ids=_ids(CSRF_API_ROUTES))
def test_it_accepts_session_requests_that_carry_the_csrf_token(route: Route, world: World) -> None:
    supervisor = any((route.name, method) in routes.SUPERVISOR_ONLY for method in _unsafe(route))
    api = client(world, "superuser_session" if supervisor else "staff_session", enforce_csrf=True)
    api.get("/desk/")  # sets the csrftoken cookie, as the desk page does
    csrf = api.cookies["csrftoken"].value
    for method in _unsafe(route):
        response = api.generic(
            method,
            url_of(route, world),
            data=json.dumps(routes.STAFF_BODIES.get(route.name) or {}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=csrf,
        )
        assert 200 <= response.status_code < 300, (method, response.content)


FORM_ROUTES = [
    route for route in [*PUBLIC_ROUTES, *DESK_ROUTES] if not route.pattern.startswith("api/")
]


@pytest.mark.parametrize("route", FORM_ROUTES, ids=_ids(FORM_ROUTES))
def test_it_refuses_form_posts_without_the_csrf_token(route: Route, world: World) -> None:
    api = client(world, "superuser_session", enforce_csrf=True)
    before = snapshot()
    response = api.post(url_of(route, world), {"username": "x", "password": "y"})
    # The CSRF check refuses it before the view runs (a GET-only page may say 405 first).
    assert response.status_code in (403, 405), response
    assert snapshot() == before
