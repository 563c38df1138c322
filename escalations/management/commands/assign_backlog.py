"""``manage.py assign_backlog``: hand every queue's waiting escalations to online agents
with room. Assignment is event-driven; this is the catch-all after an outage (an
on-commit trigger lost to a crash) or a bulk import."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from escalations.models import Queue
from escalations.routing import assign_backlog


class Command(BaseCommand):
    help = "Auto-assign the waiting escalations of queues with auto-assignment on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", action="append", help="only this queue (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        queue_ids = None
        if options["queue"]:
            names = options["queue"]
            queues = dict(Queue.objects.filter(name__in=names).values_list("name", "pk"))
            unknown = sorted(set(names) - set(queues))
            if unknown:
                raise CommandError(f"Unknown queue(s): {', '.join(unknown)}")
            queue_ids = list(queues.values())
        assigned = assign_backlog(queue_ids=queue_ids)
        skipped = Queue.objects.filter(auto_assign=False)
        if queue_ids is not None:
            skipped = skipped.filter(pk__in=queue_ids)
        for name, count in assigned.items():
            self.stdout.write(f"{name}: assigned {count}")
        for name in skipped.values_list("name", flat=True):
            self.stdout.write(f"{name}: skipped (auto-assignment off)")
        self.stdout.write(f"assigned {sum(assigned.values())} escalation(s)")
