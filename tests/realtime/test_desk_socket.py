"""The desk socket, /ws/desk/: staff auth, every desk event, subscribe with catch-up."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.test import Client

from approvals import services as approval_services
from escalations import services as escalation_services
from escalations.models import AgentPresence, Escalation
from tests.factories import UserFactory, make_thread
from tests.realtime.sockets import (
    ORIGIN,
    communicator,
    desk_socket,
    open_socket,
    receive_all,
    receive_type,
    send,
)
from threads import events, services
from threads.models import Message, Thread

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

STAFF_MESSAGE_KEYS = {
    "id", "thread", "seq", "role", "author", "content", "created_at", "visibility",
    "provider", "model", "tool_calls", "tool_call_id", "usage",
}  # fmt: skip


@database_sync_to_async
def new_thread(**kwargs: Any) -> tuple[Thread, str]:
    return make_thread(**kwargs)


@database_sync_to_async
def new_user(**kwargs: Any) -> Any:
    return UserFactory(**kwargs)


@database_sync_to_async
def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def refused_with(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    socket = communicator(path, headers)
    connected, code = await socket.connect(timeout=5)
    assert not connected
    await socket.disconnect()
    return code


# --- Handshake ----------------------------------------------------------------------


async def test_it_refuses_a_desk_socket_without_credentials_with_4401() -> None:
    assert await refused_with("/ws/desk/") == 4401


async def test_it_refuses_an_unknown_staff_token_with_4401() -> None:
    assert await refused_with("/ws/desk/?token=0123456789abcdef") == 4401


async def test_it_refuses_a_non_staff_user_with_4403() -> None:
    user = await new_user(is_staff=False)
    assert await refused_with(f"/ws/desk/?token={await _token(user)}") == 4403


async def test_it_refuses_an_inactive_user() -> None:
    user = await new_user(is_active=False)
    assert await refused_with(f"/ws/desk/?token={await _token(user)}") == 4401


async def test_it_accepts_an_agents_group_member() -> None:
    user = await new_user(is_staff=False)
    await database_sync_to_async(lambda: user.groups.add(Group.objects.create(name="agents")))()
    socket = await desk_socket(user)
    await socket.disconnect()


async def test_it_accepts_the_session_cookie() -> None:
    user = await new_user()
    socket = await open_socket(
        "/ws/desk/", headers=[ORIGIN, (b"cookie", await session_cookie(user))]
    )
    await socket.disconnect()


@database_sync_to_async
def _token(user: Any) -> str:
    from rest_framework.authtoken.models import Token

    return str(Token.objects.get_or_create(user=user)[0].key)


# --- Desk events --------------------------------------------------------------------


async def test_it_sends_a_new_thread_in_the_staff_view() -> None:
    desk = await desk_socket(await new_user())
    thread, _ = await new_thread(subject="Refund")
    frame = await receive_type(desk, "thread.created")
    assert frame["thread"]["id"] == str(thread.pk)
    assert frame["thread"]["subject"] == "Refund"
    assert frame["thread"]["customer"]["name"] == "Casey Customer"
    await desk.disconnect()


async def test_it_sends_internal_notes_to_the_desk_in_the_staff_view() -> None:
    agent = await new_user()
    thread, _ = await new_thread()
    desk = await desk_socket(agent)
    note = await database_sync_to_async(services.internal_note_create)(
        thread=thread, user=agent, content="VIP customer"
    )
    frame = await receive_type(desk, "message.created")
    assert frame["thread"] == str(thread.pk)
    assert frame["message"]["id"] == str(note.pk)
    assert frame["message"]["visibility"] == "internal"
    assert set(frame["message"]) == STAFF_MESSAGE_KEYS
    await desk.disconnect()


async def test_it_sends_thread_updates_in_the_staff_view() -> None:
    thread, _ = await new_thread()
    desk = await desk_socket(await new_user())
    await database_sync_to_async(services.thread_update)(thread=thread, priority="urgent")
    frame = await receive_type(desk, "thread.updated")
    assert (frame["thread"]["id"], frame["thread"]["priority"]) == (str(thread.pk), "urgent")
    await desk.disconnect()


async def test_it_sends_streamed_ai_text_to_the_desk() -> None:
    thread, _ = await new_thread()
    desk = await desk_socket(await new_user())
    payload = events.MessageDeltaPayload(message_id="m-1", seq=2, delta="Hello")
    await database_sync_to_async(events.emit)(
        "message.delta", thread_id=str(thread.pk), payload=payload
    )
    frame = await receive_type(desk, "message.delta")
    assert frame == {
        "type": "message.delta",
        "thread": str(thread.pk),
        "message_id": "m-1",
        "seq": 2,
        "delta": "Hello",
    }
    await desk.disconnect()


async def test_it_sends_escalations_opened_and_claimed() -> None:
    agent = await new_user()
    thread, _ = await new_thread()
    desk = await desk_socket(agent)
    escalation, _ = await database_sync_to_async(escalation_services.escalation_open)(
        thread=thread, source="staff", reason="angry"
    )
    created = await receive_type(desk, "escalation.created")
    assert created["thread"] == str(thread.pk)
    assert (created["escalation"]["id"], created["escalation"]["status"]) == (
        str(escalation.pk),
        "open",
    )
    await database_sync_to_async(escalation_services.escalation_claim)(
        escalation=escalation, user=agent
    )
    updated = await receive_type(desk, "escalation.updated")
    assert updated["escalation"]["status"] == "claimed"
    assert updated["escalation"]["claimed_by"]["id"] == agent.pk
    await desk.disconnect()


async def test_it_sends_human_requests_asked_and_answered() -> None:
    agent = await new_user()
    thread, _ = await new_thread()
    desk = await desk_socket(agent)
    request = await database_sync_to_async(escalation_services.human_request_create)(
        thread=thread, turn_id=uuid.uuid4(), question="Was it shipped?", tool_call_id="call_1"
    )
    created = await receive_type(desk, "human_request.created")
    assert created["human_request"]["question"] == "Was it shipped?"
    await database_sync_to_async(escalation_services.human_request_answer)(
        request=request, user=agent, answer="Yes, on Monday."
    )
    updated = await receive_type(desk, "human_request.updated")
    assert (updated["human_request"]["status"], updated["human_request"]["answer"]) == (
        "answered",
        "Yes, on Monday.",
    )
    await desk.disconnect()


@database_sync_to_async
def _draft(thread: Thread) -> Any:
    message = services.message_create(
        thread=thread,
        role="assistant",
        author_kind="ai",
        content="Your refund is on its way.",
        visibility="draft",
    )
    return approval_services.approval_draft_create(thread=thread, message=message)


async def test_it_sends_approval_drafts_created_and_decided() -> None:
    agent = await new_user()
    thread, _ = await new_thread()
    desk = await desk_socket(agent)
    draft = await _draft(thread)
    created = await receive_type(desk, "approval.created")
    assert (created["approval"]["id"], created["approval"]["status"]) == (str(draft.pk), "pending")
    await database_sync_to_async(approval_services.approval_approve)(draft=draft, user=agent)
    updated = await receive_type(desk, "approval.updated")
    assert updated["approval"]["status"] == "approved"
    await desk.disconnect()


async def test_it_sends_turn_updates_with_their_payload() -> None:
    desk = await desk_socket(await new_user())
    payload = events.TurnUpdatedPayload(turn_id="t-1", status="done", outcome="reply")
    await database_sync_to_async(events.emit)("turn.updated", thread_id=None, payload=payload)
    frame = await receive_type(desk, "turn.updated")
    assert frame == {
        "type": "turn.updated",
        "thread": None,
        "turn_id": "t-1",
        "status": "done",
        "outcome": "reply",
    }
    await desk.disconnect()


# --- Subscribe ----------------------------------------------------------------------


async def test_it_sends_every_message_after_the_seq_on_subscribe() -> None:
    agent = await new_user()
    thread, _ = await new_thread()
    await database_sync_to_async(services.customer_message_create)(thread=thread, content="one")
    await database_sync_to_async(services.internal_note_create)(
        thread=thread, user=agent, content="two"
    )
    await database_sync_to_async(services.customer_message_create)(thread=thread, content="three")
    desk = await desk_socket(agent)
    await receive_type(desk, "presence.updated")  # the agent's own, on connect
    await send(desk, {"type": "subscribe", "thread": str(thread.pk), "after": 1})
    frames = await receive_all(desk)
    assert [(f["type"], f.get("message", {}).get("content")) for f in frames] == [
        ("message.created", "two"),
        ("message.created", "three"),
        ("subscribed", None),
    ]
    assert frames[-1] == {"type": "subscribed", "thread": str(thread.pk), "last_seq": 3}
    await desk.disconnect()


async def test_it_drops_a_live_frame_the_subscription_already_sent() -> None:
    from channels.layers import get_channel_layer

    from threads import realtime

    agent = await new_user()
    thread, _ = await new_thread()
    message: Message = await database_sync_to_async(services.customer_message_create)(
        thread=thread, content="hello"
    )
    desk = await desk_socket(agent)
    await send(desk, {"type": "subscribe", "thread": str(thread.pk), "after": 0})
    await receive_type(desk, "subscribed")
    event = events.Event(
        type="message.created",
        thread_id=str(thread.pk),
        payload={"message_id": str(message.pk), "seq": message.seq, "visibility": "public"},
    )
    [(group, late)] = await database_sync_to_async(realtime.render)(event, to_thread=False)
    await get_channel_layer().group_send(group, late)
    # (Other frames, such as the agent's own presence, may still arrive.)
    assert [f for f in await receive_all(desk) if f["type"] == "message.created"] == []
    await desk.disconnect()


async def test_it_answers_a_subscription_to_an_unknown_thread_with_an_error() -> None:
    desk = await desk_socket(await new_user())
    await send(
        desk, {"type": "subscribe", "thread": "5f0c3f0e-0000-4000-8000-000000000000", "after": 0}
    )
    assert (await receive_type(desk, "error"))["code"] == "not_found"
    await desk.disconnect()


# --- Presence -----------------------------------------------------------------------


@database_sync_to_async
def presence_of(user: Any) -> tuple[str, int]:
    row = AgentPresence.objects.get(user=user)
    return row.status, row.connections


async def test_it_marks_an_agent_online_while_their_desk_is_open() -> None:
    agent = await new_user()
    desk = await desk_socket(agent)
    assert await presence_of(agent) == ("online", 1)
    await desk.disconnect()
    assert await presence_of(agent) == ("offline", 0)


async def test_it_keeps_an_agent_online_while_another_desk_tab_is_open() -> None:
    agent = await new_user()
    first = await desk_socket(agent)
    second = await desk_socket(agent)
    await first.disconnect()
    assert await presence_of(agent) == ("online", 1)
    await second.disconnect()


async def test_it_broadcasts_presence_changes_to_the_desk() -> None:
    watcher = await desk_socket(await new_user())
    await receive_type(watcher, "presence.updated")  # the watcher's own
    agent = await new_user(username="alex", first_name="Alex", last_name="Agent")
    desk = await desk_socket(agent)
    online = await receive_type(watcher, "presence.updated")
    assert (online["agent"]["username"], online["status"]) == ("alex", "online")
    await send(desk, {"type": "presence", "status": "busy"})
    busy = await receive_type(watcher, "presence.updated")
    assert busy["status"] == "busy"
    assert await presence_of(agent) == ("busy", 1)
    await desk.disconnect()
    offline = await receive_type(watcher, "presence.updated")
    assert offline["status"] == "offline"
    await watcher.disconnect()


async def test_it_refuses_an_unknown_presence_status() -> None:
    agent = await new_user()
    desk = await desk_socket(agent)
    await send(desk, {"type": "presence", "status": "offline"})
    assert (await receive_type(desk, "error"))["code"] == "invalid_frame"
    assert await presence_of(agent) == ("online", 1)
    await desk.disconnect()


async def test_it_answers_a_desk_heartbeat() -> None:
    desk = await desk_socket(await new_user())
    await send(desk, {"type": "heartbeat"})
    assert await receive_type(desk, "heartbeat.ack") == {"type": "heartbeat.ack"}
    await desk.disconnect()


async def test_it_never_sends_desk_frames_to_a_customer() -> None:
    from tests.realtime.sockets import customer_socket

    agent = await new_user()
    thread, token = await new_thread()
    socket = await customer_socket(thread.pk, token)
    await database_sync_to_async(escalation_services.escalation_open)(
        thread=thread, source="staff", reason="internal reason: rude customer"
    )
    await _draft(thread)
    await database_sync_to_async(services.internal_note_create)(
        thread=thread, user=agent, content="secret note"
    )
    frames = await receive_all(socket)
    assert {f["type"] for f in frames} <= {"message.created", "thread.updated"}
    text = repr(frames)
    assert "rude customer" not in text and "secret note" not in text and "refund" not in text
    assert await database_sync_to_async(Escalation.objects.count)() == 1
    await socket.disconnect()
