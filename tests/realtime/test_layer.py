"""supportdesk.layers.RedisChannelLayer on a private redis-server: one reader per process
hands messages to the sockets' queues, and a Redis failure to every socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.exceptions import RedisError

from supportdesk.layers import RedisChannelLayer
from tests.realtime.servers import REDIS_SERVER, RedisServer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def layer(redis: RedisServer) -> AsyncIterator[RedisChannelLayer]:
    made = RedisChannelLayer(hosts=[{"address": redis.url, "socket_timeout": None}])
    yield made
    await made.close_pools()


async def test_it_delivers_a_group_message_to_every_channel_of_the_process(
    layer: RedisChannelLayer,
) -> None:
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("room", channel)
    waiting = [asyncio.ensure_future(layer.receive(channel)) for channel in channels]
    await asyncio.sleep(0.05)
    await layer.group_send("room", {"type": "frame.send", "text": "hi"})
    received = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [m["text"] for m in received] == ["hi", "hi", "hi"]


async def test_it_keeps_the_order_of_messages_per_channel(layer: RedisChannelLayer) -> None:
    channel = await layer.new_channel()
    for index in range(20):
        await layer.send(channel, {"type": "frame.send", "n": index})
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(20)]
    assert received == list(range(20))


async def test_it_hands_a_redis_failure_to_every_waiting_channel(
    layer: RedisChannelLayer, redis: RedisServer
) -> None:
    channels = [await layer.new_channel() for _ in range(3)]
    waiting = [asyncio.ensure_future(layer.receive(channel)) for channel in channels]
    await asyncio.sleep(0.1)
    redis.kill()
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
    assert all(isinstance(result, RedisError) for result in results), results


async def test_it_reads_again_once_redis_is_back(
    layer: RedisChannelLayer, redis: RedisServer
) -> None:
    channel = await layer.new_channel()
    first = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.1)
    redis.kill()
    with pytest.raises(RedisError):
        await asyncio.wait_for(first, 10)
    redis.start()
    again = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.1)
    await layer.send(channel, {"type": "frame.send", "text": "back"})
    assert (await asyncio.wait_for(again, 10))["text"] == "back"


async def test_it_receives_on_channels_of_other_prefixes(layer: RedisChannelLayer) -> None:
    channel = await layer.new_channel("health.")
    await layer.send(channel, {"type": "health.ping"})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "health.ping"
