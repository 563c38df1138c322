"""Routing escalations by the customer's tier and the topic of their messages."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from escalations import routing, services
from escalations.models import Escalation, RoutingRule
from tests.escalations.ops_helpers import escalate, make_queue
from tests.factories import UserFactory, make_thread
from threads import services as thread_services
from threads.models import Thread

pytestmark = pytest.mark.django_db


def thread_of_tier(tier: str, external_id: str = "") -> Thread:
    """A thread of a verified customer of ``tier`` (as a signed identity makes one)."""
    thread, _ = thread_services.thread_create(
        customer_external_id=external_id or f"{tier}-customer",
        customer_verified=True,
        customer_tier=tier,
    )
    return thread


def test_it_routes_by_the_customer_tier() -> None:
    make_queue("General")
    vip = make_queue("VIP", is_default=False)
    RoutingRule.objects.create(queue=vip, tier="vip")
    assert escalate(thread_of_tier("vip")).queue == vip
    assert escalate(thread_of_tier("standard")).queue.name == "General"
    assert escalate().queue.name == "General"  # an unverified customer is standard


def test_it_routes_by_a_tier_staff_set() -> None:
    make_queue("General")
    vip = make_queue("VIP", is_default=False)
    RoutingRule.objects.create(queue=vip, tier="vip")
    thread, _ = make_thread()
    thread_services.customer_set_tier(customer=thread.customer, tier="vip")
    fresh = Thread.objects.select_related("customer").get(pk=thread.pk)
    assert escalate(fresh).queue == vip


def test_it_routes_by_the_topic() -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, topic="billing")
    assert escalate(topic="billing").queue == billing
    assert escalate(topic="shipping").queue.name == "General"
    assert escalate(topic="").queue.name == "General"


def test_it_stores_the_topic_on_the_escalation() -> None:
    assert escalate(topic="returns").topic == "returns"
    assert escalate().topic == ""


def test_it_needs_the_tier_and_the_topic_when_a_rule_sets_both() -> None:
    make_queue("General")
    vip_billing = make_queue("VIP billing", is_default=False)
    RoutingRule.objects.create(queue=vip_billing, tier="vip", topic="billing")
    assert escalate(thread_of_tier("vip", "a"), topic="billing").queue == vip_billing
    assert escalate(thread_of_tier("vip", "b"), topic="shipping").queue.name == "General"
    assert escalate(thread_of_tier("standard"), topic="billing").queue.name == "General"


def test_it_tries_tier_and_topic_rules_by_position() -> None:
    make_queue("General")
    vip = make_queue("VIP", is_default=False)
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=vip, position=1, tier="vip")
    RoutingRule.objects.create(queue=billing, position=2, topic="billing")
    assert escalate(thread_of_tier("vip"), topic="billing").queue == vip
    assert escalate(thread_of_tier("standard"), topic="billing").queue == billing


def test_it_combines_a_topic_with_the_other_conditions() -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, topic="billing", source="customer_request")
    assert escalate(source="tool", topic="billing").queue.name == "General"
    assert escalate(source="customer_request", topic="billing").queue == billing


def test_it_reads_the_tier_only_when_a_rule_asks_for_it() -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, topic="billing")
    thread, _ = make_thread()
    bare = Thread.objects.get(pk=thread.pk)  # its customer not loaded
    with CaptureQueriesContext(connection) as ctx:
        assert routing.queue_for(bare, "tool", "help", "shipping") is not None
    assert not any('"threads_customer"' in query["sql"] for query in ctx.captured_queries)
    RoutingRule.objects.create(queue=billing, tier="vip", position=1)
    with CaptureQueriesContext(connection) as ctx:
        assert routing.queue_for(bare, "tool", "help", "shipping").name == "General"
    assert any('"threads_customer"' in query["sql"] for query in ctx.captured_queries)


def test_it_keeps_the_topic_of_an_escalation_a_merge_joins() -> None:
    thread, _ = make_thread()
    first = escalate(thread, topic="billing")
    again, created = services.escalation_open(
        thread=thread, source="customer_request", reason="again", topic="shipping"
    )
    assert (created, again.pk) == (False, first.pk)
    assert Escalation.objects.get(pk=first.pk).topic == "billing"


def test_it_shows_and_filters_the_topic_in_the_escalation_api(staff_client: APIClient) -> None:
    billing = escalate(topic="billing")
    escalate(topic="shipping")
    body = staff_client.get("/api/v1/desk/escalations/", {"topic": "billing"}).json()
    assert [(e["id"], e["topic"]) for e in body["results"]] == [(str(billing.pk), "billing")]


# --- admin ---------------------------------------------------------------------------


def _admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="boss", is_superuser=True))
    return client


def test_it_offers_the_configured_tiers_and_topics_in_the_rule_form(settings: Any) -> None:
    settings.SUPPORTDESK_CUSTOMER_TIERS = ["free", "enterprise"]
    settings.SUPPORTDESK_TOPICS = ["billing", "bugs"]
    response = _admin_client().get(reverse("admin:escalations_routingrule_add"))
    form = response.context["adminform"].form
    assert [value for value, _ in form.fields["tier"].choices] == ["", "free", "enterprise"]
    assert [value for value, _ in form.fields["topic"].choices] == ["", "billing", "bugs"]


def test_it_saves_a_rule_with_a_tier_and_a_topic_in_the_admin() -> None:
    queue = make_queue("VIP billing", is_default=False)
    response = _admin_client().post(
        reverse("admin:escalations_routingrule_add"),
        {
            "queue": queue.pk,
            "position": 3,
            "priority": "",
            "source": "",
            "keywords": "",
            "tier": "vip",
            "topic": "billing",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    rule = RoutingRule.objects.get(queue=queue)
    assert (rule.tier, rule.topic, rule.position) == ("vip", "billing", 3)
    assert str(rule) == "tier=vip & topic=billing → VIP billing"


def test_it_refuses_a_tier_that_is_not_configured_in_the_rule_form() -> None:
    queue = make_queue("VIP", is_default=False)
    response = _admin_client().post(
        reverse("admin:escalations_routingrule_add"),
        {"queue": queue.pk, "position": 0, "tier": "platinum", "is_active": "on"},
    )
    assert response.status_code == 200
    assert "tier" in response.context["adminform"].form.errors
    assert not RoutingRule.objects.exists()


def test_it_keeps_a_rule_whose_topic_is_no_longer_configured_editable(settings: Any) -> None:
    queue = make_queue("Legacy", is_default=False)
    rule = RoutingRule.objects.create(queue=queue, topic="fax")
    response = _admin_client().get(reverse("admin:escalations_routingrule_change", args=[rule.pk]))
    choices = dict(response.context["adminform"].form.fields["topic"].choices)
    assert choices["fax"] == "fax (not configured)"


def test_it_shows_tier_and_topic_in_the_queue_inline() -> None:
    queue = make_queue("VIP", is_default=False)
    RoutingRule.objects.create(queue=queue, tier="vip", topic="billing")
    response = _admin_client().get(reverse("admin:escalations_queue_change", args=[queue.pk]))
    inline = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.model is RoutingRule
    )
    form = inline.formset.forms[0]
    assert (form["tier"].value(), form["topic"].value()) == ("vip", "billing")
