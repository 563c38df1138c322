from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from escalations import services
from escalations.models import Escalation, HumanRequest
from tests.factories import make_thread
from tests.threads.test_concurrency import run_concurrently
from threads.models import Assignment, Message, Thread

pytestmark = pytest.mark.django_db


def escalate(thread: Thread, source: str = "tool", **kwargs: Any) -> Escalation:
    escalation, _ = services.escalation_open(
        thread=thread, source=source, reason="needs a person", **kwargs
    )
    return escalation


def count_queries(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_it_opens_one_active_escalation_per_thread(thread_and_token: tuple[Thread, str]) -> None:
    thread, _ = thread_and_token
    first, created = services.escalation_open(thread=thread, source="tool", reason="a")
    second, created_again = services.escalation_open(
        thread=thread, source="customer_request", reason="b"
    )
    assert (created, created_again) == (True, False)
    assert first.pk == second.pk
    assert Escalation.objects.count() == 1
    first.refresh_from_db()
    assert first.reason == "a\nb"
    assert Message.objects.filter(thread=thread, author_kind="system").count() == 1


def test_it_hands_the_thread_to_people_on_escalation(thread_and_token: tuple[Thread, str]) -> None:
    thread, _ = thread_and_token
    escalate(thread)
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee, thread.status) == ("human", None, "waiting_on_human")
    assert Assignment.objects.filter(thread=thread).last().reason.startswith("escalated (tool)")


def test_it_lists_escalations_with_filters(staff_client: APIClient) -> None:
    first, _ = make_thread()
    second, _ = make_thread()
    escalate(first, "tool")
    escalate(second, "customer_request")
    body = staff_client.get("/api/v1/desk/escalations/", {"source": "customer_request"}).json()
    assert [e["thread"] for e in body["results"]] == [str(second.pk)]
    assert set(body["results"][0]) == {
        "id", "thread", "source", "reason", "confidence", "ai_suggestion", "summary", "priority",
        "status", "claimed_by", "created_at", "claimed_at", "resolved_at", "sla_due_at", "queue",
        "topic",
    }  # fmt: skip


def test_it_lists_escalations_in_a_constant_number_of_queries(
    staff_client: APIClient, agent: Any
) -> None:
    for _ in range(3):
        thread, _ = make_thread()
        services.escalation_claim(escalation=escalate(thread), user=agent)
    few = count_queries(staff_client, "/api/v1/desk/escalations/")
    for _ in range(6):
        thread, _ = make_thread()
        services.escalation_claim(escalation=escalate(thread), user=agent)
    assert count_queries(staff_client, "/api/v1/desk/escalations/") == few


def test_it_claims_an_escalation_for_the_caller(
    staff_client: APIClient, agent: Any, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    escalation = escalate(thread)
    response = staff_client.post(f"/api/v1/desk/escalations/{escalation.pk}/claim/")
    assert response.status_code == 200
    assert response.json()["claimed_by"]["id"] == agent.pk
    escalation.refresh_from_db()
    thread.refresh_from_db()
    assert (escalation.status, escalation.claimed_by) == ("claimed", agent)
    assert (thread.responder, thread.assignee) == ("human", agent)


def test_it_refuses_a_claim_held_by_someone_else(
    staff_client: APIClient, other_agent: Any, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    escalation = escalate(thread)
    services.escalation_claim(escalation=escalation, user=other_agent)
    response = staff_client.post(f"/api/v1/desk/escalations/{escalation.pk}/claim/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_claimed"
    escalation.refresh_from_db()
    assert escalation.claimed_by == other_agent


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_many_concurrent_claims_win(agent: Any, other_agent: Any) -> None:
    from rest_framework.authtoken.models import Token

    thread, _ = make_thread()
    escalation = escalate(thread)
    users = [agent, other_agent] * 8
    tokens = {
        user.pk: Token.objects.get_or_create(user=user)[0].key for user in (agent, other_agent)
    }

    def claim(index: int) -> tuple[int, int]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {tokens[users[index].pk]}")
        return users[index].pk, client.post(
            f"/api/v1/desk/escalations/{escalation.pk}/claim/"
        ).status_code

    results = run_concurrently(len(users), claim)
    escalation.refresh_from_db()
    winner = escalation.claimed_by_id
    assert all(status == (200 if user == winner else 409) for user, status in results), results
    assert Assignment.objects.filter(thread=thread, reason="claimed the escalation").count() == 1


def test_it_resolves_and_hands_back_to_the_ai(
    staff_client: APIClient, agent: Any, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    escalation = escalate(thread)
    services.escalation_claim(escalation=escalation, user=agent)
    response = staff_client.post(
        f"/api/v1/desk/escalations/{escalation.pk}/resolve/",
        {"note": "refunded", "responder": "ai"},
        format="json",
    )
    assert response.status_code == 200
    escalation.refresh_from_db()
    thread.refresh_from_db()
    assert (escalation.status, escalation.resolution_note, escalation.resolved_by) == (
        "resolved",
        "refunded",
        agent,
    )
    assert (thread.responder, thread.assignee, thread.status) == ("ai", None, "open")
    again = staff_client.post(
        f"/api/v1/desk/escalations/{escalation.pk}/resolve/", {}, format="json"
    )
    assert again.status_code == 409


def test_it_shows_the_open_escalation_on_the_staff_thread(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    escalation = escalate(thread, ai_suggestion="Try a reset", confidence=0.4)
    body = staff_client.get(f"/api/v1/desk/threads/{thread.pk}/").json()
    assert body["open_escalation"]["id"] == str(escalation.pk)
    assert body["open_escalation"]["ai_suggestion"] == "Try a reset"
    listed = staff_client.get("/api/v1/desk/threads/", {"has_open_escalation": "true"}).json()[
        "results"
    ]
    assert [t["id"] for t in listed] == [str(thread.pk)]


def test_it_hands_off_to_a_person_on_customer_request(
    customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    response = customer_client.post(
        f"/api/v1/threads/{thread.pk}/handoff/", {"reason": "billing"}, format="json"
    )
    assert response.status_code == 202
    assert response.json()["responder"] == "human"
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.reason) == ("customer_request", "billing")
    assert customer_client.post(f"/api/v1/threads/{thread.pk}/handoff/").status_code == 202
    assert Escalation.objects.count() == 1


def test_it_rate_limits_handoffs(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], settings: Any
) -> None:
    thread, _ = thread_and_token
    settings.SUPPORTDESK_RATE_LIMITS = {
        **settings.SUPPORTDESK_RATE_LIMITS,
        "handoff_per_thread": "2/3600",
    }
    statuses = [
        customer_client.post(f"/api/v1/threads/{thread.pk}/handoff/").status_code for _ in range(3)
    ]
    assert statuses == [202, 202, 429]


def test_it_hides_the_handoff_of_another_thread(customer_client: APIClient, db: Any) -> None:
    other, _ = make_thread()
    assert customer_client.post(f"/api/v1/threads/{other.pk}/handoff/").status_code == 404
    assert not Escalation.objects.exists()


def test_it_lists_human_requests_in_a_constant_number_of_queries(staff_client: APIClient) -> None:
    import uuid

    from escalations.services import human_request_create

    def add() -> None:
        thread, _ = make_thread()
        human_request_create(
            thread=thread, turn_id=uuid.uuid4(), question="Eligible?", tool_call_id="c1"
        )

    for _ in range(3):
        add()
    few = count_queries(staff_client, "/api/v1/desk/human-requests/")
    for _ in range(5):
        add()
    assert count_queries(staff_client, "/api/v1/desk/human-requests/") == few
    body = staff_client.get("/api/v1/desk/human-requests/", {"status": "pending"}).json()
    assert len(body["results"]) == 8
    assert HumanRequest.objects.count() == 8


def test_it_counts_pending_human_requests_on_the_staff_thread(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    import uuid

    from escalations.services import human_request_create

    thread, _ = thread_and_token
    human_request_create(thread=thread, turn_id=uuid.uuid4(), question="a?", tool_call_id="c1")
    human_request_create(thread=thread, turn_id=uuid.uuid4(), question="b?", tool_call_id="c2")
    assert (
        staff_client.get(f"/api/v1/desk/threads/{thread.pk}/").json()["pending_human_requests"] == 2
    )
