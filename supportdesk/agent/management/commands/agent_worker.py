"""``manage.py agent_worker``: run AI turns in production (one process per command).

The django-tasks-db worker loop executes queued tasks; beside it a sweeper thread
re-queues turns whose worker died (expired lease) and records this worker's heartbeat.
Run several for more throughput; on PostgreSQL they claim tasks with SKIP LOCKED.
A database outage does not end the process: it waits and polls again (a turn that was
running comes back through its expired lease).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django_tasks_db.management.commands.db_worker import Worker

from supportdesk.agent.worker import sweep_forever

logger = logging.getLogger(__name__)

# Seconds between attempts while the database is unreachable (doubling up to the cap).
RECONNECT_DELAY = 0.5
RECONNECT_DELAY_CAP = 5.0


class Command(BaseCommand):
    help = "Run the AI worker: executes queued turns and sweeps expired leases."

    def add_arguments(self, parser: CommandParser) -> None:
        from django.conf import settings

        parser.add_argument(
            "--interval",
            type=float,
            default=settings.SUPPORTDESK_WORKER_POLL_SECONDS,
            help="seconds between polls when the queue is empty",
        )
        parser.add_argument("--sweep-every", type=float, default=5.0, help="seconds between sweeps")
        parser.add_argument(
            "--max-tasks", type=int, default=None, help="exit after this many tasks"
        )
        parser.add_argument("--worker-id", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        worker_id = options["worker_id"] or f"{socket.gethostname()[:30]}-{os.getpid()}"
        stop = threading.Event()
        sweeper = threading.Thread(
            target=sweep_forever,
            kwargs={"worker_id": worker_id, "every": options["sweep_every"], "stop": stop},
            name="turn-sweeper",
            daemon=True,
        )
        sweeper.start()
        self.stdout.write(f"agent worker {worker_id} polling every {options['interval']}s")
        worker = Worker(
            queue_names=["default"],
            interval=options["interval"],
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=options["max_tasks"],
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        worker.configure_signals()
        try:
            self.run_through_outages(worker)
        finally:
            stop.set()
            close_old_connections()
            connection.close()

    def run_through_outages(self, worker: Worker) -> None:
        """Run the task loop; when the database goes away, wait and run it again.

        django-tasks-db's loop re-raises every error but a locked SQLite database, so a
        restarted PostgreSQL would otherwise end the worker for good.
        """
        delay = RECONNECT_DELAY
        while True:
            started = time.monotonic()
            try:
                worker.run()
                return
            except (OperationalError, InterfaceError) as exc:
                if not worker.running:
                    return
                if time.monotonic() - started > 60:
                    delay = RECONNECT_DELAY  # it worked for a while: a new outage
                logger.warning("agent worker: database unavailable (%s); retrying", exc)
                worker.running_task = False
                with contextlib.suppress(DatabaseError):
                    connection.close()
                time.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY_CAP)
