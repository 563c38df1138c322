"""The AI worker's task loop (``TurnWorker``): its one-statement claim on PostgreSQL takes
tasks as django-tasks-db's own worker does, and skips rows another worker holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from supportdesk.agent.models import AgentTurn
from supportdesk.agent.worker import TurnWorker
from tests.factories import make_thread
from tests.llm_server import ScriptedLLMServer, final
from threads import services

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps django-tasks-db's own claim"
)


def worker(**options: Any) -> TurnWorker:
    defaults: dict[str, Any] = {
        "queue_names": ["default"],
        "interval": 0.01,
        "batch": False,
        "backend_name": "default",
        "startup_delay": False,
        "max_tasks": None,
        "worker_id": "worker-1",
        "excluded_queue_names": [],
    }
    return TurnWorker(**{**defaults, **options})


def make_task(**fields: Any) -> DBTaskResult:
    fields.setdefault("backend_name", "default")
    return DBTaskResult.objects.create(
        task_path="supportdesk.agent.tasks.run_turn",
        args_kwargs={"args": ["not-a-turn"], "kwargs": {}},
        **fields,
    )


@postgres_only
@pytest.mark.django_db
def test_it_claims_by_priority_then_age_and_leaves_what_is_not_due_or_not_its_queue() -> None:
    low = make_task(priority=0)
    high = make_task(priority=10)
    later = make_task(priority=0)
    make_task(priority=50, run_after=timezone.now() + timedelta(hours=1))
    make_task(priority=50, queue_name="other")
    make_task(priority=50, backend_name="elsewhere")
    claimer = worker()
    claimed = [claimer.claim_next() for _ in range(4)]
    assert [task.pk if task else None for task in claimed] == [high.pk, low.pk, later.pk, None]
    assert claimed[0] is not None and claimed[0].args_kwargs == high.args_kwargs
    stored = DBTaskResult.objects.get(pk=high.pk)
    assert (stored.status, stored.worker_ids) == ("RUNNING", ["worker-1"])
    assert stored.started_at is not None
    assert DBTaskResult.objects.filter(status="READY").count() == 3


@postgres_only
@pytest.mark.django_db
def test_it_honours_excluded_queues_and_all_queues() -> None:
    make_task(queue_name="default")
    other = make_task(queue_name="other", priority=5)
    claimed = worker(queue_names=["*"], excluded_queue_names=["default"]).claim_next()
    assert claimed is not None and claimed.pk == other.pk


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_skips_a_task_another_worker_holds() -> None:
    held = make_task(priority=10)
    free = make_task(priority=0)
    conf = connection.settings_dict
    with psycopg.connect(
        host=conf["HOST"] or "127.0.0.1",
        port=conf["PORT"] or 5432,
        user=conf["USER"],
        password=conf["PASSWORD"] or None,
        dbname=conf["NAME"],
    ) as other:
        other.execute(
            f"SELECT id FROM {DBTaskResult._meta.db_table} WHERE id = %s FOR UPDATE", [held.pk]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '5s'")  # a claim that waits fails
        claimed = worker().claim_next()
        other.rollback()
    assert claimed is not None and claimed.pk == free.pk
    assert DBTaskResult.objects.get(pk=held.pk).status == "READY"


# The loop checks its connection as the stock one does, which closes one held in a
# test's transaction: this test commits.
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_turn_and_records_the_task_result(llm: ScriptedLLMServer) -> None:
    llm.push(final("Answered by the loop.", 0.9))
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="Hello?")
    worker(max_tasks=1).run()
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.status, turn.outcome) == ("done", "reply")
    task = DBTaskResult.objects.get()
    assert (task.status, task.return_value, task.worker_ids) == ("SUCCESSFUL", "ran", ["worker-1"])
    assert task.finished_at is not None
