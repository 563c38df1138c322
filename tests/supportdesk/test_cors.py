"""Cross-origin access for the embedded widget (supportdesk/cors.py): CORS on the customer
API only, for SUPPORTDESK_WIDGET_ORIGINS only, never with credentials; and the sockets'
Origin check."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from supportdesk.cors import SocketOriginValidator
from supportdesk.env import env_origins
from threads.models import Message, Thread

SHOP = "https://shop.example"
PREFLIGHT = {
    "HTTP_ORIGIN": SHOP,
    "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization, content-type, idempotency-key",
}


@pytest.fixture
def widget_origins(settings: Any) -> None:
    settings.SUPPORTDESK_WIDGET_ORIGINS = [SHOP, "http://127.0.0.1:9000"]


def test_it_answers_a_preflight_from_a_widget_origin(widget_origins: None, db: Any) -> None:
    response = APIClient().options("/api/v1/threads/", **PREFLIGHT)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert response["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    allowed = {name.strip().lower() for name in response["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "content-type", "idempotency-key"}
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response
    assert "Origin" in response["Vary"]
    assert not Thread.objects.exists()


def test_it_answers_preflights_on_every_customer_endpoint(
    widget_origins: None, thread_and_token: Any
) -> None:
    thread, _ = thread_and_token
    for path in (
        f"/api/v1/threads/{thread.pk}/",
        f"/api/v1/threads/{thread.pk}/messages/",
        f"/api/v1/threads/{thread.pk}/handoff/",
    ):
        response = APIClient().options(path, **PREFLIGHT)
        assert (response.status_code, response["Access-Control-Allow-Origin"]) == (204, SHOP), path


def test_it_lets_a_widget_origin_read_the_customer_api(widget_origins: None, db: Any) -> None:
    client = APIClient()
    created = client.post(
        "/api/v1/threads/",
        {"customer": {"name": "Ann"}, "message": "Hello from the shop"},
        format="json",
        HTTP_ORIGIN=SHOP,
    )
    assert created.status_code == 201
    assert created["Access-Control-Allow-Origin"] == SHOP
    assert "Retry-After" in created["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in created
    thread_id = created.json()["thread"]["id"]
    listed = client.get(
        f"/api/v1/threads/{thread_id}/messages/",
        HTTP_ORIGIN=SHOP,
        HTTP_AUTHORIZATION=f"Bearer {created.json()['token']}",
    )
    assert (listed.status_code, listed["Access-Control-Allow-Origin"]) == (200, SHOP)
    assert Message.objects.get(thread_id=thread_id).content == "Hello from the shop"


def test_it_matches_origins_in_the_form_browsers_send(widget_origins: None, db: Any) -> None:
    response = APIClient().options(
        "/api/v1/threads/", **{**PREFLIGHT, "HTTP_ORIGIN": "http://127.0.0.1:9000"}
    )
    assert response["Access-Control-Allow-Origin"] == "http://127.0.0.1:9000"
    other_port = APIClient().options(
        "/api/v1/threads/", **{**PREFLIGHT, "HTTP_ORIGIN": "http://127.0.0.1:9001"}
    )
    assert "Access-Control-Allow-Origin" not in other_port


def test_it_sends_no_cors_headers_to_other_origins(widget_origins: None, db: Any) -> None:
    preflight = APIClient().options(
        "/api/v1/threads/", **{**PREFLIGHT, "HTTP_ORIGIN": "https://evil.example"}
    )
    assert preflight.status_code != 204
    assert "Access-Control-Allow-Origin" not in preflight
    posted = APIClient().post(
        "/api/v1/threads/", {"message": "hi"}, format="json", HTTP_ORIGIN="https://evil.example"
    )
    # Not a CORS matter for the server: the browser withholds the answer from the page.
    assert posted.status_code == 201
    assert not any(name.startswith("Access-Control-") for name in posted.headers)


def test_it_sends_no_cors_headers_by_default(db: Any) -> None:
    response = APIClient().options("/api/v1/threads/", **PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in response
    assert not any(name.startswith("Access-Control-") for name in response.headers)


def test_it_never_opens_the_staff_api_to_widget_origins(
    widget_origins: None, staff_client: APIClient, thread_and_token: Any
) -> None:
    thread, _ = thread_and_token
    for path in ("/api/v1/desk/threads/", f"/api/v1/desk/threads/{thread.pk}/reply/"):
        preflight = staff_client.options(path, **PREFLIGHT)
        assert preflight.status_code != 204, path
        assert "Access-Control-Allow-Origin" not in preflight, path
    listed = staff_client.get("/api/v1/desk/threads/", HTTP_ORIGIN=SHOP)
    assert listed.status_code == 200
    assert not any(name.startswith("Access-Control-") for name in listed.headers)
    token = APIClient().post(
        "/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json", HTTP_ORIGIN=SHOP
    )
    assert "Access-Control-Allow-Origin" not in token


def test_it_lets_the_widget_read_a_too_large_answer(widget_origins: None, db: Any) -> None:
    response = APIClient().post(
        "/api/v1/threads/",
        data=b"{" + b" " * (70 * 1024) + b"}",
        content_type="application/json",
        HTTP_ORIGIN=SHOP,
    )
    assert response.status_code == 413
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert not Thread.objects.exists()


def test_it_answers_any_origin_with_a_wildcard(settings: Any, db: Any) -> None:
    settings.SUPPORTDESK_WIDGET_ORIGINS = ["*"]
    response = APIClient().options(
        "/api/v1/threads/", **{**PREFLIGHT, "HTTP_ORIGIN": "https://anyone.example"}
    )
    assert (response.status_code, response["Access-Control-Allow-Origin"]) == (204, "*")
    assert "Access-Control-Allow-Credentials" not in response


# --- The setting ------------------------------------------------------------------------


def test_it_normalises_the_widget_origins(monkeypatch: Any) -> None:
    monkeypatch.setenv(
        "SUPPORTDESK_WIDGET_ORIGINS",
        "https://Shop.Example/, http://127.0.0.1:8080, https://a.example:443",
    )
    assert env_origins("SUPPORTDESK_WIDGET_ORIGINS") == [
        "https://shop.example",
        "http://127.0.0.1:8080",
        "https://a.example",
    ]
    monkeypatch.setenv("SUPPORTDESK_WIDGET_ORIGINS", "")
    assert env_origins("SUPPORTDESK_WIDGET_ORIGINS") == []


@pytest.mark.parametrize(
    "value", ["shop.example", "https://shop.example/path", "ftp://shop.example", "https://x:99999"]
)
def test_it_refuses_a_malformed_widget_origin(monkeypatch: Any, value: str) -> None:
    monkeypatch.setenv("SUPPORTDESK_WIDGET_ORIGINS", value)
    with pytest.raises(ImproperlyConfigured, match="SUPPORTDESK_WIDGET_ORIGINS"):
        env_origins("SUPPORTDESK_WIDGET_ORIGINS")


# --- The sockets' Origin check ----------------------------------------------------------------


def scope(path: str, origin: str | None) -> dict[str, Any]:
    headers = [(b"origin", origin.encode("latin1"))] if origin is not None else []
    return {"type": "websocket", "path": path, "headers": headers}


def test_it_lets_widget_origins_open_the_customer_socket_only(widget_origins: None) -> None:
    customer = "/ws/threads/7b4c3f7e-0000-4000-8000-000000000000/"
    assert SocketOriginValidator.allows(scope(customer, SHOP))
    assert SocketOriginValidator.allows(scope(customer, "http://127.0.0.1:9000"))
    assert not SocketOriginValidator.allows(scope("/ws/desk/", SHOP))
    assert not SocketOriginValidator.allows(scope(customer, "https://evil.example"))
    assert not SocketOriginValidator.allows(scope(customer, None))


def test_it_keeps_both_sockets_to_allowed_hosts_by_default(settings: Any) -> None:
    settings.SUPPORTDESK_WIDGET_ORIGINS = []
    for path in ("/ws/threads/x/", "/ws/desk/"):
        assert SocketOriginValidator.allows(scope(path, "http://127.0.0.1:8000"))
        assert not SocketOriginValidator.allows(scope(path, SHOP))
        assert not SocketOriginValidator.allows(scope(path, "http://[::1"))  # malformed
