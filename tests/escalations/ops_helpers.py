"""Builders for the queue, assignment and SLA tests (through the services, as in use)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from escalations import routing, services
from escalations.models import (
    AssignStrategy,
    Escalation,
    Queue,
    QueueRole,
    SLAPolicy,
    SLATarget,
)
from tests.factories import UserFactory, make_thread
from threads.models import Thread


def make_agent(username: str, *, online: bool = True, capacity: int | None = None) -> Any:
    user = UserFactory(username=username)
    if capacity is not None:
        routing.agent_profile_set_capacity(user=user, max_open=capacity)
    if online:
        services.presence_set(user=user, status="online")
    return user


def make_queue(
    name: str = "Support",
    *,
    agents: Sequence[Any] = (),
    strategy: str = AssignStrategy.ROUND_ROBIN,
    auto_assign: bool = True,
    is_default: bool = True,
    policy: SLAPolicy | None = None,
    **fields: Any,
) -> Queue:
    queue = Queue.objects.create(
        name=name,
        strategy=strategy,
        auto_assign=auto_assign,
        is_default=is_default,
        sla_policy=policy,
        **fields,
    )
    for agent in agents:
        routing.queue_member_add(queue=queue, user=agent, role=QueueRole.AGENT)
    return queue


def make_policy(
    name: str = "Standard",
    *,
    first: int | None = 3600,
    next: int | None = 1800,
    priorities: tuple[str, ...] = ("low", "normal", "high", "urgent"),
    **fields: Any,
) -> SLAPolicy:
    policy = SLAPolicy.objects.create(name=name, **fields)
    for priority in priorities:
        SLATarget.objects.create(
            policy=policy,
            priority=priority,
            first_response_seconds=first,
            next_response_seconds=next,
        )
    return policy


def escalate(
    thread: Thread | None = None,
    *,
    source: str = "tool",
    reason: str = "needs a person",
    **kwargs: Any,
) -> Escalation:
    if thread is None:
        thread, _ = make_thread()
    escalation, _ = services.escalation_open(thread=thread, source=source, reason=reason, **kwargs)
    escalation.refresh_from_db()
    return escalation


def held_by(user: Any) -> int:
    return Escalation.objects.filter(status="claimed", claimed_by=user).count()
