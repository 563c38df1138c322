"""``manage.py sweep_turns``: re-queue turns whose worker died, once (for cron or ops)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from supportdesk.agent.runner import turn_sweep


class Command(BaseCommand):
    help = "Re-queue AI turns with expired leases; escalate those out of attempts."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = turn_sweep()
        self.stdout.write(f"requeued {counts['requeued']}, escalated {counts['escalated']}")
