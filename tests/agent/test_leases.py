"""Leases, the sweeper and exactly-once outcomes when workers die or run late."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from escalations.models import Escalation
from supportdesk.agent import runner
from supportdesk.agent.models import AgentTurn
from tests.factories import make_thread
from tests.llm_server import ScriptedLLMServer, final
from tests.turns import drain
from threads import services
from threads.models import Message

pytestmark = pytest.mark.django_db


def queued_turn() -> AgentTurn:
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="Where is my order?")
    return AgentTurn.objects.get(thread=thread)


def sweep() -> tuple[int, int]:
    counts = runner.turn_sweep()
    return counts["requeued"], counts["escalated"]


def expire(turn: AgentTurn) -> None:
    AgentTurn.objects.filter(pk=turn.pk).update(leased_until=timezone.now() - timedelta(seconds=1))


def test_it_claims_a_turn_only_once(db: Any) -> None:
    turn = queued_turn()
    first = runner.turn_claim(turn.pk, "w1")
    second = runner.turn_claim(turn.pk, "w2")
    assert first is not None
    assert second is None
    turn.refresh_from_db()
    assert (turn.status, turn.attempts, turn.lease_owner) == ("running", 1, first.owner)
    assert turn.leased_until is not None


def test_it_requeues_a_turn_whose_lease_expired(llm: ScriptedLLMServer) -> None:
    turn = queued_turn()
    runner.turn_claim(turn.pk, "dead-worker")
    expire(turn)
    assert sweep() == (1, 0)
    turn.refresh_from_db()
    assert (turn.status, turn.lease_owner) == ("queued", "")
    llm.push(final("It ships today.", 0.9))
    drain()
    turn.refresh_from_db()
    assert (turn.outcome, turn.attempts) == ("reply", 2)
    assert Message.objects.filter(thread=turn.thread, author_kind="ai").count() == 1


def test_it_leaves_live_leases_alone(db: Any) -> None:
    turn = queued_turn()
    runner.turn_claim(turn.pk, "busy-worker")
    assert sweep() == (0, 0)
    turn.refresh_from_db()
    assert turn.status == "running"


def test_it_escalates_a_turn_out_of_attempts(db: Any) -> None:
    turn = queued_turn()
    for attempt in range(turn.max_attempts):
        assert runner.turn_claim(turn.pk, f"worker-{attempt}") is not None
        expire(turn)
        runner.turn_sweep()
    turn.refresh_from_db()
    assert (turn.status, turn.outcome) == ("done", "escalation")
    escalation = Escalation.objects.get(thread=turn.thread)
    assert escalation.source == "ai_failure"


def test_it_lets_no_late_worker_finish_a_taken_over_turn(llm: ScriptedLLMServer) -> None:
    turn = queued_turn()
    late = runner.turn_claim(turn.pk, "slow-worker")
    assert late is not None
    expire(turn)
    runner.turn_sweep()
    llm.push(final("Answer from the new worker.", 0.9))
    drain()
    with pytest.raises(runner.LeaseLost):
        runner._finish(late, "reply")
    turn.refresh_from_db()
    assert turn.outcome == "reply"
    assert Message.objects.filter(thread=turn.thread, author_kind="ai").count() == 1


def test_it_requeues_after_an_unexpected_error(llm: ScriptedLLMServer, monkeypatch: Any) -> None:
    turn = queued_turn()
    calls = {"n": 0}
    real = runner._ai_loop

    def flaky(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database hiccup")
        real(*args, **kwargs)

    monkeypatch.setattr(runner, "_ai_loop", flaky)
    llm.push(final("Recovered.", 0.9))
    drain()
    turn.refresh_from_db()
    assert (turn.outcome, turn.attempts) == ("reply", 2)
    assert "database hiccup" in turn.error


def test_it_does_nothing_for_a_finished_turn(llm: ScriptedLLMServer) -> None:
    turn = queued_turn()
    llm.push(final("Done.", 0.9))
    drain()
    assert runner.turn_run(turn.pk) is None
    assert Message.objects.filter(thread=turn.thread, author_kind="ai").count() == 1


def test_it_enqueues_a_task_with_each_turn(db: Any) -> None:
    from django_tasks_db.models import DBTaskResult

    turn = queued_turn()
    task = DBTaskResult.objects.get()
    assert task.task_path == "supportdesk.agent.tasks.run_turn"
    assert task.args_kwargs["args"] == [str(turn.pk)]


def test_it_rolls_back_the_turn_with_a_failed_message_post(db: Any) -> None:
    from django.db import transaction

    thread, _ = make_thread()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.customer_message_create(thread=thread, content="hello")
        raise RuntimeError("the request failed after the message was saved")
    assert not AgentTurn.objects.exists()
    assert make_thread()  # the database is still usable


# --- Turns whose task was taken by a worker that died before claiming the turn ----------


def ready_tasks(turn: AgentTurn) -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status="READY", args_kwargs__args__0=str(turn.pk)).count()


def orphan(turn: AgentTurn) -> None:
    """What a worker killed between taking the task row and claiming the turn leaves: the
    task taken, the turn queued and untouched since."""
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    assert DBTaskResult.objects.filter(args_kwargs__args__0=str(turn.pk)).update(
        status="RUNNING", started_at=now
    )
    AgentTurn.objects.filter(pk=turn.pk).update(updated_at=now - timedelta(minutes=10))


def test_it_queues_again_a_turn_whose_task_a_dead_worker_took(llm: ScriptedLLMServer) -> None:
    from django_tasks_db.models import DBTaskResult

    turn = queued_turn()
    orphan(turn)
    assert runner.turn_sweep()["orphans_requeued"] == 1
    assert ready_tasks(turn) == 1
    llm.push(final("It ships today.", 0.9))
    task = DBTaskResult.objects.get(status="READY", args_kwargs__args__0=str(turn.pk))
    assert task.task.call(*task.args_kwargs["args"]) == "ran"  # what a worker runs
    turn.refresh_from_db()
    assert (turn.status, turn.outcome, turn.attempts) == ("done", "reply", 1)
    assert list(
        Message.objects.filter(thread=turn.thread, author_kind="ai").values_list(
            "content", flat=True
        )
    ) == ["It ships today."]


def test_it_queues_an_orphaned_turn_again_once_however_often_it_sweeps(db: Any) -> None:
    turn = queued_turn()
    orphan(turn)
    now = timezone.now()
    assert runner.turn_sweep(now=now)["orphans_requeued"] == 1
    assert runner.turn_sweep(now=now)["orphans_requeued"] == 0
    assert ready_tasks(turn) == 1


def test_it_leaves_a_long_queued_turn_whose_task_still_waits_alone(db: Any) -> None:
    # A backlog: the turn has waited for ten minutes, its task is still ready.
    turn = queued_turn()
    AgentTurn.objects.filter(pk=turn.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    assert runner.turn_sweep()["orphans_requeued"] == 0
    assert ready_tasks(turn) == 1
    turn.refresh_from_db()
    assert turn.status == "queued"


def test_it_leaves_a_recently_queued_turn_whose_task_was_just_taken_alone(db: Any) -> None:
    # A live worker between taking the task and claiming the turn.
    from django_tasks_db.models import DBTaskResult

    turn = queued_turn()
    DBTaskResult.objects.filter(args_kwargs__args__0=str(turn.pk)).update(status="RUNNING")
    assert runner.turn_sweep()["orphans_requeued"] == 0
    assert ready_tasks(turn) == 0
