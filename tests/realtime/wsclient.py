"""A customer client over real sockets, doing what static/supportdesk/realtime.js does:
reconnect with exponential backoff and jitter, ``after=<last seq>`` on reconnect,
de-duplication by message id, and a REST fetch when ``prev_seq`` shows a gap."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.realtime.servers import http_json


class Follower:
    def __init__(self, *, ws: str, http: str, thread_id: str, token: str) -> None:
        self.ws, self.http = ws, http
        self.thread_id, self.token = thread_id, token
        self.messages: dict[str, dict[str, Any]] = {}
        self.last_seq = 0
        self.connections = 0
        self.gap_fetches = 0
        # A message.created frame for a message this connection had already sent: the
        # server's own de-duplication failed (must stay 0).
        self.socket_duplicates = 0
        # Frames for messages the client already had (from an earlier connection or a
        # REST fetch), dropped by its de-duplication.
        self.dropped_duplicates = 0
        self.connected = asyncio.Event()

    def ids(self) -> list[str]:
        return [m["id"] for m in sorted(self.messages.values(), key=lambda m: m["seq"])]

    def deliver(self, message: dict[str, Any]) -> None:
        if message["id"] in self.messages:
            self.dropped_duplicates += 1
            return
        self.messages[message["id"]] = message
        self.last_seq = max(self.last_seq, int(message["seq"]))

    async def fetch_gap(self) -> None:
        self.gap_fetches += 1
        while True:
            url = f"{self.http}/api/v1/threads/{self.thread_id}/messages/?after={self.last_seq}&limit=200"
            status, body = await asyncio.to_thread(
                http_json, "GET", url, None, {"Authorization": f"Bearer {self.token}"}
            )
            if status != 200:
                raise OSError(f"gap fetch answered {status}")
            for message in body["results"]:
                self.deliver(message)
            if not body["has_more"]:
                return

    async def handle(self, frame: dict[str, Any], sent_here: set[str]) -> None:
        if frame["type"] != "message.created":
            return
        message = frame["message"]
        if message["id"] in sent_here:
            self.socket_duplicates += 1
        sent_here.add(message["id"])
        if int(frame.get("prev_seq", 0)) > self.last_seq:
            await self.fetch_gap()
        self.deliver(message)

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            url = f"{self.ws}/ws/threads/{self.thread_id}/?token={self.token}&after={self.last_seq}"
            try:
                async with connect(url, origin=self.http, open_timeout=5) as socket:  # type: ignore[arg-type]
                    self.connections += 1
                    self.connected.set()
                    attempt = 0
                    sent_here: set[str] = set()
                    while not stop.is_set():
                        try:
                            raw = await asyncio.wait_for(socket.recv(), 0.2)
                        except TimeoutError:
                            continue
                        await self.handle(json.loads(raw), sent_here)
            except (OSError, WebSocketException, TimeoutError):
                pass
            if stop.is_set():
                return
            # Exponential backoff with full jitter, capped low for the tests.
            await asyncio.sleep(random.uniform(0.5, 1.0) * min(0.8, 0.05 * 2**attempt))
            attempt += 1


async def post_messages(
    *,
    servers: list[str],
    thread_id: str,
    token: str,
    count: int,
    interval: float,
    posted: list[str],
) -> None:
    """Post ``count`` customer messages round-robin over ``servers``; a failed POST (the
    server is down) is retried with the same Idempotency-Key, so each lands once."""
    for index in range(count):
        key = str(uuid.uuid4())
        for attempt in range(400):
            server = servers[(index + attempt) % len(servers)]
            try:
                status, body = await asyncio.to_thread(
                    http_json,
                    "POST",
                    f"{server}/api/v1/threads/{thread_id}/messages/",
                    {"content": f"message {index}"},
                    {"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                )
            except OSError:
                status, body = 0, None
            if status == 201:
                posted.append(body["id"])
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"message {index} could not be posted")
        await asyncio.sleep(interval)


async def until(predicate: Any, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())
