"""``manage.py agent_worker``: run AI turns in production (one process per command).

The django-tasks-db worker loop (``TurnWorker``, which claims a task in one statement on
PostgreSQL) executes queued tasks; beside it a sweeper thread re-queues turns whose
worker died (expired lease) and records this worker's heartbeat.
Run several for more throughput; on PostgreSQL they claim tasks with SKIP LOCKED.
A database outage does not end the process: it waits and polls again (a turn that was
running comes back through its expired lease).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from supportdesk.agent.worker import TurnWorker, run_through_outages, sweep_forever


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
        worker = TurnWorker(
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
            run_through_outages(worker)
        finally:
            stop.set()
            close_old_connections()
            connection.close()
