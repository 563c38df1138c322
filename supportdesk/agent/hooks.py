"""Start-up wiring: the AI answers customer messages through a hook that ``threads``
calls inside the message's transaction (threads never imports the agent)."""

from __future__ import annotations


def install() -> None:
    from supportdesk.agent.runner import turn_create_for_message
    from threads import services

    if turn_create_for_message not in services.customer_message_hooks:
        services.customer_message_hooks.append(turn_create_for_message)
