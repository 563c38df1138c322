"""The sweeper loop that runs beside every worker (and ``manage.py sweep_turns``)."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connection
from django.utils import timezone

from escalations.notifications import deliver_due, outbox_prune
from escalations.services import presence_expire_stale
from escalations.sla import sla_sweep
from supportdesk.agent.models import WorkerHeartbeat
from supportdesk.agent.runner import turn_sweep

logger = logging.getLogger(__name__)


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
