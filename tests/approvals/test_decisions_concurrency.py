"""Competing decisions on a real database: exactly one winner, exactly one public message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.models import ApprovalDraft
from escalations import services as escalation_services
from escalations.models import HumanRequest
from tests.factories import UserFactory, make_pending_draft, make_thread
from tests.threads.test_concurrency import run_concurrently
from threads.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

DECIDERS = 32


def staff_clients(count: int) -> list[APIClient]:
    users = [UserFactory(username=f"decider{index}") for index in range(4)]
    keys = [Token.objects.create(user=user).key for user in users]
    clients = []
    for index in range(count):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {keys[index % len(keys)]}")
        clients.append(client)
    return clients


def test_it_lets_one_of_32_concurrent_decisions_win() -> None:
    draft = make_pending_draft()
    clients = staff_clients(DECIDERS)

    def decide(index: int) -> int:
        url = f"/api/v1/desk/approvals/{draft.pk}/"
        if index % 2:
            return (
                clients[index]
                .post(url + "approve/", {"content": f"edit {index}"}, format="json")
                .status_code
            )
        return (
            clients[index]
            .post(url + "reject/", {"review": "no", "next": "human"}, format="json")
            .status_code
        )

    statuses = run_concurrently(DECIDERS, decide)
    assert sorted(statuses) == [200] + [409] * (DECIDERS - 1), statuses
    draft.refresh_from_db()
    public_ai = Message.objects.filter(thread=draft.thread, author_kind="ai", visibility="public")
    if draft.status == "approved":
        assert public_ai.count() == 1
        assert public_ai.get().content == draft.final_content
    else:
        assert draft.status == "rejected"
        assert public_ai.count() == 0


def test_it_lets_one_of_many_concurrent_answers_win() -> None:
    thread, _ = make_thread()
    request = escalation_services.human_request_create(
        thread=thread, turn_id=uuid.uuid4(), question="ok?", tool_call_id="call_1"
    )
    clients = staff_clients(16)

    def reply(index: int) -> int:
        return (
            clients[index]
            .post(
                f"/api/v1/desk/human-requests/{request.pk}/answer/",
                {"answer": f"answer {index}"},
                format="json",
            )
            .status_code
        )

    statuses = run_concurrently(16, reply)
    assert sorted(statuses) == [200] + [409] * 15, statuses
    request = HumanRequest.objects.get(pk=request.pk)
    tool_messages = Message.objects.filter(thread=thread, role="tool")
    assert tool_messages.count() == 1
    assert tool_messages.get().content == request.answer


def test_it_keeps_approve_exactly_once_over_repeated_trials(settings: Any) -> None:
    clients = staff_clients(8)
    for _ in range(10):
        draft = make_pending_draft()

        def approve(index: int, draft: ApprovalDraft = draft) -> int:
            return (
                clients[index]
                .post(f"/api/v1/desk/approvals/{draft.pk}/approve/", {}, format="json")
                .status_code
            )

        assert sorted(run_concurrently(8, approve)) == [200] + [409] * 7
        assert (
            Message.objects.filter(
                thread=draft.thread, visibility="public", author_kind="ai"
            ).count()
            == 1
        )
