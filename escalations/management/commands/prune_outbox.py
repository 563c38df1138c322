"""``manage.py prune_outbox``: delete sent notifications past their retention.

The worker's sweeper (and ``deliver_webhooks --loop``) already prunes every round; the
command is for cron, or to prune with another retention once (``--days``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escalations.notifications import outbox_prune


class Command(BaseCommand):
    help = "Delete sent webhook and email notifications older than the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="keep sent rows this many days (default SUPPORTDESK_OUTBOX_RETENTION_DAYS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is not None and days <= 0:
            raise CommandError("--days must be more than 0.")
        if days is None:
            days = settings.SUPPORTDESK_OUTBOX_RETENTION_DAYS
            if not days:
                self.stdout.write("retention is off (SUPPORTDESK_OUTBOX_RETENTION_DAYS=0)")
                return
        pruned = outbox_prune(days=days)
        self.stdout.write(f"pruned {pruned} sent notification(s) older than {days:g} day(s)")
