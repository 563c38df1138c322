"""Start-up wiring: the AI answers customer messages through a hook that ``threads``
calls inside the message's transaction (threads never imports the agent)."""

from __future__ import annotations

from typing import Any

from django.db.models import Case, IntegerField, Value, When


def escalation_topic(thread: Any, turn_id: Any) -> str:
    """``escalation_services.topic_resolver``: the topic the router gave the escalating
    turn, else the newest topic of the thread's turns (a customer who asks for a person
    is still asking about what they wrote before); "" when no turn had one. One query."""
    from supportdesk.agent.models import AgentTurn

    turns = AgentTurn.objects.filter(thread_id=thread.pk).exclude(topic="")
    if turn_id is not None:
        turns = turns.annotate(
            other=Case(
                When(pk=turn_id, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        ).order_by("other", "-created_at")
    else:
        turns = turns.order_by("-created_at")
    return turns.values_list("topic", flat=True).first() or ""


def install() -> None:
    from approvals import services as approval_services
    from escalations import services as escalation_services
    from supportdesk.agent.runner import (
        turn_create_for_message,
        turn_create_regeneration,
        turn_resume_after_human,
    )
    from threads import services

    registrations: list[tuple[list[Any], Any]] = [
        (services.customer_message_hooks, turn_create_for_message),
        (approval_services.regenerate_hooks, turn_create_regeneration),
        (escalation_services.human_request_resolved_hooks, turn_resume_after_human),
    ]
    for hooks, hook in registrations:
        if hook not in hooks:
            hooks.append(hook)
    escalation_services.topic_resolver = escalation_topic
