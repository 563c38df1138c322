"""Start-up wiring of the human-operations features into the escalation services' hooks.

Order matters inside ``opened_hooks``: the throttle note and the summary are written
before the notification that carries them.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where the SLA code may define its hook lists (``sla_warning_hooks``, ``sla_breach_hooks``).
SLA_MODULES = ("escalations.sla", "escalations.routing", "escalations.services")


def install() -> None:
    """Register the limits note, the summary and the notifications (idempotent)."""
    from escalations import limits, notifications, services, summaries
    from threads import events

    registrations: list[tuple[list[Any], Any]] = [
        (services.opened_hooks, limits.note_throttled),
        (services.opened_hooks, summaries.summarize_on_open),
        (services.opened_hooks, notifications.notify_opened),
        (services.claimed_hooks, notifications.notify_assigned),
    ]
    for hooks, hook in registrations:
        if hook not in hooks:
            hooks.append(hook)
    payload_types = getattr(events, "PAYLOAD_TYPES", None)
    if isinstance(payload_types, dict):
        payload_types.setdefault("notification", notifications.NotificationPayload)
    install_sla_hooks()


def install_sla_hooks() -> None:
    """Consume the SLA code's warning and breach hooks wherever it defines them.

    The SLA code may also call ``notifications.register_sla_hooks`` itself; both are
    idempotent.
    """
    from escalations import notifications

    for name in SLA_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        warning = getattr(module, "sla_warning_hooks", None)
        breach = getattr(module, "sla_breach_hooks", None)
        notifications.register_sla_hooks(
            warning_hooks=warning if isinstance(warning, list) else None,
            breach_hooks=breach if isinstance(breach, list) else None,
        )
