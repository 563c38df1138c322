"""Rendering events into frames (threads/realtime.py) and the typed event payloads."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, channel_layers
from django.utils import timezone

from approvals import services as approval_services
from escalations import services as escalation_services
from escalations.models import AgentPresence
from tests.conftest import EventLog
from tests.factories import UserFactory, make_thread
from threads import events, realtime, services
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


def created(message: Message) -> events.Event:
    return events.Event(
        type="message.created",
        thread_id=str(message.thread_id),
        payload=events.MessageCreatedPayload(
            message_id=str(message.pk), seq=message.seq, visibility=message.visibility
        ),
    )


def frames(pairs: list[tuple[str, realtime.Delivery]]) -> dict[str, dict[str, Any]]:
    return {group: json.loads(message["text"]) for group, message in pairs}


@pytest.fixture
def thread() -> Thread:
    return make_thread()[0]


def test_it_renders_a_public_message_for_both_sides_in_one_query(
    thread: Thread, django_assert_num_queries: Any
) -> None:
    message = services.customer_message_create(thread=thread, content="hello")
    with django_assert_num_queries(1):
        rendered = realtime.render(created(message))
    out = frames(rendered)
    assert set(out) == {f"thread.{thread.pk}", "desk"}
    assert "visibility" not in out[f"thread.{thread.pk}"]["message"]
    assert out["desk"]["message"]["visibility"] == "public"
    assert [d["seq"] for _, d in rendered] == [1, 1]


@pytest.mark.parametrize("visibility", ["internal", "draft", "rejected"])
def test_it_renders_a_hidden_message_for_the_desk_only(thread: Thread, visibility: str) -> None:
    message = services.message_create(
        thread=thread, role="assistant", author_kind="ai", content="x", visibility=visibility
    )
    assert set(frames(realtime.render(created(message)))) == {"desk"}


def test_it_renders_a_tool_message_for_the_desk_only(thread: Thread) -> None:
    message = services.message_create(
        thread=thread,
        role="tool",
        author_kind="system",
        content="result",
        visibility="internal",
        tool_call_id="call_1",
    )
    assert set(frames(realtime.render(created(message)))) == {"desk"}


def test_it_renders_a_delta_without_a_query(thread: Thread, django_assert_num_queries: Any) -> None:
    event = events.Event(
        type="message.delta",
        thread_id=str(thread.pk),
        payload=events.MessageDeltaPayload(message_id="m", seq=3, delta="Hi"),
    )
    with django_assert_num_queries(0):
        out = frames(realtime.render(event))
    assert out[f"thread.{thread.pk}"] == {
        "type": "message.delta",
        "message_id": "m",
        "seq": 3,
        "delta": "Hi",
    }
    assert out["desk"]["thread"] == str(thread.pk)


def test_it_renders_a_new_thread_for_the_desk_only(thread: Thread) -> None:
    event = events.Event(type="thread.created", thread_id=str(thread.pk), payload={})
    out = frames(realtime.render(event))
    assert set(out) == {"desk"}
    assert out["desk"]["thread"]["customer"]["name"] == "Casey Customer"


def test_it_renders_the_customer_thread_view_without_staff_fields(thread: Thread) -> None:
    event = events.Event(type="thread.updated", thread_id=str(thread.pk), payload={})
    customer = frames(realtime.render(event))[f"thread.{thread.pk}"]["thread"]
    assert set(customer) == {"id", "status", "responder", "agent", "created_at", "last_seq"}


def test_it_renders_an_event_without_a_renderer_for_the_desk_with_its_payload() -> None:
    event = events.Event(type="queue.changed", thread_id=None, payload={"queue": "billing"})
    assert frames(realtime.render(event)) == {
        "desk": {"type": "queue.changed", "thread": None, "queue": "billing"}
    }


def test_it_skips_rendering_when_no_socket_of_this_process_listens(
    thread: Thread, django_assert_num_queries: Any
) -> None:
    message = services.customer_message_create(thread=thread, content="hello")
    # The in-memory layer of a process without sockets (a WSGI or worker process).
    channel_layers.set("default", InMemoryChannelLayer())
    with django_assert_num_queries(0):
        realtime.broadcast(created(message))


def test_it_gives_every_emitted_event_its_declared_payload(
    event_log: EventLog, django_capture_on_commit_callbacks: Any
) -> None:
    agent = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        thread, _ = make_thread(message="hi")
        services.internal_note_create(thread=thread, user=agent, content="note")
        escalation, _ = escalation_services.escalation_open(thread=thread, source="staff")
        escalation_services.escalation_claim(escalation=escalation, user=agent)
        request = escalation_services.human_request_create(
            thread=thread, turn_id=uuid.uuid4(), question="?", tool_call_id="c1"
        )
        escalation_services.human_request_answer(request=request, user=agent, answer="!")
        draft_message = services.message_create(
            thread=thread, role="assistant", author_kind="ai", content="d", visibility="draft"
        )
        draft = approval_services.approval_draft_create(thread=thread, message=draft_message)
        approval_services.approval_approve(draft=draft, user=agent)
        escalation_services.presence_set(user=agent, status="busy")
    seen = set()
    for event in event_log.events:
        declared = events.PAYLOAD_TYPES.get(event.type)
        assert declared is not None, f"{event.type} has no payload type"
        assert declared.__required_keys__ <= set(event.payload), event  # type: ignore[attr-defined]
        assert set(event.payload) <= set(declared.__annotations__), event
        seen.add(event.type)
    assert {
        "thread.created",
        "thread.updated",
        "message.created",
        "escalation.created",
        "escalation.updated",
        "human_request.created",
        "human_request.updated",
        "approval.created",
        "approval.updated",
        "presence.updated",
    } <= seen


# --- Presence services --------------------------------------------------------------


def test_it_counts_an_agents_desk_sockets() -> None:
    agent = UserFactory()
    escalation_services.presence_connect(user=agent)
    escalation_services.presence_connect(user=agent)
    escalation_services.presence_disconnect(user=agent)
    row = AgentPresence.objects.get(user=agent)
    assert (row.status, row.connections) == ("online", 1)
    escalation_services.presence_disconnect(user=agent)
    row.refresh_from_db()
    assert (row.status, row.connections) == ("offline", 0)


def test_it_never_counts_below_zero_sockets() -> None:
    agent = UserFactory()
    escalation_services.presence_disconnect(user=agent)
    row = AgentPresence.objects.get(user=agent)
    assert (row.status, row.connections) == ("offline", 0)


def test_it_keeps_busy_across_a_second_tab() -> None:
    agent = UserFactory()
    escalation_services.presence_connect(user=agent)
    escalation_services.presence_set(user=agent, status="busy")
    escalation_services.presence_connect(user=agent)
    assert AgentPresence.objects.get(user=agent).status == "busy"


def test_it_refuses_an_unknown_presence_status() -> None:
    with pytest.raises(ValueError):
        escalation_services.presence_set(user=UserFactory(), status="asleep")


def test_it_marks_agents_of_a_dead_server_offline() -> None:
    agent, alive = UserFactory(), UserFactory()
    escalation_services.presence_connect(user=agent)
    escalation_services.presence_connect(user=alive)
    AgentPresence.objects.filter(user=agent).update(
        last_seen_at=timezone.now() - timedelta(minutes=5)
    )
    assert escalation_services.presence_expire_stale() == 1
    row = AgentPresence.objects.get(user=agent)
    assert (row.status, row.connections) == ("offline", 0)
    assert AgentPresence.objects.get(user=alive).status == "online"


def test_it_brings_back_an_agent_written_off_while_their_socket_lived() -> None:
    agent = UserFactory()
    escalation_services.presence_connect(user=agent)
    AgentPresence.objects.filter(user=agent).update(status="offline", connections=0)
    escalation_services.presence_heartbeat(user=agent)
    row = AgentPresence.objects.get(user=agent)
    assert (row.status, row.connections) == ("online", 1)
