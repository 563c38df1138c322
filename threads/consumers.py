"""The websocket consumers (API.md "Realtime"): one per customer thread, one for the desk.

They are thin: authenticate at the handshake, join their channel-layer groups, send the
catch-up, then pass the frames rendered by :mod:`threads.realtime` through. The only
state they keep is what they already sent (so a live frame racing the catch-up is not
sent twice) and a little rate limiting. What clients send is untrusted: a frame that is
too large, not JSON, or of an unknown type gets ``{"type": "error", "code": ...}`` and
the socket stays open; nothing a client sends can raise out of a consumer.

Close codes: 4400 bad query string, 4401 no credentials (desk), 4403 wrong token or not
staff (sent before accepting, so servers refuse the handshake with HTTP 403), 4404
unknown path, 1012 the channel layer (Redis) failed: reconnect and catch up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import weakref
from typing import Any, ClassVar
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth.models import AnonymousUser

from threads import realtime, selectors
from threads.models import Thread
from threads.services import user_display_name, user_is_agent

logger = logging.getLogger(__name__)

LAYER_ERRORS = realtime.LAYER_ERRORS

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_LAYER_FAILED = 1012  # "service restart": the client reconnects and catches up

MAX_SEQ = 2**31 - 1
MAX_TOKEN_LENGTH = 512
MAX_SUBSCRIPTIONS = 500
# Incoming frames: a bucket of this many, refilled at this rate per second.
FRAME_BURST = 40
FRAME_RATE = 20.0
# A typing indicator that stays on is repeated at most this often.
TYPING_REPEAT_SECONDS = 3.0
# Desk heartbeats are written to the presence row at most this often.
PRESENCE_WRITE_SECONDS = 20.0
# channels-redis forgets group members after a day; long-lived sockets re-join hourly.
GROUP_REFRESH_SECONDS = 3600.0

# The open sockets of this process: when the layer fails under one of them, the layer
# may have lost every group membership (a Redis restart), so all of them are closed and
# their clients reconnect and catch up.
_open_consumers: weakref.WeakSet[RealtimeConsumer] = weakref.WeakSet()


_closing_tasks: set[asyncio.Future[None]] = set()


def _close_all_after_layer_failure(origin: RealtimeConsumer) -> None:
    for consumer in list(_open_consumers):
        if consumer is not origin and consumer.accepted and not consumer.closing:
            task = asyncio.ensure_future(consumer.close(code=CLOSE_LAYER_FAILED))
            _closing_tasks.add(task)
            task.add_done_callback(_closing_tasks.discard)


def _query(scope: dict[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    try:
        text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        return {}
    return {key: values[-1] for key, values in parse_qs(text).items()}


def _query_seq(value: str) -> int | None:
    """A seq from the query string; None when malformed."""
    if value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if number <= MAX_SEQ else None
    return None


def _frame_seq(value: Any) -> int | None:
    """A seq from a frame: a JSON integer (not a boolean); None when malformed."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ:
        return value
    return None


def _parse_uuid(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class RealtimeConsumer(AsyncWebsocketConsumer):
    """Frame limits, JSON parsing, error frames and channel-layer failures for both sockets.

    Subclasses list the frame types they accept in ``frame_handlers`` (type → method).
    """

    frame_handlers: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accepted = False
        self.closing = False
        self.joined: list[str] = []
        self.joined_at = 0.0
        self._tokens = float(FRAME_BURST)
        self._tokens_at = time.monotonic()
        self._typing: dict[str, tuple[bool, float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        realtime.note_consumer_loop(asyncio.get_running_loop())
        _open_consumers.add(self)
        try:
            await super().__call__(scope, receive, send)
        except LAYER_ERRORS:
            logger.warning("channel layer failed under a websocket; closing", exc_info=True)
            _close_all_after_layer_failure(self)
            if not self.closing:
                self.closing = True
                try:
                    # Before the accept this refuses the handshake; the client retries.
                    await send({"type": "websocket.close", "code": CLOSE_LAYER_FAILED})
                except Exception:
                    logger.debug("socket already gone", exc_info=True)
        finally:
            _open_consumers.discard(self)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Deliveries never touch the database: skip the base class's
        # close_old_connections() thread hop, which would cost a thread switch per socket
        # per frame in a fan-out.
        if message.get("type") == "frame.send":
            await self.frame_send(message)
            return
        await super().dispatch(message)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code, reason)

    async def join(self, *groups: str) -> None:
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            if group not in self.joined:
                self.joined.append(group)
        self.joined_at = time.monotonic()

    async def refresh_groups(self) -> None:
        if self.joined and time.monotonic() - self.joined_at > GROUP_REFRESH_SECONDS:
            await self.join(*self.joined)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.closing = True
        for group in self.joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except LAYER_ERRORS:
                break  # the layer is down; the membership expires with it
        await super().websocket_disconnect(message)

    async def send_text(self, text: str) -> None:
        if self.closing:
            return
        try:
            await self.send(text_data=text)
        except OSError:
            # The client went away (uvicorn raises ClientDisconnected); the server's
            # websocket.disconnect follows and ends the consumer.
            self.closing = True

    async def send_error(self, code: str, message: str) -> None:
        await self.send_text(realtime.error_text(code, message))

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(FRAME_BURST, self._tokens + (now - self._tokens_at) * FRAME_RATE)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.accepted or self.closing:
            return
        if text_data is None:
            await self.send_error("binary_not_supported", "Frames are JSON text.")
            return
        if len(text_data) > realtime.MAX_FRAME_BYTES or (
            len(text_data) * 4 > realtime.MAX_FRAME_BYTES
            and len(text_data.encode("utf-8", "surrogatepass")) > realtime.MAX_FRAME_BYTES
        ):
            await self.send_error("frame_too_large", "Frames are at most 64 KiB.")
            return
        if not self._take_token():
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("invalid_json", "The frame is not valid JSON.")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error("invalid_frame", 'A frame is an object with a "type".')
            return
        handler_name = self.frame_handlers.get(frame["type"])
        if handler_name is None:
            await self.send_error("unknown_type", "Unknown frame type.")
            return
        try:
            await getattr(self, handler_name)(frame)
        except LAYER_ERRORS:
            raise
        except Exception:
            logger.exception("websocket frame %r failed", frame["type"])
            await self.send_error("internal_error", "The frame could not be handled.")

    async def frame_send(self, message: dict[str, Any]) -> None:
        """A delivery from :func:`threads.realtime.broadcast` (or a typing peer)."""
        if self.wants(message):
            await self.send_text(message["text"])

    def wants(self, message: dict[str, Any]) -> bool:
        return True

    async def on_heartbeat(self, frame: dict[str, Any]) -> None:
        await self.refresh_groups()
        await self.send_text(realtime.dumps(realtime.HeartbeatAckFrame(type="heartbeat.ack")))

    def typing_allowed(self, key: str, active: bool) -> bool:
        """Forward a change, or a repeat of "still typing" every few seconds."""
        now = time.monotonic()
        last = self._typing.get(key)
        if (
            last is not None
            and last[0] == active
            and (not active or now - last[1] < TYPING_REPEAT_SECONDS)
        ):
            return False
        self._typing[key] = (active, now)
        return True


class CustomerThreadConsumer(RealtimeConsumer):
    """``/ws/threads/<id>/?token=<thread token>&after=<seq>``: one customer thread.

    Refuses the handshake (4403) unless the token is the thread's. Joins the thread's
    group *before* reading the catch-up, so a message committed meanwhile is either in
    the catch-up or arrives live; live ``message.created`` frames at or below the
    catch-up's last seq are dropped. Frames from the client: ``typing`` (to the desk)
    and ``heartbeat``.
    """

    frame_handlers: ClassVar[dict[str, str]] = {
        "typing": "on_typing",
        "heartbeat": "on_heartbeat",
    }

    async def connect(self) -> None:
        self.high_water = 0
        self.last_thread_text = ""
        query = _query(self.scope)
        after = _query_seq(query.get("after") or "0")
        thread_id = _parse_uuid(self.scope["url_route"]["kwargs"].get("thread_id"))
        token = query.get("token", "")
        thread: Thread | None = None
        if thread_id is not None and token and len(token) <= MAX_TOKEN_LENGTH:
            thread = await database_sync_to_async(selectors.thread_get_for_customer)(
                thread_id=thread_id, token=token
            )
        if thread is None:
            # The same answer for an unknown thread and a wrong token.
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if after is None:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.thread = thread
        self.thread_id = str(thread.pk)
        self.customer_name = thread.customer.display_name
        await self.join(realtime.thread_group(self.thread_id))
        await self.accept()
        self.high_water = after
        while True:
            page = await database_sync_to_async(realtime.customer_catch_up)(thread, self.high_water)
            for seq, text in page:
                await self.send_text(text)
                self.high_water = seq
            if len(page) < realtime.CATCH_UP_PAGE:
                break

    def wants(self, message: dict[str, Any]) -> bool:
        if message["kind"] == "message.created":
            seq = message.get("seq")
            if seq is not None and seq <= self.high_water:
                return False  # the catch-up sent it
        elif message["kind"] == "thread.updated":
            # Staff-side changes (priority, AI mode) leave the customer view unchanged.
            if message["text"] == self.last_thread_text:
                return False
            self.last_thread_text = message["text"]
        return True

    async def on_typing(self, frame: dict[str, Any]) -> None:
        active = frame.get("active")
        if not isinstance(active, bool):
            await self.send_error("invalid_frame", '"active" must be true or false.')
            return
        if not self.typing_allowed("", active):
            return
        text = realtime.typing_text(
            kind="customer", name=self.customer_name, active=active, thread_id=self.thread_id
        )
        await self.channel_layer.group_send(
            realtime.DESK_GROUP, realtime.delivery(text, "typing", self.thread_id)
        )


class DeskConsumer(RealtimeConsumer):
    """``/ws/desk/``: every desk event, for active staff (session cookie or ``?token=``).

    Refuses the handshake with 4401 without credentials and 4403 for a non-staff user.
    Marks the agent online while connected (offline when their last desk socket closes).
    Frames from the client: ``subscribe`` ``{thread, after}`` (sends the thread's
    messages after ``after``, staff view, then ``subscribed``), ``unsubscribe``,
    ``typing`` ``{thread, active}`` (to the thread's customer), ``presence``
    ``{status: online|busy}`` and ``heartbeat``.
    """

    frame_handlers: ClassVar[dict[str, str]] = {
        "subscribe": "on_subscribe",
        "unsubscribe": "on_unsubscribe",
        "typing": "on_typing",
        "presence": "on_presence",
        "heartbeat": "on_heartbeat",
    }

    async def connect(self) -> None:
        self.subscriptions: dict[str, int] = {}
        self.presence_written = 0.0
        self.user: Any = None
        user = await self._authenticate()
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(user_is_agent)(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.agent_name = user_display_name(user)
        await self.join(realtime.DESK_GROUP)
        await self.accept()
        await self._presence("connected")

    async def _authenticate(self) -> Any:
        token = _query(self.scope).get("token")
        if token:
            if len(token) > MAX_TOKEN_LENGTH:
                return None
            return await database_sync_to_async(_user_for_token)(token)
        user = self.scope.get("user")
        if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
            return None
        return user

    async def _presence(self, action: str, *args: Any) -> None:
        hooks = realtime.presence_hooks
        if hooks is None or self.user is None:
            return
        try:
            await database_sync_to_async(getattr(hooks, action))(self.user, *args)
            self.presence_written = time.monotonic()
        except Exception:
            # Presence is advisory; a failed write never takes the socket down.
            logger.exception("presence %s failed", action)

    async def disconnect(self, code: int) -> None:
        if self.accepted:
            await self._presence("disconnected")

    def wants(self, message: dict[str, Any]) -> bool:
        if message["kind"] == "message.created":
            seen = self.subscriptions.get(message.get("thread") or "")
            seq = message.get("seq")
            if seen is not None and seq is not None and seq <= seen:
                return False  # the subscription's catch-up sent it
        return True

    async def on_subscribe(self, frame: dict[str, Any]) -> None:
        thread_id = _parse_uuid(frame.get("thread"))
        after = _frame_seq(frame.get("after", 0))
        if thread_id is None or after is None:
            await self.send_error("invalid_frame", '"thread" is a thread id, "after" a seq >= 0.')
            return
        if thread_id not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            await self.send_error("too_many_subscriptions", "Unsubscribe from a thread first.")
            return
        thread = await database_sync_to_async(_thread_or_none)(thread_id)
        if thread is None:
            await self.send_error("not_found", "No such thread.")
            return
        high_water = after
        while True:
            page = await database_sync_to_async(realtime.staff_catch_up)(thread, high_water)
            for seq, text in page:
                await self.send_text(text)
                high_water = seq
            if len(page) < realtime.CATCH_UP_PAGE:
                break
        self.subscriptions[thread_id] = max(high_water, self.subscriptions.get(thread_id, 0))
        await self.send_text(
            realtime.dumps(
                realtime.SubscribedFrame(type="subscribed", thread=thread_id, last_seq=high_water)
            )
        )

    async def on_unsubscribe(self, frame: dict[str, Any]) -> None:
        thread_id = _parse_uuid(frame.get("thread"))
        if thread_id is None:
            await self.send_error("invalid_frame", '"thread" is a thread id.')
            return
        self.subscriptions.pop(thread_id, None)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        thread_id = _parse_uuid(frame.get("thread"))
        active = frame.get("active")
        if thread_id is None or not isinstance(active, bool):
            await self.send_error("invalid_frame", '"thread" is a thread id, "active" a boolean.')
            return
        if not self.typing_allowed(thread_id, active):
            return
        text = realtime.typing_text(kind="human", name=self.agent_name, active=active)
        await self.channel_layer.group_send(
            realtime.thread_group(thread_id), realtime.delivery(text, "typing", thread_id)
        )

    async def on_presence(self, frame: dict[str, Any]) -> None:
        status = frame.get("status")
        if status not in ("online", "busy"):
            await self.send_error("invalid_frame", '"status" is "online" or "busy".')
            return
        await self._presence("set", status)

    async def on_heartbeat(self, frame: dict[str, Any]) -> None:
        if time.monotonic() - self.presence_written > PRESENCE_WRITE_SECONDS:
            await self._presence("heartbeat")
        await super().on_heartbeat(frame)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other path under the websocket router: refuse the handshake (4404)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)


def _user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _thread_or_none(thread_id: str) -> Thread | None:
    return Thread.objects.filter(pk=thread_id).first()
