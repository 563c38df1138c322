"""Untrusted frames on both sockets: each gets an error frame and the socket keeps working."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.factories import UserFactory, make_thread
from tests.realtime.sockets import customer_socket, desk_socket, receive, receive_type, send

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["customer", "desk"])
async def socket(request: pytest.FixtureRequest) -> AsyncIterator[WebsocketCommunicator]:
    if request.param == "customer":
        thread, token = await database_sync_to_async(make_thread)()
        opened = await customer_socket(thread.pk, token)
    else:
        opened = await desk_socket(await database_sync_to_async(UserFactory)())
        await receive_type(opened, "presence.updated")  # the agent's own, on connect
    yield opened
    await opened.disconnect()


async def error_code(socket: WebsocketCommunicator) -> str:
    frame = await receive(socket)
    assert frame["type"] == "error", frame
    assert isinstance(frame["message"], str)
    return str(frame["code"])


async def still_alive(socket: WebsocketCommunicator) -> bool:
    await send(socket, {"type": "heartbeat"})
    return (await receive(socket)) == {"type": "heartbeat.ack"}


async def test_it_answers_an_oversized_frame_with_an_error(socket: WebsocketCommunicator) -> None:
    await socket.send_to(text_data=json.dumps({"type": "heartbeat", "pad": "x" * 70_000}))
    assert await error_code(socket) == "frame_too_large"
    assert await still_alive(socket)


async def test_it_counts_the_size_of_a_frame_in_utf8_bytes(socket: WebsocketCommunicator) -> None:
    # 22 000 characters, 66 000 bytes.
    await socket.send_to(
        text_data=json.dumps({"type": "heartbeat", "pad": "€" * 22_000}, ensure_ascii=False)
    )
    assert await error_code(socket) == "frame_too_large"


async def test_it_answers_an_unknown_frame_type_with_an_error(
    socket: WebsocketCommunicator,
) -> None:
    await send(socket, {"type": "launch_missiles"})
    assert await error_code(socket) == "unknown_type"
    assert await still_alive(socket)


async def test_it_answers_malformed_json_with_an_error(socket: WebsocketCommunicator) -> None:
    await socket.send_to(text_data='{"type": "heartbeat"')
    assert await error_code(socket) == "invalid_json"
    assert await still_alive(socket)


async def test_it_answers_deeply_nested_json_with_an_error(socket: WebsocketCommunicator) -> None:
    await socket.send_to(text_data="[" * 30_000 + "]" * 30_000)
    assert await error_code(socket) == "invalid_json"
    assert await still_alive(socket)


@pytest.mark.parametrize(
    "text", ["[]", "42", '"typing"', "null", '{"active": true}', '{"type": 7}']
)
async def test_it_answers_a_frame_that_is_not_a_typed_object_with_an_error(
    socket: WebsocketCommunicator, text: str
) -> None:
    await socket.send_to(text_data=text)
    assert await error_code(socket) == "invalid_frame"


async def test_it_answers_a_binary_frame_with_an_error(socket: WebsocketCommunicator) -> None:
    await socket.send_to(bytes_data=b"\x00\x01\x02")
    assert await error_code(socket) == "binary_not_supported"
    assert await still_alive(socket)


@pytest.mark.parametrize("active", ["yes", 1, None])
async def test_it_answers_typing_without_a_boolean_with_an_error(
    socket: WebsocketCommunicator, active: Any
) -> None:
    await send(
        socket,
        {"type": "typing", "thread": "5f0c3f0e-0000-4000-8000-000000000000", "active": active},
    )
    assert await error_code(socket) == "invalid_frame"


async def test_it_answers_a_flood_of_frames_with_rate_limit_errors(
    socket: WebsocketCommunicator,
) -> None:
    for _ in range(60):
        await socket.send_to(text_data='{"type": "nope"}')
    codes = [await error_code(socket) for _ in range(60)]
    assert "rate_limited" in codes


async def test_it_refuses_desk_frames_on_the_customer_socket() -> None:
    thread, token = await database_sync_to_async(make_thread)()
    socket = await customer_socket(thread.pk, token)
    await send(socket, {"type": "subscribe", "thread": str(thread.pk), "after": 0})
    assert await error_code(socket) == "unknown_type"
    await send(socket, {"type": "presence", "status": "busy"})
    assert await error_code(socket) == "unknown_type"
    await socket.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "subscribe", "thread": "not-a-uuid", "after": 0},
        {"type": "subscribe", "thread": "5f0c3f0e-0000-4000-8000-000000000000", "after": -1},
        {"type": "subscribe", "thread": "5f0c3f0e-0000-4000-8000-000000000000", "after": True},
        {"type": "subscribe", "thread": "5f0c3f0e-0000-4000-8000-000000000000", "after": "1"},
        {"type": "subscribe", "thread": "5f0c3f0e-0000-4000-8000-000000000000", "after": 2**40},
        {"type": "subscribe", "thread": ["x"]},
        {"type": "unsubscribe", "thread": 12},
        {"type": "typing", "thread": None, "active": True},
        {"type": "presence", "status": ["busy"]},
    ],
)
async def test_it_answers_invalid_desk_frames_with_an_error(frame: dict[str, Any]) -> None:
    desk = await desk_socket(await database_sync_to_async(UserFactory)())
    await receive_type(desk, "presence.updated")
    await send(desk, frame)
    assert await error_code(desk) == "invalid_frame"
    assert await still_alive(desk)
    await desk.disconnect()
