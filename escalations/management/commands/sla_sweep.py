"""``manage.py sla_sweep``: warn about and record SLA breaches once (cron or ops).

The worker's sweeper already runs it beside every worker; this is the same unit of work.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from escalations.sla import sla_sweep


class Command(BaseCommand):
    help = "Send SLA warnings (80 % of a target) and record breaches of escalations due now."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = sla_sweep()
        self.stdout.write(
            f"warned {counts['warned']}, breached {counts['breached']}, met {counts['met']}"
        )
