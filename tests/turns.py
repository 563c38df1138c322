"""Run queued AI turns inline, as a worker would (tests only)."""

from __future__ import annotations

from supportdesk.agent.models import AgentTurn, TurnStatus
from supportdesk.agent.runner import turn_run


def drain(limit: int = 50) -> list[AgentTurn]:
    """Run every queued turn, oldest first; returns the turns that ran."""
    ran: list[AgentTurn] = []
    for _ in range(limit):
        turn = AgentTurn.objects.filter(status=TurnStatus.QUEUED).order_by("created_at").first()
        if turn is None:
            return ran
        result = turn_run(turn.pk, worker_id="test")
        if result is not None:
            ran.append(result)
    raise AssertionError("turns kept queuing")
