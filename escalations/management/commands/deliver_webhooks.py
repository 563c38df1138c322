"""``manage.py deliver_webhooks``: send due notifications (webhooks and emails) from the outbox.

The worker's sweeper already does this; the command is for cron or for running a
dedicated sender (``--loop``, which also prunes sent rows past
``SUPPORTDESK_OUTBOX_RETENTION_DAYS`` as the sweeper does). Safe beside other senders:
rows are claimed one by one.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from escalations.notifications import deliver_due, outbox_prune


class Command(BaseCommand):
    help = "Deliver due webhook and email notifications from the outbox."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep delivering until stopped")
        parser.add_argument("--every", type=float, default=2.0, help="seconds between rounds")
        parser.add_argument("--limit", type=int, default=100, help="rows per round")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["loop"]:
            self.stdout.write(self.format(self.deliver_once(options["limit"])))
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set():
            close_old_connections()
            counts = self.deliver_once(options["limit"])
            if any(counts.values()):
                self.stdout.write(self.format(counts))
            pruned = outbox_prune()
            if pruned:
                self.stdout.write(f"pruned {pruned} sent notification(s)")
            stop.wait(options["every"])

    def deliver_once(self, limit: int) -> dict[str, int]:
        return deliver_due(limit=limit)

    @staticmethod
    def format(counts: dict[str, int]) -> str:
        return (
            f"sent {counts['outbox_sent']}, retrying {counts['outbox_retrying']}, "
            f"failed {counts['outbox_failed']}"
        )
