"""The websocket half of the authorisation matrix, generated from the consumer routes
(``supportdesk.routing``): the customer socket takes the thread's own token only (4403
otherwise, before any frame), the desk socket active agents only (4401 without usable
credentials, 4403 for a non-agent), and any other path is refused (4404)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.realtime.sockets import ORIGIN, communicator, receive
from tests.security import routes
from tests.security.routes import WS_CUSTOMER, WS_DESK, WS_NOT_FOUND, SocketRoute
from tests.security.world import World, build_world

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

SOCKET_ROUTES = routes.socket_routes()


def test_it_classifies_every_socket_route() -> None:
    unknown = [r for r in SOCKET_ROUTES if r.consumer not in routes.WS_CLASSIFIED]
    assert not unknown, f"classify these consumers in tests/security/routes.py: {unknown}"
    assert {routes.WS_CLASSIFIED[r.consumer] for r in SOCKET_ROUTES} == {
        WS_CUSTOMER,
        WS_DESK,
        WS_NOT_FOUND,
    }


def _session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _handshake(path: str, cookie: bytes | None = None) -> tuple[bool, Any, Any]:
    headers = [ORIGIN] + ([(b"cookie", cookie)] if cookie else [])
    socket = communicator(path, headers)
    connected, code = await socket.connect(timeout=5)
    first = await receive(socket) if connected and "/ws/threads/" in path else None
    await socket.disconnect()
    return connected, code, first


# principal → (query string, session user attribute) for a socket route's handshake.
def _credentials(world: World, principal: str) -> tuple[str, str | None]:
    return {
        "anonymous": ("", None),
        "customer": (f"token={world.token}", None),
        "other_customer": (f"token={world.other_token}", None),
        "staff_token": (f"token={world.tokens['staff']}", None),
        "staff_session": ("", "staff"),
        "agent_member_token": (f"token={world.tokens['agent_member']}", None),
        "plain_token": (f"token={world.tokens['plain']}", None),
        "plain_session": ("", "plain"),
        "inactive_token": (f"token={world.tokens['inactive']}", None),
        "inactive_session": ("", "inactive"),
    }[principal]


# access class → principal → close code of the refusal, or "accept".
EXPECTED: dict[str, dict[str, int | str]] = {
    WS_CUSTOMER: {
        "anonymous": 4403,
        "other_customer": 4403,
        "staff_token": 4403,
        "staff_session": 4403,
        "plain_session": 4403,
        "inactive_token": 4403,
        "customer": "accept",
    },
    WS_DESK: {
        "anonymous": 4401,
        "customer": 4401,  # a thread token is no staff credential
        "other_customer": 4401,
        "inactive_token": 4401,
        "inactive_session": 4401,
        "plain_token": 4403,
        "plain_session": 4403,
        "staff_token": "accept",
        "staff_session": "accept",
        "agent_member_token": "accept",
    },
    WS_NOT_FOUND: {
        "anonymous": 4404,
        "customer": 4404,
        "staff_token": 4404,
        "staff_session": 4404,
    },
}


@pytest.mark.parametrize("route", SOCKET_ROUTES, ids=[r.consumer for r in SOCKET_ROUTES])
async def test_it_refuses_sockets_to_everyone_the_route_does_not_serve(
    route: SocketRoute,
) -> None:
    world = await database_sync_to_async(build_world)()
    base = route.path({"thread_id": world.thread.pk})
    for principal, expected in EXPECTED[routes.WS_CLASSIFIED[route.consumer]].items():
        query, session_user = _credentials(world, principal)
        cookie = None
        if session_user is not None:
            cookie = await database_sync_to_async(_session_cookie)(getattr(world, session_user))
        connected, code, first = await _handshake(f"{base}?{query}", cookie)
        if expected == "accept":
            assert connected, (principal, code)
            if first is not None:  # the customer's catch-up is their own thread's
                assert first["message"]["thread"] == str(world.thread.pk)
        else:
            assert (connected, code) == (False, expected), principal


@pytest.mark.parametrize("route", SOCKET_ROUTES, ids=[r.consumer for r in SOCKET_ROUTES])
async def test_it_refuses_a_foreign_origin_on_every_socket(route: SocketRoute) -> None:
    world = await database_sync_to_async(build_world)()
    path = route.path({"thread_id": world.thread.pk}) + f"?token={world.token}"
    socket = communicator(path, [(b"origin", b"http://evil.example")])
    connected, _ = await socket.connect(timeout=5)
    assert not connected
    await socket.disconnect()
