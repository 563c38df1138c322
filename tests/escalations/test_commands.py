"""The operators' commands: sla_sweep, assign_backlog, queue_stats."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from escalations import services
from escalations.management.commands.queue_stats import age
from escalations.models import AgentPresence, Escalation, RoutingRule, SLABreach
from tests.escalations.ops_helpers import (
    escalate,
    held_by,
    make_agent,
    make_policy,
    make_queue,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_sweeps_sla_breaches_from_the_command() -> None:
    make_queue(policy=make_policy(first=60))
    escalation = escalate()
    past = escalation.created_at - timedelta(minutes=1)
    Escalation.objects.filter(pk=escalation.pk).update(sla_check_at=past, sla_due_at=past)
    assert run("sla_sweep") == "warned 0, breached 1, met 0\n"
    assert SLABreach.objects.filter(escalation=escalation).count() == 1
    assert run("sla_sweep") == "warned 0, breached 0, met 0\n"


def test_it_assigns_the_backlog_from_the_command() -> None:
    agent = make_agent("ana", capacity=2, online=False)
    make_queue("General", agents=[agent])
    manual = make_queue("Manual", agents=[agent], is_default=False, auto_assign=False)
    RoutingRule.objects.create(queue=manual, keywords="manual")
    for _ in range(3):
        escalate()
    escalate(reason="manual")
    # Online without its on-commit trigger (as after a crash): only the command assigns.
    AgentPresence.objects.create(user=agent, status="online", last_seen_at=timezone.now())
    output = run("assign_backlog")
    assert output.splitlines() == [
        "General: assigned 2",
        "Manual: skipped (auto-assignment off)",
        "assigned 2 escalation(s)",
    ]
    assert held_by(agent) == 2


def test_it_creates_missing_agent_profiles_before_assigning_the_backlog() -> None:
    from escalations.models import AgentProfile, QueueMember

    agent = UserFactory(username="ana")
    queue = make_queue("General")
    QueueMember.objects.create(queue=queue, user=agent)  # as a bulk import would
    escalate()
    services.presence_set(user=agent, status="online")
    AgentProfile.objects.filter(user=agent).delete()
    assert "General: assigned 1" in run("assign_backlog", "--queue", "General")
    assert held_by(agent) == 1


def test_it_refuses_an_unknown_queue_name() -> None:
    with pytest.raises(CommandError, match="Unknown queue"):
        run("assign_backlog", "--queue", "Nope")


def test_it_prints_a_table_of_queue_stats(settings: Any) -> None:
    ana = make_agent("ana", capacity=1)
    bo = make_agent("bo", online=False)
    make_queue("General", agents=[ana, bo], policy=make_policy(first=60))
    make_queue("Billing", is_default=False, strategy="least_loaded", auto_assign=False)
    claimed = escalate()
    services.escalation_claim(escalation=claimed, user=ana)
    waiting = [escalate(), escalate()]
    Escalation.objects.filter(pk=waiting[0].pk).update(
        created_at=waiting[0].created_at - timedelta(hours=2, minutes=5)
    )
    Escalation.objects.filter(pk=claimed.pk).update(sla_breached_at=claimed.created_at)
    escalate(thread=None)  # a third waiting one
    lines = run("queue_stats").splitlines()
    assert lines[0].split() == [
        "queue",
        "auto",
        "strategy",
        "open",
        "claimed",
        "breached",
        "online",
        "oldest",
        "waiting",
    ]
    assert set(lines[1]) <= {"-", " "}
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["Billing"] == ["Billing", "off", "least", "loaded", "0", "0", "0", "0/0", "-"]
    assert rows["General"][:9] == ["General", "on", "round", "robin", "3", "1", "1", "1/2", "2h"]
    assert rows["General"][9] == "05m"


def test_it_shows_escalations_without_a_queue() -> None:
    escalate()
    make_queue("General", is_default=False)
    lines = run("queue_stats").splitlines()
    assert lines[-1].split()[:6] == ["(no", "queue)", "off", "-", "1", "0"]


def test_it_says_so_when_there_are_no_queues() -> None:
    assert run("queue_stats") == "No queues.\n"


def test_it_formats_waiting_ages() -> None:
    assert [
        age(None),
        age(timedelta(seconds=12)),
        age(timedelta(minutes=7, seconds=30)),
        age(timedelta(hours=2, minutes=5)),
        age(timedelta(days=3, hours=4)),
    ] == ["-", "12s", "7m 30s", "2h 05m", "3d 4h"]
