"""Escalation rate limits: per thread, per customer and per queue, on both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from escalations import limits, services
from escalations.models import Escalation, OutboxMessage, RateBucket, WebhookEndpoint
from tests.conftest import EventLog
from tests.factories import make_thread
from tests.threads.test_concurrency import run_concurrently
from threads.models import Message, Thread

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
# The buckets get a Redis database of their own on that server, apart from the cache's,
# which every test clears (in parallel test processes too): a clear must never refill
# buckets in the middle of another test.
LIMITS_DB = 12


def redis_url() -> str | None:
    """REDIS_URL's server when set; else a local Redis if one answers; else None (skip)."""
    import redis

    url = os.environ.get("REDIS_URL") or LOCAL_REDIS
    url = urlsplit(url)._replace(path=f"/{LIMITS_DB}").geturl()
    if os.environ.get("REDIS_URL"):
        return url
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        return None
    finally:
        client.close()
    return url


@pytest.fixture(params=["db", "redis"])
def backend(request: Any, settings: Any) -> Iterator[str]:
    settings.SUPPORTDESK_RATE_LIMITS_ENABLED = True
    settings.SUPPORTDESK_ESCALATION_LIMITS = {
        "per_thread": "off",
        "per_customer": "off",
        "per_queue": "off",
    }
    if request.param == "db":
        settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND = "db"
        yield "db"
        return
    url = redis_url()
    if url is None:
        pytest.skip("no Redis: set REDIS_URL or run one on 127.0.0.1:6379")
    import redis

    prefix = f"test-limits-{uuid.uuid4().hex}"
    settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND = "redis"
    settings.SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL = url
    settings.SUPPORTDESK_ESCALATION_LIMITS_PREFIX = prefix
    yield "redis"
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def set_limit(settings: Any, name: str, spec: str) -> None:
    settings.SUPPORTDESK_ESCALATION_LIMITS = {**settings.SUPPORTDESK_ESCALATION_LIMITS, name: spec}


def escalate(thread: Thread, source: str = "tool") -> tuple[Escalation, bool]:
    return services.escalation_open(thread=thread, source=source, reason="needs a person")


def escalate_and_resolve(thread: Thread, user: Any) -> Escalation:
    escalation, created = escalate(thread)
    assert created
    services.escalation_resolve(escalation=escalation, user=user, responder="ai")
    thread.refresh_from_db()
    return escalation


def same_customer_threads(count: int) -> list[Thread]:
    first, _ = make_thread()
    threads = [first]
    for _ in range(count - 1):
        thread, _ = make_thread()
        Thread.objects.filter(pk=thread.pk).update(customer=first.customer)
        threads.append(Thread.objects.select_related("customer").get(pk=thread.pk))
    return threads


@pytest.mark.django_db
def test_it_throttles_a_thread_that_re_escalates_too_often(
    backend: str, settings: Any, agent: Any
) -> None:
    set_limit(settings, "per_thread", "2/3600")
    thread, _ = make_thread()
    escalations = [escalate_and_resolve(thread, agent) for _ in range(3)]
    stored = [Escalation.objects.get(pk=e.pk) for e in escalations]
    assert [e.throttled for e in stored] == [False, False, True]
    assert "per_thread (2/3600)" in stored[2].throttle_note
    assert Escalation.objects.filter(thread=thread).count() == 3


@pytest.mark.django_db
def test_it_throttles_escalations_per_customer(backend: str, settings: Any) -> None:
    set_limit(settings, "per_customer", "2/3600")
    threads = same_customer_threads(3)
    other, _ = make_thread()
    for thread in [*threads, other]:
        escalate(thread)
    throttled = dict(Escalation.objects.values_list("thread_id", "throttled"))
    assert [throttled[t.pk] for t in threads] == [False, False, True]
    assert throttled[other.pk] is False
    assert "per_customer" in Escalation.objects.get(thread=threads[2]).throttle_note


@pytest.mark.django_db
def test_it_throttles_escalations_per_queue(backend: str, settings: Any) -> None:
    set_limit(settings, "per_queue", "2/3600")
    threads = [make_thread()[0] for _ in range(3)]
    for thread in threads:
        escalate(thread)
    throttled = dict(Escalation.objects.values_list("thread_id", "throttled"))
    assert [throttled[t.pk] for t in threads] == [False, False, True]


@pytest.mark.django_db
def test_it_limits_the_queue_a_keyword_rule_routes_to(backend: str, settings: Any) -> None:
    from escalations.models import Queue, RoutingRule

    set_limit(settings, "per_queue", "1/3600")
    general = Queue.objects.create(name="General", is_default=True, auto_assign=False)
    billing = Queue.objects.create(name="Billing", auto_assign=False)
    RoutingRule.objects.create(queue=billing, keywords="refund")
    reasons = ["wants a refund", "refund again", "the tent is torn"]
    threads = [make_thread()[0] for _ in reasons]
    for thread, reason in zip(threads, reasons, strict=True):
        services.escalation_open(thread=thread, source="tool", reason=reason)
    landed = {
        e.thread_id: (e.queue_id, e.throttled) for e in Escalation.objects.select_related("queue")
    }
    # The second refund finds Billing's bucket empty; the torn tent has General's to itself.
    assert [landed[t.pk] for t in threads] == [
        (billing.pk, False),
        (billing.pk, True),
        (general.pk, False),
    ]
    assert "per_queue" in Escalation.objects.get(thread=threads[1]).throttle_note


@pytest.mark.django_db
def test_it_limits_the_queue_a_tier_or_topic_rule_routes_to(backend: str, settings: Any) -> None:
    from escalations.models import Queue, RoutingRule
    from threads import services as thread_services

    set_limit(settings, "per_queue", "1/3600")
    general = Queue.objects.create(name="General", is_default=True, auto_assign=False)
    vip = Queue.objects.create(name="VIP", auto_assign=False)
    billing = Queue.objects.create(name="Billing", auto_assign=False)
    RoutingRule.objects.create(queue=vip, position=1, tier="vip")
    RoutingRule.objects.create(queue=billing, position=2, topic="billing")

    def vip_thread(n: int) -> Thread:
        return thread_services.thread_create(
            customer_external_id=f"vip-{n}", customer_verified=True, customer_tier="vip"
        )[0]

    cases = [
        (vip_thread(1), ""),
        (vip_thread(2), "billing"),
        (make_thread()[0], "billing"),
        (make_thread()[0], "billing"),
        (make_thread()[0], ""),
    ]
    for thread, topic in cases:
        services.escalation_open(thread=thread, source="tool", reason="help", topic=topic)
    landed = {e.thread_id: (e.queue_id, e.throttled) for e in Escalation.objects.all()}
    assert [landed[thread.pk] for thread, _ in cases] == [
        (vip.pk, False),
        (vip.pk, True),  # VIP's bucket is spent: billing's is not asked
        (billing.pk, False),
        (billing.pk, True),
        (general.pk, False),
    ]


@pytest.mark.django_db
def test_it_merges_into_the_open_escalation_without_taking_a_token(
    backend: str, settings: Any, agent: Any
) -> None:
    set_limit(settings, "per_thread", "2/3600")
    thread, _ = make_thread()
    first, created = escalate(thread)
    for n in range(5):
        merged, created_again = services.escalation_open(
            thread=thread, source="customer_request", reason=f"again {n}"
        )
        assert (merged.pk, created_again) == (first.pk, False)
    services.escalation_resolve(escalation=first, user=agent)
    second, created = escalate(thread)
    assert created
    second.refresh_from_db()
    first.refresh_from_db()
    assert (first.throttled, second.throttled) == (False, False)
    assert "again 4" in first.reason


@pytest.mark.django_db
def test_it_queues_a_throttled_escalation_with_a_note_and_notifies_nobody(
    backend: str,
    settings: Any,
    agent: Any,
    event_log: EventLog,
    django_capture_on_commit_callbacks: Any,
) -> None:
    set_limit(settings, "per_thread", "1/3600")
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook")
    thread, _ = make_thread()
    escalate_and_resolve(thread, agent)
    sent_before = OutboxMessage.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        escalation, created = escalate(thread)
    escalation.refresh_from_db()
    thread.refresh_from_db()
    assert created and escalation.throttled
    assert (escalation.status, thread.status, thread.responder) == (
        "open",
        "waiting_on_human",
        "human",
    )
    assert OutboxMessage.objects.count() == sent_before
    assert OutboxMessage.objects.filter(escalation=escalation).count() == 0
    notifications = [e for e in event_log.events if e.type == "notification"]
    assert [n.payload["escalation_id"] for n in notifications] == []
    assert "escalation.created" in event_log.types()
    note = Message.objects.filter(thread=thread, visibility="internal", author_kind="system").last()
    assert note is not None and note.content == escalation.throttle_note


@pytest.mark.django_db
def test_it_refills_the_bucket_over_time(
    backend: str, settings: Any, agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limit(settings, "per_thread", "1/60")
    clock = [1_900_000_000.0]
    monkeypatch.setattr(limits, "_clock", lambda: clock[0])
    thread, _ = make_thread()
    first = escalate_and_resolve(thread, agent)
    clock[0] += 30
    second = escalate_and_resolve(thread, agent)
    clock[0] += 61
    third = escalate_and_resolve(thread, agent)
    stored = [Escalation.objects.get(pk=e.pk).throttled for e in (first, second, third)]
    assert stored == [False, True, False]


@pytest.mark.django_db
def test_it_never_limits_a_staff_escalation(backend: str, settings: Any, agent: Any) -> None:
    set_limit(settings, "per_thread", "1/3600")
    thread, _ = make_thread()
    escalate_and_resolve(thread, agent)
    escalation, _ = services.escalation_open(thread=thread, source="staff", reason="mine")
    escalation.refresh_from_db()
    assert escalation.throttled is False


@pytest.mark.django_db
def test_it_gives_the_tokens_back_when_one_limit_says_no(settings: Any) -> None:
    settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND = "db"
    settings.SUPPORTDESK_ESCALATION_LIMITS = {
        "per_thread": "5/3600",
        "per_customer": "1/3600",
        "per_queue": "off",
    }
    first, second = same_customer_threads(2)
    escalate(first)
    escalate(second)
    assert Escalation.objects.get(thread=second).throttled
    thread_bucket = limits.buckets_for(second)[0]
    assert thread_bucket.name == "per_thread"
    # The refused escalation took nothing from the thread's own bucket.
    assert not RateBucket.objects.filter(key=thread_bucket.key).exists()


@pytest.mark.django_db
def test_it_allows_escalations_when_redis_is_down(settings: Any) -> None:
    settings.SUPPORTDESK_ESCALATION_LIMITS = {
        "per_thread": "1/3600",
        "per_customer": "off",
        "per_queue": "off",
    }
    settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND = "redis"
    settings.SUPPORTDESK_ESCALATION_LIMITS_REDIS_URL = "redis://127.0.0.1:9/0"
    thread, _ = make_thread()
    escalation, created = escalate(thread)
    escalation.refresh_from_db()
    assert created and escalation.throttled is False


@pytest.mark.django_db
def test_it_still_hands_off_beyond_the_escalation_limit(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], settings: Any, agent: Any
) -> None:
    settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND = "db"
    settings.SUPPORTDESK_ESCALATION_LIMITS = {
        "per_thread": "1/3600",
        "per_customer": "off",
        "per_queue": "off",
    }
    thread, _ = thread_and_token
    escalate_and_resolve(thread, agent)
    response = customer_client.post(f"/api/v1/threads/{thread.pk}/handoff/", {}, format="json")
    assert response.status_code == 202
    assert response.json()["responder"] == "human"
    latest = Escalation.objects.filter(thread=thread).order_by("-created_at").first()
    assert latest is not None
    assert (latest.source, latest.status, latest.throttled) == ("customer_request", "open", True)


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_the_capacity_through_under_concurrent_escalations(
    backend: str, settings: Any
) -> None:
    set_limit(settings, "per_queue", "5/3600")
    threads = [make_thread()[0] for _ in range(12)]

    def open_one(index: int) -> bool:
        thread = Thread.objects.select_related("customer").get(pk=threads[index].pk)
        escalation, _ = escalate(thread)
        return Escalation.objects.get(pk=escalation.pk).throttled

    results = run_concurrently(len(threads), open_one)
    assert all(isinstance(r, bool) for r in results), results
    assert results.count(False) == 5
    assert Escalation.objects.count() == 12
    assert Escalation.objects.filter(throttled=False).count() == 5


@pytest.mark.django_db
def test_it_keeps_an_escalation_loop_from_becoming_a_storm_of_notifications(
    backend: str, settings: Any
) -> None:
    from tests.escalations.ops_helpers import make_agent, make_queue

    set_limit(settings, "per_thread", "3/3600")
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook")
    agent = make_agent("ana")
    make_queue(agents=[agent])
    thread, _ = make_thread()
    # The AI escalates, the human hands back, the AI escalates again: twenty times.
    for _ in range(20):
        escalation = escalate_and_resolve(thread, agent)
        assert escalation.claimed_by == agent  # every one reached a person
    escalations = Escalation.objects.filter(thread=thread)
    assert escalations.count() == 20  # none dropped
    assert escalations.filter(throttled=True).count() == 17
    # Opened (email + webhook) and assigned (email + webhook) for the first three only.
    sent = OutboxMessage.objects.values_list("event", flat=True)
    assert sorted(sent) == ["escalation.assigned"] * 6 + ["escalation.opened"] * 6
