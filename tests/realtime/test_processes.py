"""Real server processes and real sockets: fan-out across processes on channels-redis,
and catch-up through faults (a server killed mid-stream, a Redis restart) after which
every client has every message exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect

from tests.factories import UserFactory, make_thread
from tests.realtime.conftest import LAYER_PREFIX, LAYER_REDIS_URL
from tests.realtime.servers import REDIS_SERVER, AsgiServer, RedisServer, http_json
from tests.realtime.sockets import staff_token
from tests.realtime.wsclient import Follower, post_messages, until
from threads.models import Message, Thread

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True), pytest.mark.slow]

MESSAGES = 40
KILL_AFTER = 15


@pytest.fixture
def redis_url() -> Iterator[str]:
    """REDIS_URL's server (with a database and prefix of this run's own), or a private one."""
    if LAYER_REDIS_URL:
        yield LAYER_REDIS_URL
        return
    if REDIS_SERVER is None:
        pytest.skip("needs REDIS_URL or redis-server")
    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


class Servers:
    def __init__(self) -> None:
        self.started: list[AsgiServer] = []

    def start(self, **kwargs: Any) -> AsgiServer:
        server = AsgiServer(prefix=LAYER_PREFIX, **kwargs)
        server.start()
        self.started.append(server)
        return server


@pytest.fixture
def servers() -> Iterator[Servers]:
    pool = Servers()
    yield pool
    for server in pool.started:
        server.kill()


@database_sync_to_async
def new_thread() -> tuple[Thread, str]:
    return make_thread()


@database_sync_to_async
def public_ids(thread: Thread) -> list[str]:
    return [
        str(pk)
        for pk in Message.objects.filter(thread=thread, visibility="public")
        .order_by("seq")
        .values_list("pk", flat=True)
    ]


async def follow(followers: list[Follower], stop: asyncio.Event) -> list[asyncio.Task[None]]:
    tasks = [asyncio.ensure_future(f.run(stop)) for f in followers]
    for follower in followers:
        await asyncio.wait_for(follower.connected.wait(), 15)
    return tasks


def assert_exactly_once(followers: list[Follower], expected: list[str]) -> None:
    for follower in followers:
        assert follower.ids() == expected
        assert follower.socket_duplicates == 0


async def test_it_delivers_a_message_posted_to_one_server_to_sockets_on_another(
    servers: Servers, redis_url: str
) -> None:
    first = servers.start(redis_url=redis_url)
    second = servers.start(redis_url=redis_url)
    thread, token = await new_thread()
    url = f"{second.ws}/ws/threads/{thread.pk}/?token={token}&after=0"
    async with connect(url, origin=second.http) as socket:  # type: ignore[arg-type]
        status, body = await asyncio.to_thread(
            http_json,
            "POST",
            f"{first.http}/api/v1/threads/{thread.pk}/messages/",
            {"content": "Posted to the first server"},
            {"Authorization": f"Bearer {token}"},
        )
        assert status == 201
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert frame["type"] == "message.created"
    assert frame["message"]["id"] == body["id"]


async def test_it_delivers_desk_frames_across_servers(servers: Servers, redis_url: str) -> None:
    first = servers.start(redis_url=redis_url)
    second = servers.start(redis_url=redis_url)
    thread, token = await new_thread()
    agent = await database_sync_to_async(UserFactory)()
    staff = await staff_token(agent)
    async with connect(f"{second.ws}/ws/desk/?token={staff}", origin=second.http) as desk:  # type: ignore[arg-type]
        status, _ = await asyncio.to_thread(
            http_json,
            "POST",
            f"{first.http}/api/v1/threads/{thread.pk}/messages/",
            {"content": "Hello desk"},
            {"Authorization": f"Bearer {token}"},
        )
        assert status == 201
        while True:
            frame = json.loads(await asyncio.wait_for(desk.recv(), 10))
            if frame["type"] == "message.created":
                break
    assert frame["thread"] == str(thread.pk)
    assert frame["message"]["content"] == "Hello desk"
    assert frame["message"]["visibility"] == "public"


# Longer than channels-redis's blocking read (5 s) and redis-py's old socket timeout:
# frames sent after such a silence once arrived seconds late, or not at all.
IDLE_SECONDS = 6.5
# Far below the pages' polling fallback (8 s): a frame that took longer did not come live.
LIVE_WITHIN_SECONDS = 3.0


async def test_it_delivers_frames_sent_after_the_processes_were_idle(
    servers: Servers, redis_url: str
) -> None:
    first = servers.start(redis_url=redis_url)
    second = servers.start(redis_url=redis_url)
    thread, token = await new_thread()
    staff = await staff_token(await database_sync_to_async(UserFactory)())
    customer_url = f"{second.ws}/ws/threads/{thread.pk}/?token={token}&after=0"
    async with (
        connect(customer_url, origin=second.http) as customer,  # type: ignore[arg-type]
        connect(f"{second.ws}/ws/desk/?token={staff}", origin=second.http) as desk,  # type: ignore[arg-type]
    ):
        for round_ in range(2):
            await asyncio.sleep(IDLE_SECONDS)
            content = f"After a silence, round {round_}"
            status, _ = await asyncio.to_thread(
                http_json,
                "POST",
                f"{first.http}/api/v1/threads/{thread.pk}/messages/",
                {"content": content},
                {"Authorization": f"Bearer {token}"},
            )
            assert status == 201
            for socket in (customer, desk):
                async with asyncio.timeout(LIVE_WITHIN_SECONDS):
                    while True:
                        frame = json.loads(await socket.recv())
                        if frame["type"] == "message.created":
                            break
                assert frame["message"]["content"] == content


async def test_it_catches_up_every_client_after_the_server_is_killed_mid_stream(
    servers: Servers,
) -> None:
    # The configured layer: in-memory on the default run (posts go to the same server),
    # channels-redis with REDIS_URL.
    server = servers.start(redis_url=LAYER_REDIS_URL)
    thread, token = await new_thread()
    followers = [
        Follower(ws=server.ws, http=server.http, thread_id=str(thread.pk), token=token)
        for _ in range(3)
    ]
    stop = asyncio.Event()
    tasks = await follow(followers, stop)
    posted: list[str] = []
    poster = asyncio.ensure_future(
        post_messages(
            servers=[server.http],
            thread_id=str(thread.pk),
            token=token,
            count=MESSAGES,
            interval=0.02,
            posted=posted,
        )
    )
    assert await until(lambda: len(posted) >= KILL_AFTER, 30)
    server.kill()
    await asyncio.sleep(0.3)
    server.start()
    await asyncio.wait_for(poster, 60)
    expected = await public_ids(thread)
    assert expected == posted
    done = await until(lambda: all(f.ids() == expected for f in followers), 30)
    stop.set()
    await asyncio.gather(*tasks)
    assert done, [(len(f.messages), f.connections) for f in followers]
    assert_exactly_once(followers, expected)
    assert all(f.connections >= 2 for f in followers)


async def test_it_catches_up_every_client_after_redis_restarts(
    servers: Servers, private_redis: RedisServer
) -> None:
    first = servers.start(redis_url=private_redis.url)
    second = servers.start(redis_url=private_redis.url)
    thread, token = await new_thread()
    followers = [
        Follower(ws=server.ws, http=server.http, thread_id=str(thread.pk), token=token)
        for server in (first, second, first, second)
    ]
    stop = asyncio.Event()
    tasks = await follow(followers, stop)
    posted: list[str] = []
    poster = asyncio.ensure_future(
        post_messages(
            servers=[first.http, second.http],
            thread_id=str(thread.pk),
            token=token,
            count=MESSAGES,
            interval=0.02,
            posted=posted,
        )
    )
    assert await until(lambda: len(posted) >= KILL_AFTER, 30)
    private_redis.kill()
    await asyncio.sleep(0.5)
    private_redis.start()
    await asyncio.wait_for(poster, 60)
    expected = await public_ids(thread)
    assert expected == posted
    done = await until(lambda: all(f.ids() == expected for f in followers), 30)
    stop.set()
    await asyncio.gather(*tasks)
    assert done, [(len(f.messages), f.connections) for f in followers]
    assert_exactly_once(followers, expected)
    assert all(f.connections >= 2 for f in followers)
