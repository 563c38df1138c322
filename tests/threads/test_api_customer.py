from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from supportdesk.agent.models import AgentTurn
from tests.factories import make_thread
from threads import services
from threads.models import IdempotencyRecord, Message, Thread, Visibility

pytestmark = pytest.mark.django_db

CUSTOMER_MESSAGE_KEYS = {"id", "thread", "seq", "role", "author", "content", "created_at"}


def messages_url(thread: Thread) -> str:
    return f"/api/v1/threads/{thread.pk}/messages/"


def test_it_creates_a_thread_and_returns_its_token(anon_client: APIClient) -> None:
    response = anon_client.post(
        "/api/v1/threads/",
        {"customer": {"name": "Ann", "email": "ann@example.com"}, "subject": "Refund"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    thread = Thread.objects.select_related("customer").get(pk=body["thread"]["id"])
    assert (thread.subject, thread.customer.email) == ("Refund", "ann@example.com")
    assert set(body["thread"]) == {"id", "status", "responder", "agent", "created_at", "last_seq"}
    assert body["thread"]["responder"] == "ai"
    detail = anon_client.get(
        f"/api/v1/threads/{thread.pk}/", HTTP_AUTHORIZATION=f"Bearer {body['token']}"
    )
    assert detail.status_code == 200


def test_it_saves_the_first_message_with_the_thread(anon_client: APIClient) -> None:
    response = anon_client.post(
        "/api/v1/threads/", {"message": "  My parcel is late  "}, format="json"
    )
    assert response.status_code == 201
    stored = Message.objects.get(thread_id=response.json()["thread"]["id"])
    assert (stored.seq, stored.content, stored.role) == (1, "My parcel is late", "user")


def test_it_posts_a_customer_message(
    customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    response = customer_client.post(messages_url(thread), {"content": "Hello"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == CUSTOMER_MESSAGE_KEYS
    assert body["author"] == {"kind": "customer", "name": "Casey Customer"}
    assert Message.objects.get(pk=body["id"]).content == "Hello"


def test_it_lists_only_public_messages_to_the_customer(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any
) -> None:
    thread, _ = thread_and_token
    services.customer_message_create(thread=thread, content="question")
    services.internal_note_create(thread=thread, user=agent, content="secret note")
    services.message_create(
        thread=thread,
        role="assistant",
        author_kind="ai",
        content="draft!",
        visibility=Visibility.DRAFT,
    )
    services.human_reply_create(thread=thread, user=agent, content="answer")
    body = customer_client.get(messages_url(thread)).json()
    assert [m["content"] for m in body["results"]] == ["question", "answer"]
    assert [m["seq"] for m in body["results"]] == [1, 4]
    assert body["last_seq"] == 4
    assert all(set(m) == CUSTOMER_MESSAGE_KEYS for m in body["results"])


def test_it_lists_messages_after_a_seq_with_a_limit(
    customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    for index in range(5):
        services.customer_message_create(thread=thread, content=f"m{index}")
    body = customer_client.get(messages_url(thread), {"after": 1, "limit": 2}).json()
    assert [m["seq"] for m in body["results"]] == [2, 3]
    assert body["has_more"] is True
    rest = customer_client.get(messages_url(thread), {"after": 3, "limit": 2}).json()
    assert ([m["seq"] for m in rest["results"]], rest["has_more"]) == ([4, 5], False)


def test_it_shows_the_agent_name_after_a_takeover(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], agent: Any
) -> None:
    thread, _ = thread_and_token
    services.human_reply_create(thread=thread, user=agent, content="Alex here")
    body = customer_client.get(f"/api/v1/threads/{thread.pk}/").json()
    assert body["responder"] == "human"
    assert body["agent"] == {"name": "Alex Agent"}
    reply = customer_client.get(messages_url(thread)).json()["results"][-1]
    assert reply["author"] == {"kind": "human", "name": "Alex Agent"}
    assert reply["role"] == "assistant"


def test_it_answers_404_for_another_threads_token(customer_client: APIClient, db: Any) -> None:
    other, _ = make_thread()
    response = customer_client.get(messages_url(other))
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_it_replays_a_post_with_the_same_idempotency_key(
    customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    first = customer_client.post(
        messages_url(thread), {"content": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = customer_client.post(
        messages_url(thread), {"content": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert Message.objects.filter(thread=thread).count() == 1


def test_it_scopes_idempotency_keys_to_the_thread(anon_client: APIClient, db: Any) -> None:
    first, first_token = make_thread()
    second, second_token = make_thread()
    for thread, token in [(first, first_token), (second, second_token)]:
        response = anon_client.post(
            messages_url(thread),
            {"content": "same"},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_IDEMPOTENCY_KEY="shared",
        )
        assert response.status_code == 201
    assert Message.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 2


def test_it_treats_reordered_keys_as_the_same_body(anon_client: APIClient) -> None:
    body_a = '{"subject": "Hi", "customer": {"name": "A", "email": "a@example.com"}}'
    body_b = '{"customer": {"email": "a@example.com", "name": "A"}, "subject": "Hi"}'
    responses = [
        anon_client.generic(
            "POST",
            "/api/v1/threads/",
            body,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="x1",
        )
        for body in (body_a, body_b)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert Thread.objects.count() == 1


def test_it_does_not_replay_a_stored_response_to_a_wrong_token(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], anon_client: APIClient
) -> None:
    thread, _ = thread_and_token
    customer_client.post(
        messages_url(thread), {"content": "private"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    response = anon_client.post(
        messages_url(thread),
        {"content": "private"},
        format="json",
        HTTP_AUTHORIZATION="Bearer wrong",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 404
    assert "private" not in response.content.decode()


def test_it_rate_limits_messages_per_thread(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], settings: Any
) -> None:
    thread, _ = thread_and_token
    settings.SUPPORTDESK_RATE_LIMITS = {
        **settings.SUPPORTDESK_RATE_LIMITS,
        "message_per_thread": "3/60",
    }
    statuses = [
        customer_client.post(messages_url(thread), {"content": f"m{i}"}, format="json").status_code
        for i in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    limited = customer_client.post(messages_url(thread), {"content": "again"}, format="json")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert Message.objects.filter(thread=thread).count() == 3


def test_it_rate_limits_messages_per_client_ip(anon_client: APIClient, settings: Any) -> None:
    settings.SUPPORTDESK_RATE_LIMITS = {
        **settings.SUPPORTDESK_RATE_LIMITS,
        "message_per_ip": "2/60",
    }
    statuses = []
    for _ in range(3):
        thread, token = make_thread()
        statuses.append(
            anon_client.post(
                messages_url(thread),
                {"content": "hi"},
                format="json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            ).status_code
        )
    assert statuses == [201, 201, 429]


def test_it_keeps_other_clients_unaffected_by_a_limited_ip(
    anon_client: APIClient, settings: Any
) -> None:
    settings.SUPPORTDESK_RATE_LIMITS = {
        **settings.SUPPORTDESK_RATE_LIMITS,
        "message_per_ip": "1/60",
    }
    thread, token = make_thread()
    url = messages_url(thread)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert anon_client.post(url, {"content": "a"}, format="json", **auth).status_code == 201
    assert anon_client.post(url, {"content": "b"}, format="json", **auth).status_code == 429
    other = anon_client.post(url, {"content": "c"}, format="json", REMOTE_ADDR="10.9.9.9", **auth)
    assert other.status_code == 201


def test_it_disables_rate_limits_when_configured_off(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], settings: Any
) -> None:
    thread, _ = thread_and_token
    settings.SUPPORTDESK_RATE_LIMITS = {
        **settings.SUPPORTDESK_RATE_LIMITS,
        "message_per_thread": "1/60",
    }
    settings.SUPPORTDESK_RATE_LIMITS_ENABLED = False
    for index in range(3):
        response = customer_client.post(
            messages_url(thread), {"content": f"{index}"}, format="json"
        )
        assert response.status_code == 201


def test_it_lists_messages_in_a_constant_number_of_queries(
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    django_assert_num_queries: Any,
    agent: Any,
) -> None:
    thread, _ = thread_and_token
    for index in range(3):
        services.customer_message_create(thread=thread, content=f"q{index}")
        services.human_reply_create(thread=thread, user=agent, content=f"a{index}")
    # One query for the thread (token check), one for the page.
    with django_assert_num_queries(2):
        response = customer_client.get(messages_url(thread))
    assert len(response.json()["results"]) == 6


def test_it_stores_a_customer_message_and_its_turn_in_one_short_transaction(
    customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    """The write path of every customer message (bench/README.md "Message POST"): the
    token check, then the seq counter, the message, the drafts it supersedes, the turn and
    its task, in one transaction."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    thread, _ = thread_and_token
    with CaptureQueriesContext(connection) as queries:
        response = customer_client.post(messages_url(thread), {"content": "Hi"}, format="json")
    assert response.status_code == 201
    statements = [
        query["sql"].split()[0]
        for query in queries.captured_queries
        if query["sql"].split()[0] not in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}
    ]
    assert statements == ["SELECT", "UPDATE", "INSERT", "UPDATE", "INSERT", "INSERT"]
    turn = AgentTurn.objects.get(trigger_message__thread=thread, trigger_message__content="Hi")
    assert turn.status == "queued"
