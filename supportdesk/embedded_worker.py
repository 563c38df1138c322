"""The AI worker inside the web process, for ``make run`` without Redis.

The in-memory channel layer reaches the sockets of its own process only, so replies
written (and streamed) by a separate ``agent_worker`` process would reach customers only
when they reconnect. With ``SUPPORTDESK_EMBEDDED_WORKER=1`` (set by ``make run`` when
``REDIS_URL`` is unset) ``supportdesk.asgi`` runs the same worker loop and sweeper in
daemon threads of the server process instead. Production runs ``agent_worker`` processes
and channels-redis.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings

logger = logging.getLogger(__name__)

_started = False


def start() -> None:
    """Start the worker and sweeper threads once per process."""
    global _started
    if _started:
        return
    _started = True
    from supportdesk.agent.worker import TurnWorker, run_through_outages, sweep_forever

    worker_id = f"embedded-{socket.gethostname()[:30]}-{os.getpid()}"
    worker = TurnWorker(
        queue_names=["default"],
        interval=settings.SUPPORTDESK_WORKER_POLL_SECONDS,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
    stop = threading.Event()
    threading.Thread(
        target=sweep_forever,
        kwargs={"worker_id": worker_id, "every": 5.0, "stop": stop},
        name="turn-sweeper",
        daemon=True,
    ).start()
    threading.Thread(
        target=run_through_outages, args=(worker,), name="agent-worker", daemon=True
    ).start()
    logger.info("AI worker %s runs inside the web process", worker_id)
