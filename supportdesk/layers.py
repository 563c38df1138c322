"""The channel layer for production: channels-redis with one reader per process.

channels-redis already stores every message for the sockets of one process under one
Redis key, but each socket's ``receive()`` competes for a lock to read it: on a fan-out
to N sockets of a process, N receivers wake, N - 1 lose the race and every one of them
makes new tasks to wait again. Here one task per process reads the key (BZPOPMIN, as
before) and hands each message to the waiting sockets' queues, so a fan-out costs what
it costs on the in-memory layer plus one Redis round trip.

When that read fails (Redis restarted or unreachable) the error is handed to *every*
socket of the process: the consumers close them (threads/consumers.py), their clients
reconnect, join their groups again (a restarted Redis has forgotten them) and catch up
from the database. Sending, groups and everything else are channels-redis's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer

logger = logging.getLogger(__name__)


class RedisChannelLayer(BaseRedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        # What new_channel() names the sockets' channels: "specific.<process>!<id>".
        self._process_channel = f"specific.{self.client_prefix}!"

    async def receive(self, channel: str) -> Any:
        if not channel.startswith(self._process_channel):
            # Channels of other prefixes (the health check's) and general channels.
            return await super().receive(channel)
        loop = asyncio.get_running_loop()
        if self._reader_loop is not loop:
            # A new event loop (a test's, or after a fork): start afresh on it.
            self._queues = {}
            self._reader = None
            self._reader_loop = loop
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = asyncio.Queue()
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read(), name="channel-layer-reader")
        try:
            item = await queue.get()
        except asyncio.CancelledError:
            # The consumer is ending; what was still queued for it has nobody to read it.
            if self._queues.get(channel) is queue:
                del self._queues[channel]
            raise
        if isinstance(item, BaseException):
            raise item
        return item

    async def _read(self) -> None:
        while True:
            try:
                channels, message = await self.receive_single(self._process_channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "channel layer read failed: %r; closing this process's sockets", error
                )
                failed, self._queues = self._queues, {}
                for queue in failed.values():
                    queue.put_nowait(error)
                return
            for name in channels if isinstance(channels, list) else [channels]:
                waiting = self._queues.get(name)
                if waiting is not None:
                    waiting.put_nowait(message)
