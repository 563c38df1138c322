from __future__ import annotations

from django.apps import AppConfig


class EscalationsConfig(AppConfig):
    name = "escalations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from escalations import realtime, selectors

        selectors.install_thread_hooks()
        realtime.register()
        from escalations import routing

        # Queues, auto-assignment and SLA clocks (escalations/routing.py, sla.py).
        routing.install()
        from escalations import operations

        # Rate-limit notes, handoff summaries and notifications (escalations/operations.py);
        # after routing, so a notification carries the queue's priority and SLA due time.
        operations.install()
