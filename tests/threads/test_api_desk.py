from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory, make_thread
from threads import services
from threads.models import Assignment, Message, Thread, Visibility

pytestmark = pytest.mark.django_db

STAFF_THREAD_KEYS = {
    "id", "status", "responder", "agent", "created_at", "last_seq", "subject", "customer",
    "assignee", "ai_mode", "priority", "open_escalation", "pending_approvals",
    "pending_human_requests", "sla_due_at", "updated_at",
}  # fmt: skip


def desk(path: str) -> str:
    return f"/api/v1/desk/{path}"


def test_it_issues_a_token_to_staff(anon_client: APIClient, agent: Any) -> None:
    response = anon_client.post(
        "/api/v1/auth/token/", {"username": "alex", "password": "pw-for-tests-123"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=agent).key


def test_it_refuses_a_token_for_a_wrong_password(anon_client: APIClient, agent: Any) -> None:
    response = anon_client.post(
        "/api/v1/auth/token/", {"username": "alex", "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert not Token.objects.exists()


def test_it_refuses_a_token_to_non_staff(anon_client: APIClient) -> None:
    UserFactory(username="plain", is_staff=False)
    response = anon_client.post(
        "/api/v1/auth/token/", {"username": "plain", "password": "pw-for-tests-123"}, format="json"
    )
    assert response.status_code == 403
    assert not Token.objects.exists()


def test_it_answers_401_with_www_authenticate_without_credentials(anon_client: APIClient) -> None:
    response = anon_client.get(desk("threads/"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_answers_403_to_an_authenticated_non_staff_user(db: Any) -> None:
    user = UserFactory(username="plain", is_staff=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = client.get(desk("threads/"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_it_answers_401_to_an_inactive_staff_user(db: Any) -> None:
    user = UserFactory(username="gone", is_active=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get(desk("threads/")).status_code == 401


def test_it_enforces_csrf_for_session_auth(
    agent: Any, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(agent)
    response = client.post(desk(f"threads/{thread.pk}/reply/"), {"content": "hi"}, format="json")
    assert response.status_code == 403
    assert not Message.objects.filter(thread=thread).exists()


def test_it_lists_threads_newest_activity_first(staff_client: APIClient) -> None:
    first, _ = make_thread(subject="first")
    second, _ = make_thread(subject="second")
    services.customer_message_create(thread=first, content="bump")
    body = staff_client.get(desk("threads/")).json()
    assert [t["subject"] for t in body["results"]] == ["first", "second"]
    assert set(body["results"][0]) == STAFF_THREAD_KEYS
    assert body["next"] is None
    assert second.pk


def test_it_pages_threads_with_a_cursor(staff_client: APIClient) -> None:
    for index in range(5):
        make_thread(subject=f"t{index}")
    page = staff_client.get(desk("threads/"), {"limit": 2}).json()
    seen = [t["subject"] for t in page["results"]]
    while page["next"]:
        page = staff_client.get(page["next"]).json()
        seen += [t["subject"] for t in page["results"]]
    assert sorted(seen) == [f"t{i}" for i in range(5)]
    assert len(seen) == 5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "closed"}, ["closed one"]),
        ({"responder": "human"}, ["mine", "theirs"]),
        ({"assignee": "me"}, ["mine"]),
        ({"assignee": "none"}, ["closed one", "plain", "urgent"]),
        ({"priority": "urgent"}, ["urgent"]),
        ({"q": "URGENT"}, ["urgent"]),
        ({"has_open_escalation": "false"}, ["closed one", "mine", "plain", "theirs", "urgent"]),
    ],
)
def test_it_filters_threads(
    staff_client: APIClient,
    agent: Any,
    other_agent: Any,
    params: dict[str, str],
    expected: list[str],
) -> None:
    make_thread(subject="plain")
    urgent, _ = make_thread(subject="urgent")
    services.thread_update(thread=urgent, priority="urgent")
    closed, _ = make_thread(subject="closed one")
    services.thread_set_status(thread=closed, status="closed")
    mine, _ = make_thread(subject="mine")
    services.human_reply_create(thread=mine, user=agent, content="hi")
    theirs, _ = make_thread(subject="theirs")
    services.thread_assign(thread=theirs, responder="human", assignee=other_agent)
    body = staff_client.get(desk("threads/"), params).json()
    assert sorted(t["subject"] for t in body["results"]) == expected


def test_it_filters_threads_by_the_queue_of_their_escalation(staff_client: APIClient) -> None:
    from escalations import services as escalation_services
    from escalations.models import Queue, RoutingRule

    support = Queue.objects.create(name="Support", is_default=True, auto_assign=False)
    billing = Queue.objects.create(name="Billing", auto_assign=False)
    RoutingRule.objects.create(queue=billing, keywords="refund")
    for subject, reason in (("refund", "wants a refund"), ("broken", "broken pole")):
        thread, _ = make_thread(subject=subject)
        escalation_services.escalation_open(thread=thread, source="staff", reason=reason)
    resolved, _ = make_thread(subject="old refund")
    escalation, _ = escalation_services.escalation_open(
        thread=resolved, source="staff", reason="refund"
    )
    escalation_services.escalation_resolve(escalation=escalation, user=None)
    make_thread(subject="no escalation")

    def subjects(queue: Any) -> list[str]:
        body = staff_client.get(desk("threads/"), {"queue": str(queue)}).json()
        return sorted(t["subject"] for t in body["results"])

    assert subjects(billing.pk) == ["refund"]
    assert subjects(support.pk) == ["broken"]
    assert subjects(billing.pk + support.pk + 1) == []
    refused = staff_client.get(desk("threads/"), {"queue": "billing"})
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"queue": ["Use a queue id."]}


def test_it_filters_assignee_by_user_id(staff_client: APIClient, other_agent: Any) -> None:
    theirs, _ = make_thread(subject="theirs")
    make_thread(subject="other")
    services.thread_assign(thread=theirs, responder="human", assignee=other_agent)
    body = staff_client.get(desk("threads/"), {"assignee": other_agent.pk}).json()
    assert [t["subject"] for t in body["results"]] == ["theirs"]


def test_it_lists_threads_in_a_constant_number_of_queries(
    staff_client: APIClient, agent: Any
) -> None:
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = staff_client.get(desk("threads/"))
        assert response.status_code == 200
        return len(ctx.captured_queries)

    for _ in range(3):
        thread, _ = make_thread()
        services.human_reply_create(thread=thread, user=agent, content="hi")
    few = count_queries()
    for _ in range(7):
        thread, _ = make_thread()
        services.human_reply_create(thread=thread, user=agent, content="hi")
    assert count_queries() == few
    assert few <= 4  # auth token + user, the page (with joins)


def test_it_lists_threads_without_count_or_offset(staff_client: APIClient) -> None:
    for _ in range(3):
        make_thread()
    with CaptureQueriesContext(connection) as ctx:
        page = staff_client.get(desk("threads/"), {"limit": 1}).json()
        staff_client.get(page["next"])
    statements = [q["sql"].upper() for q in ctx.captured_queries]
    # Per-row counts in correlated subqueries are fine; a page-level COUNT is not.
    assert not [sql for sql in statements if sql.startswith("SELECT COUNT(")]
    assert not [sql for sql in statements if "OFFSET" in sql]


def test_it_shows_every_visibility_to_staff(
    staff_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any
) -> None:
    thread, _ = thread_and_token
    services.customer_message_create(thread=thread, content="q")
    services.internal_note_create(thread=thread, user=agent, content="note")
    services.message_create(
        thread=thread, role="assistant", author_kind="ai", content="draft", visibility=Visibility.DRAFT,
        provider="openai", model="gpt-test", usage={"prompt_tokens": 5, "completion_tokens": 2},
    )  # fmt: skip
    body = staff_client.get(desk(f"threads/{thread.pk}/messages/")).json()
    assert [m["visibility"] for m in body["results"]] == ["public", "internal", "draft"]
    draft = body["results"][2]
    assert (draft["provider"], draft["model"], draft["usage"]) == (
        "openai", "gpt-test", {"prompt_tokens": 5, "completion_tokens": 2}
    )  # fmt: skip
    assert body["results"][1]["author"] == {"kind": "human", "name": "Alex Agent", "user": agent.pk}


def test_it_lists_staff_messages_in_a_constant_number_of_queries(
    staff_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any, other_agent: Any
) -> None:
    thread, _ = thread_and_token

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            staff_client.get(desk(f"threads/{thread.pk}/messages/"))
        return len(ctx.captured_queries)

    services.human_reply_create(thread=thread, user=agent, content="a")
    few = count_queries()
    for index in range(6):
        services.internal_note_create(
            thread=thread, user=[agent, other_agent][index % 2], content="n"
        )
    assert count_queries() == few


def test_it_saves_a_public_reply_and_takes_over(
    staff_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any
) -> None:
    thread, _ = thread_and_token
    response = staff_client.post(
        desk(f"threads/{thread.pk}/reply/"), {"content": "On it"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["role"], body["provider"], body["visibility"]) == ("assistant", "human", "public")
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee) == ("human", agent)


def test_it_saves_an_internal_note_without_taking_over(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    response = staff_client.post(
        desk(f"threads/{thread.pk}/reply/"), {"content": "fyi", "internal": True}, format="json"
    )
    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).visibility == "internal"
    thread.refresh_from_db()
    assert thread.responder == "ai"


def test_it_refuses_a_reply_on_a_closed_thread(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    services.thread_set_status(thread=thread, status="closed")
    response = staff_client.post(
        desk(f"threads/{thread.pk}/reply/"), {"content": "hi"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "thread_closed"
    assert not Message.objects.filter(thread=thread).exists()


def test_it_assigns_and_lists_the_history(
    staff_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any, other_agent: Any
) -> None:
    thread, _ = thread_and_token
    response = staff_client.post(
        desk(f"threads/{thread.pk}/assign/"),
        {"responder": "human", "assignee": other_agent.pk, "reason": "billing expert"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["assignee"] == {
        "id": other_agent.pk,
        "username": "sam",
        "name": "Sam Support",
    }
    back = staff_client.post(
        desk(f"threads/{thread.pk}/assign/"), {"responder": "ai"}, format="json"
    )
    assert back.json()["responder"] == "ai"
    history = staff_client.get(desk(f"threads/{thread.pk}/assignments/")).json()["results"]
    assert [(h["responder"], h["assignee"] and h["assignee"]["id"]) for h in history] == [
        ("ai", None), ("human", other_agent.pk), ("ai", None)
    ]  # fmt: skip
    assert history[1]["assigned_by"]["id"] == agent.pk
    assert history[1]["reason"] == "billing expert"


def test_it_refuses_an_unknown_assignee(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    response = staff_client.post(
        desk(f"threads/{thread.pk}/assign/"),
        {"responder": "human", "assignee": 999999},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_assignee"
    assert Assignment.objects.filter(thread=thread).count() == 1


def test_it_lists_assignments_in_a_constant_number_of_queries(
    staff_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any, other_agent: Any
) -> None:
    thread, _ = thread_and_token

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            staff_client.get(desk(f"threads/{thread.pk}/assignments/"))
        return len(ctx.captured_queries)

    few = count_queries()
    for user in [agent, other_agent, agent, other_agent]:
        services.thread_assign(thread=thread, responder="human", assignee=user, assigned_by=user)
    assert count_queries() == few


def test_it_sets_the_status(staff_client: APIClient, thread_and_token: tuple[Thread, str]) -> None:
    thread, _ = thread_and_token
    response = staff_client.post(
        desk(f"threads/{thread.pk}/status/"), {"status": "resolved"}, format="json"
    )
    assert response.status_code == 200
    thread.refresh_from_db()
    assert thread.status == "resolved"


def test_it_patches_ai_mode_priority_and_subject(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    response = staff_client.patch(
        desk(f"threads/{thread.pk}/"),
        {"ai_mode": "draft", "priority": "high", "subject": "New"},
        format="json",
    )
    assert response.status_code == 200
    thread.refresh_from_db()
    assert (thread.ai_mode, thread.priority, thread.subject) == ("draft", "high", "New")


def test_it_shows_a_thread_to_staff(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    body = staff_client.get(desk(f"threads/{thread.pk}/")).json()
    assert set(body) == STAFF_THREAD_KEYS
    assert body["customer"]["name"] == "Casey Customer"
    assert (body["pending_approvals"], body["pending_human_requests"], body["open_escalation"]) == (
        0,
        0,
        None,
    )


def test_it_replays_a_staff_reply_with_the_same_key(
    staff_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    url = desk(f"threads/{thread.pk}/reply/")
    first = staff_client.post(url, {"content": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    second = staff_client.post(url, {"content": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert first.json() == second.json()
    assert Message.objects.filter(thread=thread).count() == 1
