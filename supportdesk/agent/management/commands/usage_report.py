"""``manage.py usage_report``: the usage roll-up of ``GET /api/v1/desk/usage/`` as CSV or a table.

manage.py usage_report --since 2025-01-01 --until 2025-01-31 --group-by thread --format csv
"""

from __future__ import annotations

import csv
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from supportdesk.agent.selectors import GROUPS, USAGE_FIELDS, WindowError, usage_rows, usage_window


class Command(BaseCommand):
    help = "Print LLM usage and human labour (handle time, replies, edited drafts) per group."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="ISO date or date-time (default: 30 days ago)")
        parser.add_argument("--until", help="ISO date or date-time (default: now)")
        parser.add_argument("--group-by", choices=GROUPS, default="day")
        parser.add_argument("--format", choices=("csv", "table"), default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since, until = usage_window(options["since"], options["until"])
        except WindowError as exc:
            raise CommandError(f"--{exc.field}: {exc}") from None
        rows = usage_rows(since=since, until=until, group_by=options["group_by"])
        if options["format"] == "csv":
            self.write_csv(rows)
        else:
            self.write_table(rows)

    def write_csv(self, rows: list[dict[str, Any]]) -> None:
        writer = csv.DictWriter(self.stdout, fieldnames=USAGE_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({name: "" if row[name] is None else row[name] for name in USAGE_FIELDS})

    def write_table(self, rows: list[dict[str, Any]]) -> None:
        cells = [list(USAGE_FIELDS)] + [
            ["-" if row[name] is None else str(row[name]) for name in USAGE_FIELDS] for row in rows
        ]
        widths = [max(len(line[i]) for line in cells) for i in range(len(USAGE_FIELDS))]
        for index, line in enumerate(cells):
            self.stdout.write(
                "  ".join(
                    cell.ljust(width) if i == 0 else cell.rjust(width)
                    for i, (cell, width) in enumerate(zip(line, widths, strict=True))
                )
            )
            if index == 0:
                self.stdout.write("  ".join("-" * width for width in widths))
        if not rows:
            self.stdout.write("(no usage in this period)")
