"""Start-up wiring: the AI answers customer messages through a hook that ``threads``
calls inside the message's transaction (threads never imports the agent)."""

from __future__ import annotations

from typing import Any


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
