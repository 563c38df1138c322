"""``manage.py queue_stats``: one line per queue — waiting, claimed, breached, online
agents and the age of the oldest waiting escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand

from escalations.routing import queue_stats

COLUMNS = ("queue", "auto", "strategy", "open", "claimed", "breached", "online", "oldest waiting")


def age(delta: timedelta | None) -> str:
    """``3d 4h``, ``2h 05m``, ``7m 30s``, ``12s``; ``-`` for nothing waiting."""
    if delta is None:
        return "-"
    seconds = max(int(delta.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


class Command(BaseCommand):
    help = "Show open, claimed and breached escalations, online agents and waiting time per queue."

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [
            (
                stats.name,
                "on" if stats.auto_assign else "off",
                stats.strategy.replace("_", " "),
                str(stats.open),
                str(stats.claimed),
                str(stats.breached),
                f"{stats.online_agents}/{stats.agents}",
                age(stats.oldest_waiting),
            )
            for stats in queue_stats()
        ]
        if not rows:
            self.stdout.write("No queues.")
            return
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
        numeric = {3, 4, 5, 6}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                cell.rjust(width) if i in numeric else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        self.stdout.write(line(COLUMNS))
        self.stdout.write(line(tuple("-" * w for w in widths)))
        for row in rows:
            self.stdout.write(line(row))
