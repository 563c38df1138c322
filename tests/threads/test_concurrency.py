"""Concurrent writers on a real database (PostgreSQL in CI's second run, SQLite in the first)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from tests.factories import make_thread
from threads import services
from threads.models import Assignment, IdempotencyRecord, Message, Thread

pytestmark = pytest.mark.django_db(transaction=True)

POSTERS = 32


def run_concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; each has its own connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as exc:  # collected and asserted by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_it_never_repeats_or_skips_a_seq_under_concurrent_posters() -> None:
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="first")

    def post(index: int) -> int:
        fresh = Thread.objects.select_related("customer").get(pk=thread.pk)
        return services.customer_message_create(thread=fresh, content=f"message {index}").seq

    results = run_concurrently(POSTERS, post)
    assert all(isinstance(seq, int) for seq in results), results
    seqs = sorted(Message.objects.filter(thread=thread).values_list("seq", flat=True))
    assert seqs == list(range(1, POSTERS + 2))
    assert sorted(results) == list(range(2, POSTERS + 2))
    thread.refresh_from_db()
    assert thread.last_seq == POSTERS + 1


def test_it_numbers_concurrent_api_posts_without_gaps(settings: Any) -> None:
    settings.SUPPORTDESK_RATE_LIMITS_ENABLED = False
    thread, token = make_thread()

    def post(index: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.post(
            f"/api/v1/threads/{thread.pk}/messages/", {"content": f"hi {index}"}, format="json"
        )
        return response.status_code

    statuses = run_concurrently(POSTERS, post)
    assert statuses == [201] * POSTERS
    seqs = sorted(Message.objects.filter(thread=thread).values_list("seq", flat=True))
    assert seqs == list(range(1, POSTERS + 1))


def test_it_creates_one_message_for_concurrent_posts_with_one_idempotency_key(
    settings: Any,
) -> None:
    settings.SUPPORTDESK_RATE_LIMITS_ENABLED = False
    thread, token = make_thread()

    def post(index: int) -> tuple[int, str]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_IDEMPOTENCY_KEY="same-key")
        response = client.post(
            f"/api/v1/threads/{thread.pk}/messages/", {"content": "only once"}, format="json"
        )
        return response.status_code, response.json().get("id", "")

    results = run_concurrently(16, post)
    assert {status for status, _ in results} == {201}
    assert len({message_id for _, message_id in results}) == 1
    assert Message.objects.filter(thread=thread).count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_it_records_one_takeover_when_two_agents_reply_at_once(
    agent: Any, other_agent: Any
) -> None:
    thread, _ = make_thread()
    users = [agent, other_agent] * 4

    def reply(index: int) -> int:
        fresh = Thread.objects.select_related("customer").get(pk=thread.pk)
        return services.human_reply_create(thread=fresh, user=users[index], content="mine").seq

    results = run_concurrently(len(users), reply)
    assert all(isinstance(seq, int) for seq in results), results
    takeovers = Assignment.objects.filter(thread=thread, responder="human")
    assert takeovers.count() == 1
    thread.refresh_from_db()
    assert thread.assignee == takeovers.get().assignee


def test_it_uses_the_configured_database() -> None:
    # Guards the CI matrix: the second run must really be on PostgreSQL.
    import os

    expected = (
        "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    )
    assert connection.vendor == expected
