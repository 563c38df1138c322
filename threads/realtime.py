"""Websocket frames: what each committed event looks like on the customer and desk sockets.

The services announce changes through :mod:`threads.events`; :func:`broadcast`, registered
at start-up (``ThreadsConfig.ready``), runs on commit and sends each event as ready-made
JSON text to two kinds of channel-layer group:

- ``thread.<id>``: the customer sockets of one thread. Customer-safe frames only: public
  messages (customer view), streamed public AI text, the customer Thread view, and the
  typing of staff. Never drafts, internal notes, tool calls or results, models or usage.
- ``desk``: every staff socket. Staff views of everything, plus the customers' typing.

The socket notifies, the database is the truth: a ``message.created`` frame carries the
message as loaded from the database by id (one query), and every frame about a message
carries its ``seq`` so a client that missed a frame can see the gap and catch up through
the REST list. Delivery is at most once (a full channel drops, a Redis restart loses what
was in flight); clients reconnect with ``after=<last seq>`` and the consumers send what was
missed before any live frame.

Frames are rendered once per event, not once per socket, and the consumers pass the text
through untouched (see ``Delivery``). Upper apps (escalations, approvals) register how
their events look on the desk in :data:`desk_renderers`, and the desk socket's presence
calls go through :data:`presence_hooks`, so this module never imports them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, NotRequired, Protocol, TypedDict, cast

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from redis.exceptions import RedisError

from threads import events, selectors
from threads.models import Message, Thread, Visibility
from threads.serializers import (
    CustomerMessageSerializer,
    CustomerThreadSerializer,
    StaffMessageSerializer,
    StaffThreadSerializer,
)

logger = logging.getLogger(__name__)

DESK_GROUP = "desk"
# Frames a client may send are at most this many bytes of UTF-8 (API.md).
MAX_FRAME_BYTES = 64 * 1024
# Catch-up is read and sent in pages of this many messages.
CATCH_UP_PAGE = 200
# A hook that cannot hand its frames to the layer within this time gives up (logged):
# the write that committed is not held up longer by a stuck Redis.
SEND_TIMEOUT_SECONDS = 2.0


# What a failing channel layer raises (redis-py wraps socket errors in its own).
LAYER_ERRORS: tuple[type[Exception], ...] = (RedisError,)


def thread_group(thread_id: str) -> str:
    return f"thread.{thread_id}"


# --- Frames (server → client) ------------------------------------------------------


class Author(TypedDict):
    kind: str
    name: str


class MessageCreatedFrame(TypedDict):
    type: Literal["message.created"]
    message: dict[str, Any]
    # Customer frames: the seq of the previous public message (customers see a
    # subsequence of seqs, so this is how their client tells a gap from a hidden row).
    prev_seq: NotRequired[int]
    thread: NotRequired[str]  # desk frames


class MessageDeltaFrame(TypedDict):
    type: Literal["message.delta"]
    message_id: str
    seq: int
    delta: str
    thread: NotRequired[str]  # desk frames


class ThreadFrame(TypedDict):
    type: Literal["thread.created", "thread.updated"]
    thread: dict[str, Any]


class TypingFrame(TypedDict):
    type: Literal["typing"]
    author: Author
    active: bool
    thread: NotRequired[str]  # desk frames


class DeskObjectFrame(TypedDict):
    """``escalation.*``, ``human_request.*``, ``approval.*`` and other desk events.

    Besides these keys the frame carries the object as the desk API shows it under its
    own name (``escalation``, ``human_request``, ``approval``) when its app registered a
    renderer, else the event's payload fields.
    """

    type: str
    thread: str | None


class PresenceFrame(TypedDict):
    type: Literal["presence.updated"]
    agent: dict[str, Any]
    status: str
    last_seen_at: str | None


class SubscribedFrame(TypedDict):
    type: Literal["subscribed"]
    thread: str
    last_seq: int


class HeartbeatAckFrame(TypedDict):
    type: Literal["heartbeat.ack"]


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str


def dumps(frame: Any) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"), default=str)


def error_text(code: str, message: str) -> str:
    return dumps(ErrorFrame(type="error", code=code, message=message))


# --- Channel-layer messages (hook → consumers) -----------------------------------------


class Delivery(TypedDict):
    """What a group receives: the frame as JSON text plus what a consumer filters on."""

    type: Literal["frame.send"]
    text: str
    kind: str  # the frame's type
    thread: str | None
    seq: int | None  # message.created only: the consumers drop what catch-up already sent


def delivery(text: str, kind: str, thread: str | None, seq: int | None = None) -> Delivery:
    return Delivery(type="frame.send", text=text, kind=kind, thread=thread, seq=seq)


# --- Hooks registered by the apps above threads -------------------------------------

# event type → renders the desk frame (a dict) for that event, or None to send nothing.
DeskRenderer = Callable[[events.Event], dict[str, Any] | None]
desk_renderers: dict[str, DeskRenderer] = {}


class PresenceHooks(Protocol):
    def connected(self, user: Any) -> None: ...
    def disconnected(self, user: Any) -> None: ...
    def heartbeat(self, user: Any) -> None: ...
    def set(self, user: Any, status: str) -> None: ...


presence_hooks: PresenceHooks | None = None


# --- Rendering ----------------------------------------------------------------------


def customer_message_frame(message: Message, prev_seq: int) -> str:
    frame = MessageCreatedFrame(
        type="message.created",
        message=dict(CustomerMessageSerializer(message).data),
        prev_seq=prev_seq,
    )
    return dumps(frame)


def staff_message_frame(message: Message) -> str:
    frame = MessageCreatedFrame(
        type="message.created",
        message=dict(StaffMessageSerializer(message).data),
        thread=str(message.thread_id),
    )
    return dumps(frame)


def _previous_public_seq() -> Coalesce:
    previous = (
        Message.objects.filter(
            thread_id=OuterRef("thread_id"), visibility=Visibility.PUBLIC, seq__lt=OuterRef("seq")
        )
        .order_by("-seq")
        .values("seq")[:1]
    )
    return Coalesce(Subquery(previous), 0)


def _render_message_created(
    event: events.Event, to_thread: bool, to_desk: bool
) -> list[tuple[str, Delivery]]:
    payload = cast(events.MessageCreatedPayload, event.payload)
    tid = str(event.thread_id)
    public = payload.get("visibility") == Visibility.PUBLIC
    to_thread = to_thread and public
    if not (to_thread or to_desk):
        return []
    queryset = Message.objects.filter(pk=payload["message_id"])
    if to_thread:
        queryset = queryset.annotate(prev_public_seq=_previous_public_seq())
    message = queryset.first()
    if message is None:
        return []
    out: list[tuple[str, Delivery]] = []
    if to_thread and message.visibility == Visibility.PUBLIC:
        text = customer_message_frame(message, int(message.prev_public_seq))  # type: ignore[attr-defined]
        out.append((thread_group(tid), delivery(text, "message.created", tid, message.seq)))
    if to_desk:
        text = staff_message_frame(message)
        out.append((DESK_GROUP, delivery(text, "message.created", tid, message.seq)))
    return out


def _render_delta(
    event: events.Event, to_thread: bool, to_desk: bool
) -> list[tuple[str, Delivery]]:
    payload = cast(events.MessageDeltaPayload, event.payload)
    tid = str(event.thread_id)
    frame = MessageDeltaFrame(
        type="message.delta",
        message_id=str(payload["message_id"]),
        seq=int(payload["seq"]),
        delta=str(payload["delta"]),
    )
    out: list[tuple[str, Delivery]] = []
    if to_thread:
        out.append((thread_group(tid), delivery(dumps(frame), "message.delta", tid)))
    if to_desk:
        frame["thread"] = tid
        out.append((DESK_GROUP, delivery(dumps(frame), "message.delta", tid)))
    return out


def _render_thread(
    event: events.Event, to_thread: bool, to_desk: bool
) -> list[tuple[str, Delivery]]:
    tid = str(event.thread_id)
    kind = cast(Literal["thread.created", "thread.updated"], event.type)
    if to_desk:
        thread = selectors.thread_list_for_staff().filter(pk=tid).first()
    else:
        thread = Thread.objects.select_related("assignee").filter(pk=tid).first()
    if thread is None:
        return []
    out: list[tuple[str, Delivery]] = []
    # A new thread has no customer socket yet; customers hear of updates only.
    if to_thread and kind == "thread.updated":
        frame = ThreadFrame(type=kind, thread=dict(CustomerThreadSerializer(thread).data))
        out.append((thread_group(tid), delivery(dumps(frame), kind, tid)))
    if to_desk:
        frame = ThreadFrame(type=kind, thread=dict(StaffThreadSerializer(thread).data))
        out.append((DESK_GROUP, delivery(dumps(frame), kind, tid)))
    return out


def _render_desk_only(
    event: events.Event, to_thread: bool, to_desk: bool
) -> list[tuple[str, Delivery]]:
    if not to_desk:
        return []
    renderer = desk_renderers.get(event.type)
    frame: dict[str, Any] | None
    if renderer is not None:
        frame = renderer(event)
    else:
        frame = {**event.payload, **DeskObjectFrame(type=event.type, thread=event.thread_id)}
    if frame is None:
        return []
    return [(DESK_GROUP, delivery(dumps(frame), event.type, event.thread_id))]


Render = Callable[[events.Event, bool, bool], list[tuple[str, Delivery]]]
_RENDER: dict[str, Render] = {
    "message.created": _render_message_created,
    "message.delta": _render_delta,
    "thread.created": _render_thread,
    "thread.updated": _render_thread,
}
# Events that concern customers at all; everything else goes to the desk only.
_CUSTOMER_EVENTS = {"message.created", "message.delta", "thread.updated"}


def render(
    event: events.Event, *, to_thread: bool = True, to_desk: bool = True
) -> list[tuple[str, Delivery]]:
    """The (group, delivery) pairs for one event; a public reader may skip a side."""
    to_thread = to_thread and event.thread_id is not None and event.type in _CUSTOMER_EVENTS
    return _RENDER.get(event.type, _render_desk_only)(event, to_thread, to_desk)


# --- Sending from synchronous code ------------------------------------------------

# The event loop that runs this process's consumers, noted by the first socket. The
# in-memory layer's queues belong to it, so frames are handed to it from any thread.
_consumer_loop: asyncio.AbstractEventLoop | None = None


def note_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _consumer_loop
    _consumer_loop = loop


class _SenderLoop:
    """A private event loop thread for layers that talk to a server (channels-redis).

    ``async_to_sync`` from a plain thread would make a new event loop, and with it a new
    Redis connection pool, for every event; this loop keeps one pool per process and
    sends in the order the hooks ran.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="realtime-sender", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_sender = _SenderLoop()


def _in_memory_members(layer: InMemoryChannelLayer, group: str) -> bool:
    return bool(layer.groups.get(group))


def _run(layer: Any, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if isinstance(layer, InMemoryChannelLayer):
        loop = _consumer_loop
        if loop is None or loop.is_closed():
            return  # no socket was ever opened in this process: nobody to tell
    else:
        loop = _sender.loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task = loop.create_task(make())
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return
    future = asyncio.run_coroutine_threadsafe(make(), loop)
    try:
        future.result(timeout=SEND_TIMEOUT_SECONDS)
    except TimeoutError:
        # A Redis that accepts but does not answer: give up rather than pile up sends.
        future.cancel()
        raise


_pending: set[asyncio.Task[None]] = set()


def group_send_many(deliveries: list[tuple[str, Delivery]]) -> None:
    """Hand the deliveries to the channel layer, in order, from synchronous code."""
    layer = get_channel_layer()
    if layer is None or not deliveries:
        return

    async def send_all() -> None:
        for group, message in deliveries:
            try:
                await layer.group_send(group, message)
            except LAYER_ERRORS:
                # Once more on a new connection: a pooled one may have died with a
                # Redis restart. A second failure is logged by the event registry.
                await layer.group_send(group, message)

    _run(layer, send_all)


def broadcast(event: events.Event) -> None:
    """The on-commit hook: render ``event`` once and send it to its groups."""
    layer = get_channel_layer()
    if layer is None:
        return
    to_thread = event.thread_id is not None and event.type in _CUSTOMER_EVENTS
    to_desk = True
    if isinstance(layer, InMemoryChannelLayer):
        # In-process only: skip the rendering queries when no socket here would read it
        # (a WSGI or worker process with the in-memory layer has none).
        to_desk = _in_memory_members(layer, DESK_GROUP)
        to_thread = to_thread and _in_memory_members(layer, thread_group(str(event.thread_id)))
        if not (to_desk or to_thread):
            return
    deliveries = render(event, to_thread=to_thread, to_desk=to_desk)
    group_send_many(deliveries)


# --- Reads for the consumers (synchronous; the consumers wrap them) ------------------


def customer_catch_up(
    thread: Thread, after: int, limit: int = CATCH_UP_PAGE
) -> list[tuple[int, str]]:
    """Public messages with ``seq > after`` as (seq, frame text), at most ``limit``."""
    rows, _ = selectors.message_list(thread=thread, after=after, limit=limit, public_only=True)
    frames: list[tuple[int, str]] = []
    previous = after
    for message in rows:
        frames.append((message.seq, customer_message_frame(message, previous)))
        previous = message.seq
    return frames


def staff_catch_up(thread: Thread, after: int, limit: int = CATCH_UP_PAGE) -> list[tuple[int, str]]:
    """Every message with ``seq > after`` (staff view) as (seq, frame text)."""
    rows, _ = selectors.message_list(thread=thread, after=after, limit=limit, public_only=False)
    return [(message.seq, staff_message_frame(message)) for message in rows]


def typing_text(*, kind: str, name: str, active: bool, thread_id: str | None = None) -> str:
    frame = TypingFrame(type="typing", author=Author(kind=kind, name=name), active=active)
    if thread_id is not None:
        frame["thread"] = thread_id
    return dumps(frame)
