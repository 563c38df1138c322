"""The customer socket, /ws/threads/<id>/: handshake, catch-up, live frames, typing."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from tests.factories import UserFactory, make_thread
from tests.llm_server import ScriptedLLMServer, final
from tests.realtime.sockets import (
    communicator,
    customer_socket,
    desk_socket,
    receive,
    receive_all,
    receive_type,
    send,
    staff_token,
)
from tests.turns import drain
from threads import realtime, services
from threads.models import Message, Thread

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

CUSTOMER_MESSAGE_KEYS = {"id", "thread", "seq", "role", "author", "content", "created_at"}


@database_sync_to_async
def new_thread(**kwargs: Any) -> tuple[Thread, str]:
    return make_thread(**kwargs)


@database_sync_to_async
def new_agent(**kwargs: Any) -> Any:
    return UserFactory(**kwargs)


@database_sync_to_async
def customer_says(thread: Thread, content: str) -> Message:
    return services.customer_message_create(thread=thread, content=content)


@database_sync_to_async
def agent_says(thread: Thread, user: Any, content: str, internal: bool = False) -> Message:
    if internal:
        return services.internal_note_create(thread=thread, user=user, content=content)
    return services.human_reply_create(thread=thread, user=user, content=content)


async def refused_with(path: str) -> Any:
    socket = communicator(path)
    connected, code = await socket.connect(timeout=5)
    assert not connected
    return code


# --- Handshake ----------------------------------------------------------------------


async def test_it_refuses_a_wrong_token_with_4403() -> None:
    thread, _ = await new_thread()
    assert await refused_with(f"/ws/threads/{thread.pk}/?token=not-the-token") == 4403


async def test_it_refuses_another_threads_token_with_4403() -> None:
    thread, _ = await new_thread()
    _, other_token = await new_thread()
    assert await refused_with(f"/ws/threads/{thread.pk}/?token={other_token}") == 4403


async def test_it_refuses_a_missing_token_with_4403() -> None:
    thread, _ = await new_thread()
    assert await refused_with(f"/ws/threads/{thread.pk}/") == 4403


async def test_it_refuses_a_malformed_thread_id_like_a_wrong_token() -> None:
    _, token = await new_thread()
    assert await refused_with(f"/ws/threads/not-a-uuid/?token={token}") == 4403


async def test_it_refuses_a_malformed_after_with_4400() -> None:
    thread, token = await new_thread()
    assert await refused_with(f"/ws/threads/{thread.pk}/?token={token}&after=-1") == 4400


async def test_it_refuses_a_foreign_origin() -> None:
    thread, token = await new_thread()
    socket = communicator(
        f"/ws/threads/{thread.pk}/?token={token}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await socket.connect(timeout=5)
    assert not connected


async def test_it_accepts_a_widget_origin_on_the_customer_socket(settings: Any) -> None:
    settings.SUPPORTDESK_WIDGET_ORIGINS = ["https://shop.example"]
    thread, token = await new_thread()
    await customer_says(thread, "from the shop")
    socket = communicator(
        f"/ws/threads/{thread.pk}/?token={token}", headers=[(b"origin", b"https://shop.example")]
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    assert (await receive(socket))["message"]["content"] == "from the shop"
    await socket.disconnect()


async def test_it_refuses_a_widget_origin_on_the_desk_socket(settings: Any) -> None:
    settings.SUPPORTDESK_WIDGET_ORIGINS = ["https://shop.example"]
    agent = await new_agent(username="origin-check")
    token = await staff_token(agent)
    socket = communicator(
        f"/ws/desk/?token={token}", headers=[(b"origin", b"https://shop.example")]
    )
    connected, _ = await socket.connect(timeout=5)
    assert not connected


async def test_it_refuses_an_unknown_path_with_4404() -> None:
    assert await refused_with("/ws/nothing-here/") == 4404


# --- Catch-up -----------------------------------------------------------------------


async def test_it_sends_the_public_messages_after_the_given_seq_first() -> None:
    thread, token = await new_thread()
    agent = await new_agent()
    await customer_says(thread, "one")  # seq 1
    await agent_says(thread, agent, "a note", internal=True)  # seq 2, staff only
    await customer_says(thread, "two")  # seq 3
    await agent_says(thread, agent, "three")  # seq 4
    socket = await customer_socket(thread.pk, token, after=1)
    frames = await receive_all(socket)
    assert [(f["type"], f["message"]["content"], f["prev_seq"]) for f in frames] == [
        ("message.created", "two", 1),
        ("message.created", "three", 3),
    ]
    assert set(frames[0]["message"]) == CUSTOMER_MESSAGE_KEYS
    await socket.disconnect()


async def test_it_sends_a_long_catch_up_in_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "CATCH_UP_PAGE", 3)
    thread, token = await new_thread()
    for index in range(8):
        await customer_says(thread, f"m{index}")
    socket = await customer_socket(thread.pk, token)
    frames = await receive_all(socket)
    assert [f["message"]["seq"] for f in frames] == list(range(1, 9))
    await socket.disconnect()


async def test_it_drops_a_live_frame_the_catch_up_already_sent() -> None:
    thread, token = await new_thread()
    message = await customer_says(thread, "hello")
    socket = await customer_socket(thread.pk, token)
    assert (await receive(socket))["message"]["id"] == str(message.pk)
    # The same message arriving live (committed while the catch-up was being read).
    [(group, late)] = [
        pair
        for pair in await database_sync_to_async(realtime.render)(
            _created_event(message), to_desk=False
        )
    ]
    await get_channel_layer().group_send(group, late)
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


def _created_event(message: Message) -> Any:
    from threads.events import Event

    return Event(
        type="message.created",
        thread_id=str(message.thread_id),
        payload={"message_id": str(message.pk), "seq": message.seq, "visibility": "public"},
    )


# --- Live frames --------------------------------------------------------------------


async def test_it_sends_a_new_public_message_live_in_the_customer_view() -> None:
    thread, token = await new_thread()
    agent = await new_agent(first_name="Alex", last_name="Agent")
    socket = await customer_socket(thread.pk, token)
    reply = await agent_says(thread, agent, "Hi, Alex here.")
    frame = await receive_type(socket, "message.created")
    assert frame["message"]["id"] == str(reply.pk)
    assert frame["message"]["author"] == {"kind": "human", "name": "Alex Agent"}
    assert set(frame["message"]) == CUSTOMER_MESSAGE_KEYS
    assert frame["prev_seq"] == 0
    await socket.disconnect()


async def test_it_never_sends_an_internal_note_to_the_customer() -> None:
    thread, token = await new_thread()
    agent = await new_agent()
    socket = await customer_socket(thread.pk, token)
    await agent_says(thread, agent, "customer seems upset", internal=True)
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


async def test_it_gives_the_previous_public_seq_across_hidden_messages() -> None:
    thread, token = await new_thread()
    agent = await new_agent()
    await customer_says(thread, "question")  # 1
    socket = await customer_socket(thread.pk, token, after=1)
    await agent_says(thread, agent, "note", internal=True)  # 2
    await agent_says(thread, agent, "answer")  # 3
    frame = await receive_type(socket, "message.created")
    assert (frame["message"]["seq"], frame["prev_seq"]) == (3, 1)
    await socket.disconnect()


async def test_it_streams_the_ai_reply_then_sends_the_stored_message(
    llm: ScriptedLLMServer,
) -> None:
    thread, token = await new_thread()
    await customer_says(thread, "where is my parcel")
    socket = await customer_socket(thread.pk, token, after=1)
    llm.push(final("Your parcel left our warehouse today.", 0.9))
    await database_sync_to_async(drain)()
    frames = await receive_all(socket)
    deltas = [f for f in frames if f["type"] == "message.delta"]
    created = [f for f in frames if f["type"] == "message.created"]
    assert "".join(f["delta"] for f in deltas) == "Your parcel left our warehouse today."
    assert len(created) == 1
    assert {f["message_id"] for f in deltas} == {created[0]["message"]["id"]}
    assert created[0]["message"]["content"] == "Your parcel left our warehouse today."
    assert frames[-1] is created[0]
    await socket.disconnect()


async def test_it_streams_nothing_of_a_draft_reply(llm: ScriptedLLMServer) -> None:
    thread, token = await new_thread(ai_mode="draft")
    await customer_says(thread, "where is my parcel")
    socket = await customer_socket(thread.pk, token, after=1)
    llm.push(final("Your parcel left our warehouse today.", 0.9))
    await database_sync_to_async(drain)()
    assert await receive_all(socket) == []
    await socket.disconnect()


async def test_it_tells_the_customer_an_agent_joined() -> None:
    thread, token = await new_thread()
    agent = await new_agent(first_name="Alex", last_name="Agent")
    socket = await customer_socket(thread.pk, token)
    await agent_says(thread, agent, "Hi!")
    frame = await receive_type(socket, "thread.updated")
    assert frame["thread"]["responder"] == "human"
    assert frame["thread"]["agent"] == {"name": "Alex Agent"}
    assert "assignee" not in frame["thread"] and "customer" not in frame["thread"]
    await socket.disconnect()


async def test_it_tells_the_customer_the_ai_is_handling_again() -> None:
    thread, token = await new_thread()
    agent = await new_agent()
    await agent_says(thread, agent, "Hi!")
    socket = await customer_socket(thread.pk, token, after=1)
    await database_sync_to_async(services.thread_assign)(thread=thread, responder="ai")
    frame = await receive_type(socket, "thread.updated")
    assert (frame["thread"]["responder"], frame["thread"]["agent"]) == ("ai", None)
    await socket.disconnect()


async def test_it_sends_no_thread_update_the_customer_cannot_see() -> None:
    thread, token = await new_thread()
    socket = await customer_socket(thread.pk, token)
    await database_sync_to_async(services.thread_update)(thread=thread, priority="urgent")
    await database_sync_to_async(services.thread_update)(thread=thread, ai_mode="draft")
    frames = await receive_all(socket)
    # The first update may show the (unchanged) view once; a second identical one never.
    assert len([f for f in frames if f["type"] == "thread.updated"]) <= 1
    assert all("priority" not in f["thread"] for f in frames)
    await socket.disconnect()


async def test_it_answers_a_heartbeat() -> None:
    thread, token = await new_thread()
    socket = await customer_socket(thread.pk, token)
    await send(socket, {"type": "heartbeat"})
    assert await receive(socket) == {"type": "heartbeat.ack"}
    await socket.disconnect()


# --- Typing -------------------------------------------------------------------------


async def test_it_sends_the_customers_typing_to_the_desk() -> None:
    thread, token = await new_thread(customer_name="Casey Customer")
    desk = await desk_socket(await new_agent())
    socket = await customer_socket(thread.pk, token)
    await send(socket, {"type": "typing", "active": True})
    frame = await receive_type(desk, "typing")
    assert frame == {
        "type": "typing",
        "thread": str(thread.pk),
        "author": {"kind": "customer", "name": "Casey Customer"},
        "active": True,
    }
    assert await socket.receive_nothing(timeout=0.2)  # not echoed to the customer side
    await socket.disconnect()
    await desk.disconnect()


async def test_it_sends_an_agents_typing_to_the_customer() -> None:
    thread, token = await new_thread()
    desk = await desk_socket(await new_agent(first_name="Alex", last_name="Agent"))
    socket = await customer_socket(thread.pk, token)
    await send(desk, {"type": "typing", "thread": str(thread.pk), "active": True})
    frame = await receive_type(socket, "typing")
    assert frame == {
        "type": "typing",
        "author": {"kind": "human", "name": "Alex Agent"},
        "active": True,
    }
    await socket.disconnect()
    await desk.disconnect()


async def test_it_does_not_repeat_an_unchanged_typing_state() -> None:
    thread, token = await new_thread()
    desk = await desk_socket(await new_agent())
    socket = await customer_socket(thread.pk, token)
    for _ in range(5):
        await send(socket, {"type": "typing", "active": True})
    await send(socket, {"type": "typing", "active": False})
    frames = [f for f in await receive_all(desk) if f["type"] == "typing"]
    assert [f["active"] for f in frames] == [True, False]
    await socket.disconnect()
    await desk.disconnect()
