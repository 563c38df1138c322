"""The AI worker's task loop, and the sweeper loop that runs beside every worker (and
``manage.py sweep_turns``)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max

from escalations.notifications import deliver_due, outbox_prune
from escalations.services import presence_expire_stale
from escalations.sla import sla_sweep
from supportdesk.agent.models import WorkerHeartbeat
from supportdesk.agent.runner import turn_sweep

logger = logging.getLogger(__name__)

# Seconds between attempts while the database is unreachable (doubling up to the cap).
RECONNECT_DELAY = 0.5
RECONNECT_DELAY_CAP = 5.0
# How often a busy worker checks its database connection between tasks.
CONNECTION_CHECK_SECONDS = 1.0


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


class TurnWorker(Worker):
    """django-tasks-db's worker, claiming each task with one statement on PostgreSQL.

    The stock loop claims through the ORM: BEGIN, ``SELECT … FOR UPDATE SKIP LOCKED``,
    an ``UPDATE`` of the row, COMMIT — about 2 ms of CPU per task, a fifth of a turn
    with a fast model. Here one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED
    LIMIT 1) RETURNING *`` takes the next ready task in the same order (priority, then
    ``run_after``, then ``enqueued_at``), with the same filters and the same row
    afterwards (``RUNNING``, ``started_at``, this worker appended to ``worker_ids``).
    Running the task, its result and the signals are the stock worker's. SQLite, which
    has no row locks, and batch mode keep the stock loop.
    """

    def run(self) -> None:
        if connection.vendor != "postgresql" or self.batch:
            super().run()
            return
        logger.info("Starting worker worker_id=%s queues=%s", self.worker_id, self.queue_names)
        checked = 0.0
        while self.running:
            # Dropped or expired connections are noticed here, as the stock loop does, but
            # at most once a second while tasks keep coming (each check is a round trip;
            # a connection that died in between fails the claim, which claims nothing, and
            # run_through_outages reconnects) and always after a database error.
            if connection.errors_occurred or time.monotonic() - checked >= CONNECTION_CHECK_SECONDS:
                close_old_connections()
                checked = time.monotonic()
            task_result = self.claim_next()
            if task_result is not None:
                self.run_task(task_result)
            if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                return
            if self.running and task_result is None:
                time.sleep(self.interval)

    def claim_next(self) -> DBTaskResult | None:
        """Claim the next ready task of this worker's queues, or None when there is none."""
        now = timezone.now()
        conditions = ["status = %s", "(run_after = %s OR run_after <= %s)", "backend_name = %s"]
        params: list[object] = [TaskResultStatus.READY, get_date_max(), now, self.backend_name]
        if not self.process_all_queues:
            conditions.append("queue_name = ANY(%s)")
            params.append(list(self.queue_names))
        if self.excluded_queue_names:
            conditions.append("NOT (queue_name = ANY(%s))")
            params.append(list(self.excluded_queue_names))
        table = connection.ops.quote_name(DBTaskResult._meta.db_table)
        sql = (
            f"UPDATE {table} SET status = %s, started_at = %s, worker_ids = worker_ids || %s::jsonb "
            f"WHERE id = (SELECT id FROM {table} WHERE {' AND '.join(conditions)} "
            "ORDER BY priority DESC, run_after ASC, enqueued_at ASC "
            "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *"
        )
        claimed = list(
            DBTaskResult.objects.raw(
                sql,
                [TaskResultStatus.RUNNING, now, json.dumps([self.worker_id]), *params],
            )
        )
        return claimed[0] if claimed else None
