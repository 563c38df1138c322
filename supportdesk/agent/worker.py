"""The sweeper loop that runs beside every worker (and ``manage.py sweep_turns``)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.utils import timezone

from escalations.notifications import deliver_due, outbox_prune
from escalations.services import presence_expire_stale
from escalations.sla import sla_sweep
from supportdesk.agent.models import WorkerHeartbeat
from supportdesk.agent.runner import turn_sweep

if TYPE_CHECKING:
    from django_tasks_db.management.commands.db_worker import Worker

logger = logging.getLogger(__name__)

# Seconds between attempts while the database is unreachable (doubling up to the cap).
RECONNECT_DELAY = 0.5
RECONNECT_DELAY_CAP = 5.0


def sweep_once(worker_id: str) -> dict[str, int]:
    """One sweep: expired turn leases, this worker's heartbeat, due notifications (and
    pruning of old sent ones), SLA clocks, and agents whose presence went stale."""
    counts = turn_sweep()
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id[:64], defaults={"last_seen_at": timezone.now()}
    )
    counts.update(deliver_due())  # the notification outbox: webhooks and emails
    counts["outbox_pruned"] = outbox_prune()  # sent rows past their retention
    counts.update(sla_sweep())  # SLA warnings and breaches of escalations
    counts["presence_expired"] = presence_expire_stale()  # agents silent for 60 s: offline
    return counts


def sweep_forever(*, worker_id: str, every: float, stop: threading.Event) -> None:
    """Sweep every ``every`` seconds until ``stop`` is set; errors are logged, not fatal."""
    while not stop.is_set():
        try:
            close_old_connections()
            counts = sweep_once(worker_id)
            if counts["requeued"] or counts["escalated"]:
                logger.info("sweeper: %s", counts)
        except Exception:
            logger.exception("sweeper failed; retrying")
        stop.wait(every)
    connection.close()


def run_through_outages(worker: Worker) -> None:
    """Run the task loop; when the database goes away, wait and run it again.

    django-tasks-db's loop re-raises every error but a locked SQLite database, so a
    restarted PostgreSQL would otherwise end the worker for good (a turn that was
    running comes back through its expired lease). Used by ``agent_worker`` and the
    worker embedded in the web process.
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
