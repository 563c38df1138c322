"""Presence: an agent without a heartbeat for 60 s is offline, for the assigner and the desk."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from escalations import routing, services
from escalations.models import AgentPresence
from tests.conftest import EventLog
from tests.escalations.ops_helpers import escalate, make_agent, make_queue

pytestmark = pytest.mark.django_db


def _silent_for(agent: Any, seconds: float) -> None:
    AgentPresence.objects.filter(user=agent).update(
        last_seen_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_it_defaults_the_presence_timeout_to_60_seconds() -> None:
    assert services.presence_timeout() == 60


@pytest.mark.parametrize(("silent", "status"), [(55, "online"), (65, "offline")])
def test_it_takes_an_agent_offline_after_60_seconds_without_a_heartbeat(
    silent: int, status: str
) -> None:
    agent = make_agent("ana")
    services.presence_connect(user=agent)
    _silent_for(agent, silent)
    services.presence_expire_stale()
    assert AgentPresence.objects.get(user=agent).status == status


@pytest.mark.parametrize(("silent", "claimed"), [(55, True), (65, False)])
def test_it_passes_over_an_agent_silent_for_60_seconds(silent: int, claimed: bool) -> None:
    agent = make_agent("ana")
    make_queue(agents=[agent])
    _silent_for(agent, silent)
    escalation = escalate()
    assert (escalation.claimed_by_id == agent.pk) is claimed


def test_it_follows_the_presence_timeout_setting(settings: Any) -> None:
    settings.SUPPORTDESK_PRESENCE_TIMEOUT_SECONDS = 120
    agent = make_agent("ana")
    make_queue(agents=[agent])
    _silent_for(agent, 90)
    assert services.presence_expire_stale() == 0
    assert routing.eligible_profiles(timezone.now()).filter(user=agent).exists()


def test_it_marks_silent_agents_offline_in_the_worker_sweep(
    event_log: EventLog, django_capture_on_commit_callbacks: Any
) -> None:
    from supportdesk.agent.worker import sweep_once

    agent = make_agent("ana")
    services.presence_connect(user=agent)
    _silent_for(agent, 61)
    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep_once("test-worker")
    assert counts["presence_expired"] == 1
    row = AgentPresence.objects.get(user=agent)
    assert (row.status, row.connections) == ("offline", 0)
    updates = [e.payload for e in event_log.events if e.type == "presence.updated"]
    assert updates[-1] == {"user_id": agent.pk, "status": "offline"}
