"""Opening the sockets under test through the real ASGI application (Origin check,
routing, auth middleware, consumers)."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from supportdesk.asgi import application

ORIGIN = (b"origin", b"http://127.0.0.1")
TIMEOUT = 5.0


def communicator(
    path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=headers or [ORIGIN])


async def open_socket(
    path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> WebsocketCommunicator:
    socket = communicator(path, headers)
    connected, code = await socket.connect(timeout=TIMEOUT)
    assert connected, f"refused with {code}"
    return socket


async def customer_socket(thread_id: Any, token: str, after: int = 0) -> WebsocketCommunicator:
    return await open_socket(f"/ws/threads/{thread_id}/?token={token}&after={after}")


@database_sync_to_async
def staff_token(user: Any) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)


async def desk_socket(user: Any) -> WebsocketCommunicator:
    return await open_socket(f"/ws/desk/?token={await staff_token(user)}")


async def receive(socket: WebsocketCommunicator, timeout: float = TIMEOUT) -> dict[str, Any]:
    frame = json.loads(await socket.receive_from(timeout=timeout))
    assert isinstance(frame, dict)
    return frame


async def receive_type(
    socket: WebsocketCommunicator, frame_type: str, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """The next frame of ``frame_type``, skipping others (the desk hears everything)."""
    while True:
        frame = await receive(socket, timeout)
        if frame["type"] == frame_type:
            return frame


async def receive_all(socket: WebsocketCommunicator, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Every frame until the socket stays quiet for ``quiet`` seconds."""
    frames: list[dict[str, Any]] = []
    while not await socket.receive_nothing(timeout=quiet):
        frames.append(await receive(socket))
    return frames


async def send(socket: WebsocketCommunicator, frame: dict[str, Any]) -> None:
    await socket.send_to(text_data=json.dumps(frame))
