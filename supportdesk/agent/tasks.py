"""Background tasks (django_tasks API, executed by the database backend's worker)."""

from __future__ import annotations

from django_tasks import task


@task()
def run_turn(turn_id: str) -> str:
    """Run one AgentTurn. Safe to run twice: the claim lets only one run proceed."""
    from supportdesk.agent.runner import turn_run

    turn = turn_run(turn_id, worker_id=_worker_id(), refresh=False)
    return "ran" if turn is not None else "not claimed"


def _worker_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()[:20]}-{os.getpid()}"
