"""Routing escalations into queues, and the supervisor's auto-assign switch."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from escalations import routing, services
from escalations.models import Escalation, Queue, RoutingRule
from tests.escalations.ops_helpers import escalate, held_by, make_agent, make_queue
from tests.factories import UserFactory, make_thread
from threads.services import thread_update

pytestmark = pytest.mark.django_db


def test_it_routes_by_a_keyword_in_the_reason() -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, keywords="refund, Chargeback")
    escalation = escalate(reason="Customer wants a CHARGEBACK on order 12")
    assert escalation.queue == billing


def test_it_routes_by_the_thread_priority() -> None:
    make_queue("General")
    vip = make_queue("Urgent desk", is_default=False)
    RoutingRule.objects.create(queue=vip, priority="urgent")
    thread, _ = make_thread()
    thread_update(thread=thread, priority="urgent")
    assert escalate(thread).queue == vip
    assert escalate().queue.name == "General"


def test_it_routes_by_the_escalation_source() -> None:
    make_queue("General")
    failures = make_queue("AI failures", is_default=False)
    RoutingRule.objects.create(queue=failures, source="ai_failure")
    assert escalate(source="ai_failure").queue == failures
    assert escalate(source="customer_request").queue.name == "General"


def test_it_needs_every_condition_of_a_rule_to_match() -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, source="customer_request", keywords="refund")
    assert escalate(source="tool", reason="refund please").queue.name == "General"
    assert escalate(source="customer_request", reason="refund please").queue == billing


def test_it_tries_rules_by_position() -> None:
    first = make_queue("First", is_default=False)
    second = make_queue("Second", is_default=False)
    RoutingRule.objects.create(queue=second, position=2, keywords="refund")
    RoutingRule.objects.create(queue=first, position=1, keywords="refund")
    assert escalate(reason="refund").queue == first


def test_it_skips_inactive_rules() -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, keywords="refund", is_active=False)
    assert escalate(reason="refund").queue.name == "General"


def test_it_uses_the_default_queue_when_no_rule_matches() -> None:
    general = make_queue("General")
    RoutingRule.objects.create(queue=make_queue("Billing", is_default=False), keywords="refund")
    assert escalate(reason="my parcel is late").queue == general


def test_it_leaves_an_escalation_unqueued_without_rules_or_default_queue() -> None:
    escalation = escalate()
    assert escalation.queue is None
    assert escalation.status == "open"


def test_it_raises_the_priority_to_the_queue_floor() -> None:
    make_queue("VIP", default_priority="high")
    escalation = escalate()
    assert escalation.priority == "high"


def test_it_keeps_a_priority_above_the_queue_floor() -> None:
    make_queue("General", default_priority="low")
    thread, _ = make_thread()
    thread_update(thread=thread, priority="urgent")
    assert escalate(thread).priority == "urgent"


def test_it_shows_the_queue_in_the_escalation_api(staff_client: APIClient) -> None:
    queue = make_queue("General")
    escalation = escalate()
    body = staff_client.get("/api/v1/desk/escalations/").json()
    assert body["results"][0]["id"] == str(escalation.pk)
    assert body["results"][0]["queue"] == {"id": queue.pk, "name": "General"}


def test_it_lists_queued_escalations_in_a_constant_number_of_queries(
    staff_client: APIClient,
) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get("/api/v1/desk/escalations/").status_code == 200
        return len(ctx.captured_queries)

    make_queue("General")
    for _ in range(2):
        escalate()
    few = count()
    for name in ("A", "B", "C"):
        make_queue(name, is_default=False)
        RoutingRule.objects.create(queue=Queue.objects.get(name=name), keywords=name.lower())
        escalate(reason=name.lower())
    assert count() == few


def test_it_assigns_nothing_while_auto_assign_is_off(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        agent = make_agent("ana")
        queue = make_queue("General", agents=[agent])
        routing.queue_set_auto_assign(queue=queue, enabled=False)
        escalation = escalate()
        routing.assign_agent(agent.pk)
    escalation.refresh_from_db()
    assert (escalation.status, escalation.claimed_by) == ("open", None)
    assert routing.assign_backlog() == {}


def test_it_hands_out_the_backlog_when_auto_assign_is_turned_back_on(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        agent = make_agent("ana")
        queue = make_queue("General", agents=[agent], auto_assign=False)
        escalation = escalate()
    escalation.refresh_from_db()
    assert escalation.status == "open"
    with django_capture_on_commit_callbacks(execute=True):
        routing.queue_set_auto_assign(queue=queue, enabled=True)
    escalation.refresh_from_db()
    queue.refresh_from_db()
    assert queue.auto_assign is True
    assert (escalation.status, escalation.claimed_by) == ("claimed", agent)


def test_it_keeps_other_queues_assigning_when_one_is_off(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        agent = make_agent("ana")
        make_queue("General", agents=[agent], auto_assign=False)
        billing = make_queue("Billing", agents=[agent], is_default=False)
        RoutingRule.objects.create(queue=billing, keywords="refund")
        manual = escalate(reason="late parcel")
        automatic = escalate(reason="refund")
    manual.refresh_from_db()
    automatic.refresh_from_db()
    assert manual.status == "open"
    assert (automatic.status, automatic.claimed_by) == ("claimed", agent)
    assert held_by(agent) == 1


def test_it_lets_a_person_claim_from_a_manual_queue(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        agent = make_agent("ana")
        make_queue("General", agents=[agent], auto_assign=False)
        escalation = escalate()
        services.escalation_claim(escalation=escalation, user=agent)
    escalation.refresh_from_db()
    assert (escalation.status, escalation.claimed_by) == ("claimed", agent)


def test_it_stores_the_routed_queue_when_the_escalation_is_created() -> None:
    general = make_queue("General")
    failures = make_queue("Failures", is_default=False)
    RoutingRule.objects.create(queue=failures, source="ai_failure")
    thread, _ = make_thread()
    assert routing.queue_for(thread, "ai_failure", "the model timed out") == failures
    assert routing.queue_for(thread, "tool", "the model timed out") == general
    assert escalate(thread, source="ai_failure").queue == failures


def _admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="boss", is_superuser=True))
    return client


@pytest.mark.parametrize(
    "model", ["queue", "routingrule", "agentprofile", "slapolicy", "businesshours", "slabreach"]
)
def test_it_shows_the_operations_admin_changelists_in_constant_queries(model: str) -> None:
    from django.urls import reverse

    from escalations import sla

    client = _admin_client()
    url = reverse(f"admin:escalations_{model}_changelist")

    def count() -> int:
        assert client.get(url).status_code == 200
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    def add_rows(first: int, last: int) -> None:
        from tests.escalations.ops_helpers import make_policy

        for n in range(first, last):
            policy = make_policy(f"Policy {n}", first=1, next=1)
            queue = make_queue(f"Queue {n}", is_default=False, policy=policy)
            queue.members.add(make_agent(f"agent{n}", capacity=3))
            RoutingRule.objects.create(queue=queue, keywords=f"word{n}")
            from escalations.models import BusinessHours

            BusinessHours.objects.create(name=f"Hours {n}")
            escalation = escalate(reason=f"word{n}")
            Escalation.objects.filter(pk=escalation.pk).update(sla_check_at=escalation.sla_due_at)
        from datetime import timedelta

        from django.utils import timezone

        sla.sla_sweep(now=timezone.now() + timedelta(hours=1))

    add_rows(0, 2)
    few = count()
    add_rows(2, 6)
    assert count() == few


def _queue_action(client: Client, action: str, queue: Queue) -> Any:
    from django.urls import reverse

    return client.post(
        reverse("admin:escalations_queue_changelist"),
        {"action": action, "_selected_action": [str(queue.pk)]},
        follow=True,
    )


def test_it_lets_a_supervisor_turn_auto_assignment_off_in_the_admin(
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = _admin_client()
    with django_capture_on_commit_callbacks(execute=True):
        agent = make_agent("ana")
        queue = make_queue("General", agents=[agent])
        response = _queue_action(client, "turn_auto_assign_off", queue)
        waiting = escalate()
    queue.refresh_from_db()
    waiting.refresh_from_db()
    assert queue.auto_assign is False
    assert (waiting.status, waiting.claimed_by) == ("open", None)
    assert "Auto-assignment is off for 1 queue(s)." in [
        str(m) for m in response.context["messages"]
    ]
    with django_capture_on_commit_callbacks(execute=True):
        _queue_action(client, "turn_auto_assign_on", queue)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.claimed_by) == ("claimed", agent)


def test_it_hands_out_the_backlog_when_the_queue_form_turns_auto_assignment_on(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.urls import reverse

    client = _admin_client()
    with django_capture_on_commit_callbacks(execute=True):
        agent = make_agent("ana")
        queue = make_queue("General", agents=[agent], auto_assign=False)
        waiting = escalate()
    membership = queue.memberships.get()
    form = {
        "name": "General",
        "default_priority": "normal",
        "strategy": "round_robin",
        "is_default": "on",
        "auto_assign": "on",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": str(membership.pk),
        "memberships-0-queue": str(queue.pk),
        "memberships-0-user": str(agent.pk),
        "memberships-0-role": "agent",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:escalations_queue_change", args=[queue.pk]), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    waiting.refresh_from_db()
    assert (waiting.status, waiting.claimed_by) == ("claimed", agent)
