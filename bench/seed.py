"""Bench data and query inspection, run by the bench in a subprocess with the server's
environment (so it writes to the same dedicated database the server reads).

    python bench/seed.py api --threads 1000 --replied 200  # through the services
    python bench/seed.py bulk --threads 100000   # desk-list data, bulk inserted
    python bench/seed.py inspect '<json spec>'   # queries of requests, via the test client
    python bench/seed.py turns-setup             # the help centre (as make run), table names
    python bench/seed.py turns-queue --threads 1000 --baseline 100  # 1 000 queued AI turns
    python bench/seed.py message-rate --calls 1000   # timed plain message_create calls
    python bench/seed.py turns-stats             # what the AI workers did (after a drain)
    python bench/seed.py turn-times              # per-turn timestamps (latency breakdown)
    python bench/seed.py conversation --messages 500 --marks 10,500  # prompt tokens

Each command prints one JSON object as its last line of output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management.color import no_style  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from threads import services  # noqa: E402
from threads.models import (  # noqa: E402
    Assignment,
    AuthorKind,
    Customer,
    Message,
    Priority,
    Responder,
    Role,
    Thread,
    ThreadStatus,
    Visibility,
)
from threads.tokens import token_hash  # noqa: E402

STAFF_USERNAME = "bench-agent"
ADMIN_USERNAME = "bench-admin"


def staff_token() -> tuple[Any, str]:
    """An active staff user with a DRF token (what the desk and the bare endpoint use)."""
    user, created = get_user_model().objects.get_or_create(
        username=STAFF_USERNAME,
        defaults={"first_name": "Bench", "last_name": "Agent", "is_staff": True},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def admin_session() -> dict[str, str]:
    """The cookies of a signed-in superuser (a session row, as after a login), for the
    admin changelists. Valid for servers with this process's SECRET_KEY."""
    user, created = get_user_model().objects.get_or_create(
        username=ADMIN_USERNAME,
        defaults={"first_name": "Bench", "last_name": "Admin", "is_staff": True},
    )
    if created:
        user.is_superuser = True
        user.set_unusable_password()
        user.save(update_fields=["is_superuser", "password"])
    client = Client()
    client.force_login(user)
    return {name: morsel.value for name, morsel in client.cookies.items()}


def seed_api(count: int, replied: int) -> dict[str, Any]:
    """``count`` + ``replied`` threads opened through ``thread_create`` with a first
    customer message; the last ``replied`` also get a human reply (so they are owned by
    the bench agent, the steady state of a thread an agent keeps answering)."""
    user, key = staff_token()
    started = time.perf_counter()
    threads, owned = [], []
    for index in range(count + replied):
        thread, token = services.thread_create(
            customer_name=f"Bench customer {index}",
            customer_email=f"bench{index}@example.com",
            subject=f"Bench thread {index}",
            message="Hello, I have a question about my order.",
        )
        if index < count:
            threads.append([str(thread.pk), token])
        else:
            services.human_reply_create(thread=thread, user=user, content="Happy to help.")
            owned.append([str(thread.pk), token])
    return {
        "staff_token": key,
        "threads": threads,
        "replied": owned,
        "seconds": time.perf_counter() - started,
    }


STATUS_WEIGHTS = {
    ThreadStatus.OPEN: 50,
    ThreadStatus.WAITING_ON_HUMAN: 10,
    ThreadStatus.RESOLVED: 30,
    ThreadStatus.CLOSED: 10,
}
PRIORITY_WEIGHTS = {Priority.LOW: 20, Priority.NORMAL: 60, Priority.HIGH: 15, Priority.URGENT: 5}


def insert_rows(model: Any, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    """INSERT ``rows`` (values already in database form) into ``model``'s table."""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(model._meta.get_field(n).column) for n in names)
    placeholders = ", ".join(["%s"] * len(names))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)


DRAFT_SHARE = 0.15  # threads in draft mode, each with one AI draft (seq 2)


def seed_bulk(count: int, batch: int = 5000) -> dict[str, Any]:
    """``count`` threads with a customer, an assignment row and one message each; a tenth
    of them in draft mode with an AI draft (a second, draft message and its
    ApprovalDraft: pending on open and waiting threads, rejected on the others).

    Bench data only: plain multi-row INSERTs into a fresh database (bypassing the
    services and the ORM's per-value preparation, which would take a minute for 100k),
    with activity times spread over 90 days in random insertion order, a realistic mix of
    statuses, priorities and responders, and every timestamp distinct.
    """
    from approvals.models import ApprovalDraft, DraftKind, DraftStatus

    user, key = staff_token()
    rng = random.Random(20240601)
    # A stream of its own, so that the threads are the same as before drafts were seeded.
    draft_rng = random.Random(20240602)
    ops = connection.ops
    sqlite = connection.vendor == "sqlite"

    def uid(source: random.Random = rng) -> Any:
        value = uuid.UUID(int=source.getrandbits(128), version=4)
        return value.hex if sqlite else value

    def when(value: Any) -> Any:
        return ops.adapt_datetimefield_value(value)

    now = timezone.now()
    step_us = max(1, int(90 * 86400 * 1_000_000 / count))
    order = list(range(count))
    rng.shuffle(order)
    statuses, status_w = zip(*STATUS_WEIGHTS.items(), strict=True)
    priorities, priority_w = zip(*PRIORITY_WEIGHTS.items(), strict=True)
    started = time.perf_counter()
    by_status: dict[str, list[Any]] = {}
    drafts_by_status: dict[str, int] = {}
    for start in range(0, count, batch):
        customers, threads, assignments, messages, drafts = [], [], [], [], []
        for n, i in enumerate(order[start : start + batch], start=start + 1):
            updated = now - timedelta(microseconds=i * step_us)
            created = when(updated - timedelta(minutes=rng.randint(1, 600)))
            human = rng.random() < 0.2
            thread_id = uid()
            status = rng.choices(statuses, status_w)[0]
            by_status.setdefault(status, []).append(thread_id)
            drafted = draft_rng.random() < DRAFT_SHARE
            if drafted:
                waiting = status in (ThreadStatus.OPEN, ThreadStatus.WAITING_ON_HUMAN)
                draft_status = DraftStatus.PENDING if waiting else DraftStatus.REJECTED
                draft_message = uid(draft_rng)
                messages.append(
                    (
                        draft_message,
                        thread_id,
                        2,
                        Role.ASSISTANT,
                        AuthorKind.AI,
                        "AI",
                        "Your order ships today; here is the tracking link.",
                        Visibility.DRAFT if waiting else Visibility.REJECTED,
                        "[]",
                        "offline",
                        when(updated),
                    )
                )
                drafts.append(
                    (
                        uid(draft_rng),
                        thread_id,
                        DraftKind.APPROVAL,
                        draft_message,
                        draft_status,
                        "Your order ships today; here is the tracking link.",
                        False,
                        "",
                        "",
                        "",
                        0.55,
                        None if waiting else user.pk,
                        None if waiting else when(updated),
                        when(updated),
                    )
                )
                drafts_by_status[draft_status] = drafts_by_status.get(draft_status, 0) + 1
            customers.append((n, f"Customer {i}", f"customer{i}@example.com", "", created))
            threads.append(
                (
                    thread_id,
                    n,
                    token_hash(f"bench-{i}"),
                    f"Question {i} about an order",
                    status,
                    Responder.HUMAN if human else Responder.AI,
                    user.pk if human else None,
                    "draft" if drafted else "auto",
                    rng.choices(priorities, priority_w)[0],
                    2 if drafted else 1,
                    None,
                    created,
                    when(updated),
                )
            )
            assignments.append((n, thread_id, Responder.AI, "thread created", created))
            messages.append(
                (
                    uid(),
                    thread_id,
                    1,
                    Role.USER,
                    AuthorKind.CUSTOMER,
                    f"Customer {i}",
                    "Hello, where is my order?",
                    Visibility.PUBLIC,
                    "[]",
                    None,
                    created,
                )
            )
        with transaction.atomic():
            insert_rows(Customer, ["id", "name", "email", "external_id", "created_at"], customers)
            insert_rows(
                Thread,
                [
                    "id",
                    "customer",
                    "token_hash",
                    "subject",
                    "status",
                    "responder",
                    "assignee",
                    "ai_mode",
                    "priority",
                    "last_seq",
                    "sla_due_at",
                    "created_at",
                    "updated_at",
                ],
                threads,
            )
            insert_rows(
                Assignment, ["id", "thread", "responder", "reason", "created_at"], assignments
            )
            insert_rows(
                Message,
                [
                    "id",
                    "thread",
                    "seq",
                    "role",
                    "author_kind",
                    "author_name",
                    "content",
                    "visibility",
                    "tool_calls",
                    "provider",
                    "created_at",
                ],
                messages,
            )
            insert_rows(
                ApprovalDraft,
                [
                    "id",
                    "thread",
                    "kind",
                    "message",
                    "status",
                    "content",
                    "edited",
                    "diff",
                    "review",
                    "next_action",
                    "confidence",
                    "decided_by",
                    "decided_at",
                    "created_at",
                ],
                drafts,
            )
    extras = seed_escalations(by_status, rng)
    extras["approval_drafts"] = drafts_by_status
    with connection.cursor() as cursor:
        # Explicit ids were inserted: move the id sequences past them (PostgreSQL).
        for sql in ops.sequence_reset_sql(no_style(), [Customer, Assignment]):
            cursor.execute(sql)
        if connection.vendor == "postgresql":
            # Autovacuum would analyze the fresh tables soon after a bulk load; do it now
            # so the planner sees the steady state rather than an empty-table estimate.
            cursor.execute("ANALYZE")
    return {
        "staff_token": key,
        "admin_cookies": admin_session(),
        "threads": count,
        "extras": extras,
        "seconds": time.perf_counter() - started,
    }


def seed_escalations(by_status: dict[str, list[Any]], rng: random.Random) -> dict[str, Any]:
    """What the apps above threads keep per thread, in proportion, so that what they add
    to the desk list is measured at scale too: an open escalation on every thread waiting
    on a human, a pending question to a human on a fifth of those, a resolved
    escalation on 30 % of resolved threads and an answered question on another 30 %.

    Those apps are young: if their models do not take these rows, the desk list is
    measured without them and the output says why.
    """
    from django.apps import apps

    try:
        escalation = apps.get_model("escalations", "Escalation")
        human_request = apps.get_model("escalations", "HumanRequest")
    except LookupError as exc:
        return {"skipped": str(exc)}
    waiting = by_status.get(ThreadStatus.WAITING_ON_HUMAN, [])
    resolved = by_status.get(ThreadStatus.RESOLVED, [])
    expires = timezone.now() + timedelta(hours=1)
    counts = {
        "open_escalations": 0,
        "resolved_escalations": 0,
        "pending_human_requests": 0,
        "answered_human_requests": 0,
    }
    try:
        with transaction.atomic():
            rows = [
                escalation(thread_id=t, source="classifier", reason="Bench", status="open")
                for t in waiting
            ]
            rows += [
                escalation(thread_id=t, source="classifier", reason="Bench", status="resolved")
                for t in resolved
                if rng.random() < 0.3
            ]
            escalation.objects.bulk_create(rows, batch_size=2000)
            counts["open_escalations"] = len(waiting)
            counts["resolved_escalations"] = len(rows) - len(waiting)
            asked = [t for t in waiting if rng.random() < 0.2]
            human_request.objects.bulk_create(
                [
                    human_request(
                        thread_id=t,
                        turn_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                        question="Can we refund this order?",
                        tool_call_id="call_bench",
                        status="pending",
                        expires_at=expires,
                    )
                    for t in asked
                ],
                batch_size=2000,
            )
            counts["pending_human_requests"] = len(asked)
            answered = [t for t in resolved if rng.random() < 0.3]
            human_request.objects.bulk_create(
                [
                    human_request(
                        thread_id=t,
                        turn_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                        question="Was this order shipped?",
                        tool_call_id="call_bench",
                        status="answered",
                        answer="Yes, on Monday.",
                        answered_at=timezone.now(),
                        expires_at=expires,
                    )
                    for t in answered
                ],
                batch_size=2000,
            )
            counts["answered_human_requests"] = len(answered)
            # auto_now_add stamped every row with this moment: date each by its thread's
            # last activity instead, so the rows spread over the 90 days as threads do.
            threads_table = connection.ops.quote_name(Thread._meta.db_table)
            with connection.cursor() as cursor:
                for model in (escalation, human_request):
                    table = connection.ops.quote_name(model._meta.db_table)
                    cursor.execute(
                        f"UPDATE {table} SET created_at = (SELECT t.updated_at FROM "
                        f"{threads_table} t WHERE t.id = {table}.thread_id)"
                    )
    except Exception as exc:  # bench data only: report and measure without them
        return {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
    return counts


AUTH_TABLES = {"authtoken_token", "django_session", "auth_user"}


def main_table(sql: str) -> str | None:
    """The table a SELECT reads first (its FROM; a subquery's for a capped COUNT)."""
    found = re.search(r'\bFROM "(\w+)"', sql)
    return found.group(1) if found else None


def explain(sql: str) -> list[str]:
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    try:
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            rows = cursor.fetchall()
    except Exception as exc:  # a plan is a diagnostic; never fail the bench for it
        return [f"(no plan: {exc})"]
    return [" ".join(str(col) for col in row) for row in rows]


def inspect(spec: list[dict[str, Any]]) -> dict[str, Any]:
    """Run each request of ``spec`` through the test client and capture its SQL.

    ``spec`` items: ``{"name", "method", "path", "headers", "body"?, "explain"?}``.
    Reports the status, the queries, their OFFSETs and COUNTs (any, and an unbounded one:
    a top-level COUNT that is not over a LIMITed subquery, i.e. a paginator's exact
    total), and with ``explain`` the plans of its SELECTs.
    """
    client = Client()
    out: dict[str, Any] = {}
    for item in spec:
        body = json.dumps(item["body"]) if item.get("body") is not None else None
        extra = {
            "HTTP_" + name.upper().replace("-", "_"): value
            for name, value in item["headers"].items()
        }
        with CaptureQueriesContext(connection) as captured:
            if item["method"] == "GET":
                response = client.get(item["path"], **extra)
            else:
                response = client.generic(
                    item["method"], item["path"], body or "", "application/json", **extra
                )
        queries = [q["sql"] for q in captured.captured_queries]
        upper = [q.upper() for q in queries]
        offsets = [int(n) for q in upper for n in re.findall(r"\bOFFSET\s+(\d+)", q)]
        selects = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
        # Top-level COUNTs are a paginator's total; one over a LIMITed subquery is capped
        # (counts at most that many rows), any other counts every matching row.
        totals = [q for q in upper if re.match(r"\s*SELECT\s+COUNT\(", q)]
        plan: list[str] = []
        if item.get("explain"):
            # Every SELECT but the authentication's (token, session, user): the page,
            # and what apps add to it.
            for number, sql in enumerate(selects, start=1):
                if main_table(sql) not in AUTH_TABLES:
                    plan += [f"[{number}] {line}" for line in explain(sql)]
        out[item["name"]] = {
            "status": response.status_code,
            "queries": queries,
            "has_offset": bool(offsets),
            "max_offset": max(offsets, default=0),
            "has_count": any("COUNT(" in q for q in upper),
            "capped_count": any(" LIMIT " in q for q in totals),
            "unbounded_count": any(" LIMIT " not in q for q in totals),
            # e.g. the stock date hierarchy's dates() query: every row in range is read.
            "has_distinct": any(re.match(r"\s*SELECT\s+DISTINCT\b", q) for q in upper),
            "plan": plan,
        }
    return out


# --- AI turns (bench/turns.py) ------------------------------------------------------

BASELINE_SUBJECT = "Bench message_create baseline"
# Customer questions of a bench conversation, in rotation. Five of them, so that the
# messages that trigger the turns at message 10 and at message 500 (seq 9 and 499, both
# the fifth question) are the same text: the two prompts differ only by the history.
QUESTIONS = [
    "Hi, I ordered a tent last week and it has not arrived yet. Where is my order #4711?",
    "The tracking page has not changed for three days. Is the parcel lost somewhere?",
    "If it does not arrive by Friday, can I return the tent and get my money back?",
    "How long does a refund take once you receive the return at your warehouse?",
    "Do you also ship to Canada, and how much does express shipping cost there?",
]
REPLY_TEXT = (
    "You said: Hi, I ordered a tent last week and it has not arrived yet. Where is my order #4711?"
)


def _epoch(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def turns_setup() -> dict[str, Any]:
    """The help centre, as ``make run`` seeds it (the model's context includes excerpts of
    it), and the names the bench's direct database polls need."""
    from supportdesk.agent.kb_data import knowledge_seed
    from supportdesk.agent.models import AgentTurn

    articles = knowledge_seed()
    return {
        "articles": articles,
        "turn_table": AgentTurn._meta.db_table,
        "message_table": Message._meta.db_table,
        "uuid_hex": connection.vendor == "sqlite",  # UUIDs are char(32) hex on SQLite
    }


def turns_queue(count: int, baseline: int) -> dict[str, Any]:
    """``count`` threads, each with one customer message through
    ``customer_message_create`` (which queues its AI turn: the AgentTurn and its task row
    commit with the message), and ``baseline`` threads without messages for the
    ``message_create`` baseline. No worker runs meanwhile."""
    from supportdesk.agent.models import AgentTurn

    setup = turns_setup()
    started = time.perf_counter()
    for index in range(count):
        thread, _ = services.thread_create(
            customer_name=f"Bench customer {index}",
            customer_email=f"bench{index}@example.com",
            subject=f"Bench turn {index}",
        )
        services.customer_message_create(thread=thread, content=QUESTIONS[index % 5])
    queued_seconds = time.perf_counter() - started
    for index in range(baseline):
        services.thread_create(customer_name=f"Baseline {index}", subject=BASELINE_SUBJECT)
    return {
        **setup,
        "threads": count,
        "queued_turns": AgentTurn.objects.filter(status="queued").count(),
        "queue_seconds": queued_seconds,
    }


def message_rate(calls: int) -> dict[str, Any]:
    """Time ``calls`` plain ``message_create`` calls of an AI-sized assistant message,
    each its own transaction, rotating over the baseline threads."""
    threads = list(Thread.objects.filter(subject=BASELINE_SUBJECT).order_by("created_at"))
    if not threads:
        raise SystemExit("no baseline threads: run turns-queue first")
    with CaptureQueriesContext(connection) as captured:
        services.message_create(
            thread=threads[0],
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content=REPLY_TEXT,
            provider="openai",
            model="gpt-test",
            usage={"prompt_tokens": 400, "completion_tokens": 30},
        )
    started = time.perf_counter()
    for index in range(calls):
        services.message_create(
            thread=threads[index % len(threads)],
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content=REPLY_TEXT,
            provider="openai",
            model="gpt-test",
            usage={"prompt_tokens": 400, "completion_tokens": 30},
        )
    seconds = time.perf_counter() - started
    return {
        "calls": calls,
        "seconds": seconds,
        "rate": calls / seconds,
        "queries": [q["sql"] for q in captured.captured_queries],
    }


def turns_stats() -> dict[str, Any]:
    """What the workers did: turns by status and outcome, the span from the first claim
    to the last finish, the model calls and the task rows."""
    from django.db.models import Avg, Count, Max, Min

    from supportdesk.agent.models import AgentTurn, ModelCall

    turns = AgentTurn.objects.all()
    span = turns.aggregate(
        first_created=Min("created_at"),
        first_started=Min("started_at"),
        last_finished=Max("finished_at"),
    )
    calls = ModelCall.objects.aggregate(
        count=Count("id"), latency_ms=Avg("latency_ms"), prompt_tokens=Avg("prompt_tokens")
    )
    tasks: dict[str, int] = {}
    with connection.cursor() as cursor:
        from django_tasks_db.models import DBTaskResult

        cursor.execute(
            f"SELECT status, COUNT(*) FROM {connection.ops.quote_name(DBTaskResult._meta.db_table)}"
            " GROUP BY status"
        )
        tasks = {str(status): int(n) for status, n in cursor.fetchall()}
    workers: dict[str, int] = {}
    for owner, n in turns.values_list("lease_owner").annotate(n=Count("id")).order_by():
        worker = owner.rsplit(":", 1)[0] if owner else ""
        workers[worker] = workers.get(worker, 0) + n
    return {
        "by_status": {
            s: n for s, n in turns.values_list("status").annotate(n=Count("id")).order_by()
        },
        "by_outcome": {
            o or "-": n for o, n in turns.values_list("outcome").annotate(n=Count("id")).order_by()
        },
        "first_created": _epoch(span["first_created"]),
        "first_started": _epoch(span["first_started"]),
        "last_finished": _epoch(span["last_finished"]),
        "model_calls": calls["count"],
        "model_latency_ms": float(calls["latency_ms"] or 0),
        "prompt_tokens": float(calls["prompt_tokens"] or 0),
        "tasks": tasks,
        "turns_per_worker": workers,
        "attempts_over_1": turns.filter(attempts__gt=1).count(),
    }


def turn_times() -> dict[str, Any]:
    """Per thread, the timestamps of its first reply turn (epoch seconds): trigger
    message stored, turn created, claimed, model call start and end, reply stored."""
    from supportdesk.agent.models import AgentTurn, ModelCall

    out: dict[str, Any] = {}
    turns = AgentTurn.objects.select_related("trigger_message", "outcome_message").order_by(
        "created_at"
    )
    calls: dict[Any, list[Any]] = {}
    for call in ModelCall.objects.order_by("created_at"):
        calls.setdefault(call.turn_id, []).append(call)
    for turn in turns:
        key = str(turn.thread_id)
        if key in out:
            continue
        reply_calls = [c for c in calls.get(turn.pk, []) if c.purpose == "reply"]
        first, last = (reply_calls[0], reply_calls[-1]) if reply_calls else (None, None)
        out[key] = {
            "status": turn.status,
            "outcome": turn.outcome,
            "message": _epoch(turn.trigger_message.created_at) if turn.trigger_message else None,
            "created": _epoch(turn.created_at),
            "started": _epoch(turn.started_at),
            "model_start": (first.created_at.timestamp() - first.latency_ms / 1000)
            if first
            else None,
            "model_end": _epoch(last.created_at) if last else None,
            "model_ms": sum(c.latency_ms for c in reply_calls),
            "model_calls": len(calls.get(turn.pk, [])),
            "reply": _epoch(turn.outcome_message.created_at) if turn.outcome_message else None,
            "finished": _epoch(turn.finished_at),
        }
    return {"turns": out}


def conversation(messages: int, marks: list[int]) -> dict[str, Any]:
    """One thread grown to ``messages`` messages: each customer message (odd seq) is
    answered by its AI turn, run inline here against the model server of
    OPENAI_BASE_URL, as a worker would run it (the turn's task row stays queued: no worker
    runs). For the turns whose reply is message ``m`` in ``marks``, reports the prompt
    tokens of their model calls (the ModelCall rows, i.e. the server's usage) and the SQL
    statements the turn ran."""
    from supportdesk.agent.models import AgentTurn, ModelCall
    from supportdesk.agent.runner import turn_run

    turns_setup()
    thread, _ = services.thread_create(
        customer_name="Bench long conversation", subject="Bench long conversation"
    )
    at: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()
    for number in range(1, messages // 2 + 1):
        message = services.customer_message_create(
            thread=thread, content=QUESTIONS[(number - 1) % len(QUESTIONS)]
        )
        turn = AgentTurn.objects.get(trigger_message=message)
        with CaptureQueriesContext(connection) as captured:
            turn_run(turn.pk, worker_id="bench-inline")
        turn.refresh_from_db()
        reply_seq = turn.outcome_message.seq if turn.outcome_message is not None else None
        if turn.outcome != "reply" or reply_seq != message.seq + 1:
            raise SystemExit(
                f"turn for message {message.seq} ended {turn.outcome!r} "
                f"(reply seq {reply_seq}); the bench expects a reply"
            )
        if reply_seq in marks:
            calls = list(ModelCall.objects.filter(turn=turn).order_by("created_at"))
            at[reply_seq] = {
                "prompt_tokens": sum(c.prompt_tokens for c in calls),
                "completion_tokens": sum(c.completion_tokens for c in calls),
                "model_calls": len(calls),
                "queries": len(captured.captured_queries),
                "sql": [q["sql"][:200] for q in captured.captured_queries],
            }
    return {
        "messages": Message.objects.filter(thread=thread).count(),
        "seconds": time.perf_counter() - started,
        "at": {str(k): v for k, v in sorted(at.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api")
    api.add_argument("--threads", type=int, default=1000)
    api.add_argument("--replied", type=int, default=200)
    bulk = sub.add_parser("bulk")
    bulk.add_argument("--threads", type=int, default=100_000)
    insp = sub.add_parser("inspect")
    insp.add_argument("spec", help="JSON list of requests")
    sub.add_parser("turns-setup")
    queue = sub.add_parser("turns-queue")
    queue.add_argument("--threads", type=int, default=1000)
    queue.add_argument("--baseline", type=int, default=100)
    rate = sub.add_parser("message-rate")
    rate.add_argument("--calls", type=int, default=1000)
    sub.add_parser("turns-stats")
    sub.add_parser("turn-times")
    talk = sub.add_parser("conversation")
    talk.add_argument("--messages", type=int, default=500)
    talk.add_argument("--marks", default="10,500")
    args = parser.parse_args()
    if args.command == "api":
        result = seed_api(args.threads, args.replied)
    elif args.command == "bulk":
        result = seed_bulk(args.threads)
    elif args.command == "turns-setup":
        result = turns_setup()
    elif args.command == "turns-queue":
        result = turns_queue(args.threads, args.baseline)
    elif args.command == "message-rate":
        result = message_rate(args.calls)
    elif args.command == "turns-stats":
        result = turns_stats()
    elif args.command == "turn-times":
        result = turn_times()
    elif args.command == "conversation":
        marks = sorted({int(mark) for mark in args.marks.split(",") if mark.strip()})
        result = conversation(args.messages, marks)
    else:
        result = inspect(json.loads(args.spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
