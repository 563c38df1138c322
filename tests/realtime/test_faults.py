"""The realtime fault test at scale: 50 customer sockets on two uvicorn processes follow
one thread while 1 000 messages are posted; one server is killed with SIGKILL and the
private Redis is restarted mid-run. Every client ends with every message exactly once,
in seq order, through reconnects with ``after=<last seq>`` and REST gap fetches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.faults.scale import count
from tests.realtime.conftest import LAYER_PREFIX
from tests.realtime.servers import AsgiServer, RedisServer
from tests.realtime.test_processes import assert_exactly_once, follow, new_thread, public_ids
from tests.realtime.wsclient import Follower, post_messages, until

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.faults,
]

CLIENTS = count("clients", quick=10, full=50)
MESSAGES = count("messages", quick=120, full=1000)
POSTERS = 4  # concurrent customers' requests (one thread, so one seq counter)
# Generous: a shared CI machine may be slow; nothing here measures time.
SETTLE_SECONDS = 180.0


@pytest.fixture
def two_servers(private_redis: RedisServer) -> Iterator[list[AsgiServer]]:
    started = [AsgiServer(redis_url=private_redis.url, prefix=LAYER_PREFIX) for _ in range(2)]
    for server in started:
        server.start()
    yield started
    for server in started:
        server.kill()


async def post_share(
    servers: list[AsgiServer], thread_id: str, token: str, share: int, posted: list[str]
) -> None:
    await post_messages(
        servers=[server.http for server in servers],
        thread_id=thread_id,
        token=token,
        count=share,
        interval=0.0,
        posted=posted,
    )


async def test_it_delivers_every_message_once_to_50_clients_through_a_server_kill_and_a_redis_restart(
    two_servers: list[AsgiServer], private_redis: RedisServer
) -> None:
    killed, survivor = two_servers
    thread, token = await new_thread()
    followers = [
        Follower(ws=server.ws, http=server.http, thread_id=str(thread.pk), token=token)
        for server in (two_servers * CLIENTS)[:CLIENTS]
    ]
    stop = asyncio.Event()
    tasks = await follow(followers, stop)
    posted: list[str] = []
    shares = [MESSAGES // POSTERS + (i < MESSAGES % POSTERS) for i in range(POSTERS)]
    posters = [
        asyncio.ensure_future(post_share(two_servers, str(thread.pk), token, share, posted))
        for share in shares
    ]

    assert await until(lambda: len(posted) >= MESSAGES // 3, SETTLE_SECONDS)
    killed.kill()
    await asyncio.sleep(0.3)
    killed.start()
    assert await until(lambda: len(posted) >= 2 * MESSAGES // 3, SETTLE_SECONDS)
    private_redis.kill()
    await asyncio.sleep(0.5)
    private_redis.start()
    await asyncio.wait_for(asyncio.gather(*posters), SETTLE_SECONDS)

    expected = await public_ids(thread)
    assert sorted(expected) == sorted(posted) and len(expected) == MESSAGES
    done = await until(lambda: all(f.ids() == expected for f in followers), SETTLE_SECONDS)
    stop.set()
    await asyncio.gather(*tasks)
    missing: list[Any] = [
        (index, len(f.messages), f.connections) for index, f in enumerate(followers)
    ]
    assert done, missing
    assert_exactly_once(followers, expected)
    # Everyone reconnected after the Redis restart; the killed server's clients twice.
    on_killed = [f for f in followers if f.ws == killed.ws]
    assert all(f.connections >= 2 for f in followers)
    assert all(f.connections >= 3 for f in on_killed), [f.connections for f in on_killed]
    assert survivor.process is not None and survivor.process.poll() is None
