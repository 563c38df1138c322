from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError

from tests.conftest import EventLog
from tests.factories import UserFactory, make_thread
from threads import services
from threads.exceptions import InvalidAssignee, InvalidTransition, ThreadClosed
from threads.models import (
    Assignment,
    AuthorKind,
    Message,
    Responder,
    Role,
    Thread,
    ThreadStatus,
    Visibility,
)
from threads.tokens import token_matches

pytestmark = pytest.mark.django_db


def test_it_stores_only_a_hash_of_the_token() -> None:
    thread, token = make_thread()
    thread.refresh_from_db()
    assert token not in thread.token_hash
    assert token_matches(token, thread.token_hash)


def test_it_records_the_initial_assignment_on_create() -> None:
    thread, _ = make_thread()
    rows = list(Assignment.objects.filter(thread=thread))
    assert [(row.responder, row.assignee_id) for row in rows] == [(Responder.AI, None)]


def test_it_numbers_messages_from_one_without_gaps() -> None:
    thread, _ = make_thread()
    for text in ["one", "two", "three"]:
        services.customer_message_create(thread=thread, content=text)
    thread.refresh_from_db()
    assert list(Message.objects.filter(thread=thread).values_list("seq", flat=True)) == [1, 2, 3]
    assert thread.last_seq == 3


def test_it_keeps_seq_per_thread() -> None:
    first, _ = make_thread()
    second, _ = make_thread()
    services.customer_message_create(thread=first, content="a")
    services.customer_message_create(thread=first, content="b")
    message = services.customer_message_create(thread=second, content="c")
    assert message.seq == 1


def test_it_rejects_a_customer_message_on_a_closed_thread() -> None:
    thread, _ = make_thread()
    services.thread_set_status(thread=thread, status=ThreadStatus.CLOSED)
    with pytest.raises(ThreadClosed):
        services.customer_message_create(thread=thread, content="hello?")
    thread.refresh_from_db()
    assert thread.last_seq == 0
    assert not Message.objects.filter(thread=thread).exists()


def test_it_reopens_a_resolved_thread_on_a_customer_message() -> None:
    thread, _ = make_thread()
    services.thread_set_status(thread=thread, status=ThreadStatus.RESOLVED)
    services.customer_message_create(thread=thread, content="still broken")
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.OPEN


def test_it_stores_a_human_reply_with_provider_human(agent: Any) -> None:
    thread, _ = make_thread()
    message = services.human_reply_create(thread=thread, user=agent, content="Hi, Alex here")
    message.refresh_from_db()
    assert message.role == Role.ASSISTANT
    assert message.author_kind == AuthorKind.HUMAN
    assert message.provider == "human"
    assert message.author_user == agent
    assert message.author_name == "Alex Agent"
    assert message.visibility == Visibility.PUBLIC


def test_it_takes_over_an_ai_thread_on_a_human_reply(agent: Any) -> None:
    thread, _ = make_thread()
    services.human_reply_create(thread=thread, user=agent, content="I'll take this")
    thread.refresh_from_db()
    assert thread.responder == Responder.HUMAN
    assert thread.assignee == agent
    last = Assignment.objects.filter(thread=thread).last()
    assert last is not None
    assert (last.responder, last.assignee, last.assigned_by) == (Responder.HUMAN, agent, agent)
    assert Assignment.objects.filter(thread=thread).count() == 2


def test_it_announces_a_waiting_thread_reopened_by_its_owners_reply(
    agent: Any, event_log: EventLog, django_capture_on_commit_callbacks: Any
) -> None:
    thread, _ = make_thread()
    services.thread_assign(
        thread=thread, responder=Responder.HUMAN, assignee=agent, assigned_by=agent
    )
    Thread.objects.filter(pk=thread.pk).update(status=ThreadStatus.WAITING_ON_HUMAN)
    thread.refresh_from_db()
    event_log.events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.human_reply_create(thread=thread, user=agent, content="On it")
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.OPEN
    updates = [e for e in event_log.events if e.type == "thread.updated"]
    assert [e.payload["reason"] for e in updates] == ["status"]


def test_it_does_not_take_a_thread_from_its_assignee(agent: Any, other_agent: Any) -> None:
    thread, _ = make_thread()
    services.human_reply_create(thread=thread, user=agent, content="mine")
    services.human_reply_create(thread=thread, user=other_agent, content="helping out")
    thread.refresh_from_db()
    assert thread.assignee == agent
    assert Assignment.objects.filter(thread=thread).count() == 2


def test_it_changes_nothing_but_messages_on_an_internal_note(agent: Any) -> None:
    thread, _ = make_thread()
    note = services.internal_note_create(thread=thread, user=agent, content="VIP customer")
    thread.refresh_from_db()
    assert note.visibility == Visibility.INTERNAL
    assert thread.responder == Responder.AI
    assert thread.assignee is None
    assert Assignment.objects.filter(thread=thread).count() == 1


def test_it_appends_an_assignment_row_on_assign(agent: Any, other_agent: Any) -> None:
    thread, _ = make_thread()
    services.thread_assign(
        thread=thread, responder="human", assignee=other_agent, assigned_by=agent, reason="VIP"
    )
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee) == (Responder.HUMAN, other_agent)
    row = Assignment.objects.filter(thread=thread).last()
    assert row is not None
    assert (row.assignee, row.assigned_by, row.reason) == (other_agent, agent, "VIP")


def test_it_hands_a_thread_back_to_the_ai(agent: Any) -> None:
    thread, _ = make_thread()
    services.human_reply_create(thread=thread, user=agent, content="done here")
    services.thread_assign(thread=thread, responder="ai", assigned_by=agent, reason="back")
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee) == (Responder.AI, None)
    assert Assignment.objects.filter(thread=thread).count() == 3


def test_it_refuses_a_non_staff_assignee(agent: Any) -> None:
    thread, _ = make_thread()
    outsider = UserFactory(username="outsider", is_staff=False)
    with pytest.raises(InvalidAssignee):
        services.thread_assign(thread=thread, responder="human", assignee=outsider)
    assert Assignment.objects.filter(thread=thread).count() == 1


def test_it_accepts_a_member_of_the_agents_group_as_assignee() -> None:
    from django.contrib.auth.models import Group

    thread, _ = make_thread()
    member = UserFactory(username="contractor", is_staff=False)
    member.groups.add(Group.objects.create(name="agents"))
    services.thread_assign(thread=thread, responder="human", assignee=member)
    thread.refresh_from_db()
    assert thread.assignee == member


def test_it_refuses_a_human_assignee_for_the_ai(agent: Any) -> None:
    thread, _ = make_thread()
    with pytest.raises(InvalidAssignee):
        services.thread_assign(thread=thread, responder="ai", assignee=agent)


def test_it_refuses_a_status_staff_cannot_set() -> None:
    thread, _ = make_thread()
    with pytest.raises(InvalidTransition):
        services.thread_set_status(thread=thread, status=ThreadStatus.WAITING_ON_HUMAN)
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.OPEN


def test_it_rejects_two_messages_with_one_seq_in_the_database() -> None:
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="first")
    with pytest.raises(IntegrityError):
        Message.objects.create(
            thread=thread, seq=1, role=Role.USER, author_kind=AuthorKind.CUSTOMER, author_name="x"
        )


def test_it_rejects_an_ai_thread_with_an_assignee_in_the_database(agent: Any) -> None:
    thread, _ = make_thread()
    with pytest.raises(IntegrityError):
        Thread.objects.filter(pk=thread.pk).update(assignee=agent)


def test_it_rejects_a_hidden_customer_message_in_the_database() -> None:
    thread, _ = make_thread()
    with pytest.raises(IntegrityError):
        Message.objects.create(
            thread=thread,
            seq=1,
            role=Role.USER,
            author_kind=AuthorKind.CUSTOMER,
            author_name="x",
            visibility=Visibility.DRAFT,
        )


def test_it_broadcasts_only_after_commit(event_log: EventLog) -> None:
    thread, _ = make_thread()
    # pytest-django's db fixture wraps each test in a transaction that never commits.
    services.customer_message_create(thread=thread, content="hi")
    assert event_log.events == []


@pytest.mark.django_db(transaction=True)
def test_it_broadcasts_message_created_on_commit(event_log: EventLog) -> None:
    thread, _ = make_thread()
    message = services.customer_message_create(thread=thread, content="hi")
    created = [event for event in event_log.events if event.type == "message.created"]
    assert [(e.thread_id, e.payload["seq"]) for e in created] == [(str(thread.pk), message.seq)]
    assert "thread.created" in event_log.types()


@pytest.mark.django_db(transaction=True)
def test_it_broadcasts_nothing_when_the_transaction_rolls_back(event_log: EventLog) -> None:
    from django.db import transaction

    thread, _ = make_thread()
    event_log.events.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.customer_message_create(thread=thread, content="hi")
        raise RuntimeError("boom")
    assert event_log.events == []
    thread.refresh_from_db()
    assert thread.last_seq == 0


def test_it_runs_customer_message_hooks_in_the_same_transaction() -> None:
    seen: list[int] = []

    def hook(message: Message) -> None:
        seen.append(message.seq)

    services.customer_message_hooks.append(hook)
    try:
        thread, _ = make_thread()
        services.customer_message_create(thread=thread, content="hi")
    finally:
        services.customer_message_hooks.remove(hook)
    assert seen == [1]
