"""A failing channel layer (Redis down or restarted) closes the sockets so that their
clients reconnect and catch up; it never crashes a consumer silently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.factories import make_thread
from tests.realtime.sockets import communicator, customer_socket

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


class Outage:
    """Once ``start()`` is called, the layer's receive fails under one socket only (as
    under a Redis restart, where one receive sees the reset and the others carry on
    without their group memberships)."""

    def __init__(self, layer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = asyncio.Event()
        self.failed = 0
        original = layer.receive

        async def receive(channel: str) -> Any:
            waiter = asyncio.ensure_future(self.down.wait())
            message = asyncio.ensure_future(original(channel))
            done, _ = await asyncio.wait({waiter, message}, return_when=asyncio.FIRST_COMPLETED)
            if message in done:
                waiter.cancel()
                return message.result()
            if self.failed:
                return await message
            self.failed += 1
            message.cancel()
            raise RedisConnectionError("Connection reset by peer")

        monkeypatch.setattr(layer, "receive", receive)

    def start(self) -> None:
        self.down.set()


async def closed_with(socket: Any) -> Any:
    output = await socket.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return output.get("code")


async def test_it_closes_every_socket_with_1012_when_the_layer_fails(
    channel_layer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = Outage(channel_layer, monkeypatch)
    first_thread, first_token = await database_sync_to_async(make_thread)()
    second_thread, second_token = await database_sync_to_async(make_thread)()
    first = await customer_socket(first_thread.pk, first_token)
    second = await customer_socket(second_thread.pk, second_token)
    outage.start()
    assert await closed_with(first) == 1012
    assert await closed_with(second) == 1012
    await first.disconnect()
    await second.disconnect()


async def test_it_refuses_the_handshake_while_the_layer_is_down(
    channel_layer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def group_add(group: str, channel: str) -> None:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(channel_layer, "group_add", group_add)
    thread, token = await database_sync_to_async(make_thread)()
    socket = communicator(f"/ws/threads/{thread.pk}/?token={token}")
    connected, code = await socket.connect(timeout=5)
    assert (connected, code) == (False, 1012)
    await socket.disconnect()
