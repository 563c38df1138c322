"""Human operations at scale: auto-assignment and the SLA sweep.

    python bench/ops.py              # SQLite
    python bench/ops.py --postgres   # PostgreSQL
    python bench/ops.py --quick      # small sizes, few rounds (a smoke run)

**Assignment** (``escalations.routing``): a backlog of 1 000 escalations for 10 agents,
and of 10 000 for 50 agents (capacity 5 each, all online), drained the way the desk
drains it: every agent's free capacity is filled (``assign_backlog``), the agents finish
what they hold, their capacity is filled again, until nothing waits. Every query of the
assignment runs is captured (``CaptureQueriesContext``) and divided by the escalations
assigned. Measured with the claimed hooks other features register (notifications) and
without them (the assignment's own queries). Also measured: the single-escalation
event paths — an escalation opening while an agent has room (handed out inside the
opening transaction: the opening's queries minus those of the same opening with
auto-assignment off), and a resolution freeing one slot (``assign_agent``) — whose
query counts must not grow with the agents or the backlog.

**SLA sweep** (``escalations.sla.sla_sweep``): 1 000 and 100 000 active escalations on
as many threads, of which the same 200 are due; two processes (one database each)
sweep in alternating rounds (the due rows are made due again between rounds). The ratio
is time(100k) / time(1k); the plan of the sweep's query shows an index range scan of
``escalation_sla_check_idx`` (on PostgreSQL with ``EXPLAIN ANALYZE``: rows read = rows
due).

The parent process makes throw-away databases (``benchlib.Databases``), migrates them,
and runs ``python bench/ops.py --child …`` in each; a child prints one JSON line per
command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    PYTHON,
    ROOT,
    Databases,
    log,
    migrate,
    postgres_url_from,
    server_env,
)

ASSIGN_SIZES = [(10, 1_000), (50, 10_000)]  # (agents, backlog)
QUICK_ASSIGN_SIZES = [(5, 200), (20, 2_000)]
CAPACITY = 5
SLA_SIZES = {"small": 1_000, "large": 100_000}
QUICK_SLA_SIZES = {"small": 1_000, "large": 20_000}
SLA_DUE = 200
ASSIGN_TARGET = 3.0  # queries per assignment, at most
SLA_TARGET = 2.0  # time(100k) / time(1k), at most
EVENT_SAMPLES = 100


# --- Parent -----------------------------------------------------------------------------


def child_env(database: Any) -> dict[str, str]:
    env = server_env(database)
    # No Redis: the broadcast hook has no sockets to render for (not what is measured).
    env.pop("REDIS_URL", None)
    return env


def child(database: Any, *args: str, timeout: float = 1800) -> dict[str, Any]:
    result = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), "--child", *args],
        cwd=ROOT,
        env=child_env(database),
        check=False,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise RuntimeError(f"bench/ops.py --child {' '.join(args)} failed")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return dict(json.loads(lines[-1]))


class Server:
    """A child that keeps its database and answers one JSON line per command line."""

    def __init__(self, database: Any) -> None:
        self.process = subprocess.Popen(
            [PYTHON, str(Path(__file__).resolve()), "--child", "serve"],
            cwd=ROOT,
            env=child_env(database),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"ops server died on {command!r}")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_assignment(databases: Databases, sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    results = []
    for agents, backlog in sizes:
        for hooks in ("off", "on"):
            database = databases.new(f"ops_assign_{agents}_{hooks}")
            migrate(database)
            log(f"ops: assignment, {agents} agents, {backlog} waiting, claimed hooks {hooks}")
            outcome = child(
                database,
                "assign",
                "--agents",
                str(agents),
                "--backlog",
                str(backlog),
                "--hooks",
                hooks,
            )
            outcome.update({"agents": agents, "backlog": backlog, "hooks": hooks})
            log(
                f"ops:   {outcome['assigned']} assigned in {outcome['runs']} runs, "
                f"{outcome['per_assignment']:.3f} queries per assignment; "
                f"an opening hands out in +{outcome['opened_queries']} queries "
                f"({outcome['opening_queries']} vs {outcome['opening_queries_manual']}), "
                f"resolved path {outcome['resolved_queries']} queries"
            )
            results.append(outcome)
    return results


def run_sla(databases: Databases, sizes: dict[str, int], rounds: int) -> dict[str, Any]:
    servers: dict[str, Server] = {}
    seeded: dict[str, Any] = {}
    try:
        for label, count in sizes.items():
            database = databases.new(f"ops_sla_{label}")
            migrate(database)
            servers[label] = Server(database)
            log(f"ops: SLA sweep, seeding {count} active escalations ({label})")
            seeded[label] = servers[label].ask(f"sla-seed {count} {SLA_DUE}")
            log(f"ops:   seeded in {seeded[label]['seconds']:.1f}s")
        plans = {label: server.ask("sla-plan") for label, server in servers.items()}
        for line in plans["large"]["plan"]:
            log(f"    PLAN {line}")
        times: dict[str, list[float]] = {label: [] for label in servers}
        queries: dict[str, int] = {}
        for index in range(rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            for label in order:
                answer = servers[label].ask("sla-round")
                if answer["breached"] != SLA_DUE:
                    raise RuntimeError(f"{label}: breached {answer['breached']} of {SLA_DUE}")
                times[label].append(answer["seconds"])
                queries[label] = answer["queries"]
        ratios = [
            large / small for large, small in zip(times["large"], times["small"], strict=True)
        ]
        result = {
            "sizes": sizes,
            "due": SLA_DUE,
            "median_ratio": statistics.median(ratios),
            "min_ratio": min(ratios),
            "max_ratio": max(ratios),
            "small_ms": statistics.median(times["small"]) * 1000,
            "large_ms": statistics.median(times["large"]) * 1000,
            "queries": queries,
            "plan": plans["large"]["plan"],
            "index_scan": plans["large"]["index_scan"],
            "rows_read": plans["large"].get("rows_read"),
            "target": SLA_TARGET,
        }
        log(
            f"ops: SLA sweep of {SLA_DUE} due rows: {result['large_ms']:.0f} ms over "
            f"{sizes['large']} vs {result['small_ms']:.0f} ms over {sizes['small']}, "
            f"ratio {result['median_ratio']:.2f}; queries {queries}"
        )
        return result
    finally:
        for server in servers.values():
            server.close()


def run(databases: Databases, *, quick: bool = False) -> dict[str, Any]:
    return {
        "assignment": run_assignment(databases, QUICK_ASSIGN_SIZES if quick else ASSIGN_SIZES),
        "sla": run_sla(databases, QUICK_SLA_SIZES if quick else SLA_SIZES, 3 if quick else 8),
    }


def mark(value: float, target: float) -> str:
    return "PASS" if value <= target else "BELOW"


def rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows in bench/run.py's format."""
    ops = outcome.get("ops")
    if not ops:
        return []
    db = outcome["database"]
    out: list[dict[str, Any]] = []
    alone = [r for r in ops["assignment"] if r["hooks"] == "off"]
    hooked = [r for r in ops["assignment"] if r["hooks"] == "on"]
    for label, results in (("assignment alone", alone), ("assignment + claimed hooks", hooked)):
        for r in results:
            out.append(
                {
                    "benchmark": f"{label}: queries/assignment, {r['agents']} agents "
                    f"{r['backlog'] // 1000}k",
                    "database": db,
                    "ratio": r["per_assignment"],
                    "range": "-",
                    "target": f"≤ {ASSIGN_TARGET}" if label == "assignment alone" else "—",
                    "mark": mark(r["per_assignment"], ASSIGN_TARGET)
                    if label == "assignment alone"
                    else "info",
                    "detail": (
                        f"{r['queries']} queries, {r['assigned']} assigned in {r['runs']} runs, "
                        f"{r['ms_per_assignment']:.2f} ms each; one escalation opening "
                        f"handed out: +{r['opened_queries']} queries "
                        f"({r['opening_queries']} in all), one resolution: "
                        f"{r['resolved_queries']} queries"
                    ),
                }
            )
    if len(alone) == 2:
        growth = alone[1]["per_assignment"] / alone[0]["per_assignment"]
        events = {(r["opened_queries"], r["resolved_queries"]) for r in alone}
        out.append(
            {
                "benchmark": "assignment: queries/assignment large / small",
                "database": db,
                "ratio": growth,
                "range": "-",
                "target": "≤ 1.0",
                "mark": "PASS" if growth <= 1.0 and len(events) == 1 else "BELOW",
                "detail": "event paths (opening, resolution): "
                + ", ".join(f"{o}/{r} queries" for o, r in sorted(events)),
            }
        )
    sla = ops["sla"]
    sizes = sla["sizes"]
    out.append(
        {
            "benchmark": f"sla_sweep {sizes['large'] // 1000}k / {sizes['small'] // 1000}k "
            f"active, {sla['due']} due: time",
            "database": db,
            "ratio": sla["median_ratio"],
            "range": f"{sla['min_ratio']:.2f}..{sla['max_ratio']:.2f}",
            "target": f"≤ {sla['target']}",
            "mark": mark(sla["median_ratio"], sla["target"]) if sla["index_scan"] else "BELOW",
            "detail": (
                f"{sla['large_ms']:.0f} vs {sla['small_ms']:.0f} ms, queries "
                f"{sla['queries']['large']} vs {sla['queries']['small']}, "
                f"index scan {'yes' if sla['index_scan'] else 'NO'}"
                + (f", rows read {sla['rows_read']}" if sla.get("rows_read") is not None else "")
            ),
        }
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="use local PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child_main(args.child)
    databases = Databases(postgres_url_from(args.postgres))
    try:
        outcome = {"database": databases.kind, "ops": run(databases, quick=args.quick)}
    finally:
        databases.cleanup(keep=args.keep)
    for row in rows(outcome):
        print(f"{row['mark']:5}  {row['benchmark']}: {row['ratio']:.3f} ({row['detail']})")
    print(json.dumps(outcome))
    return 0


# --- Child (Django configured for one bench database) --------------------------------------


def child_main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
    import django

    django.setup()
    command = argv[0]
    if command == "assign":
        options = argparse.ArgumentParser()
        options.add_argument("--agents", type=int, required=True)
        options.add_argument("--backlog", type=int, required=True)
        options.add_argument("--hooks", choices=["on", "off"], default="on")
        parsed = options.parse_args(argv[1:])
        print(json.dumps(assign_bench(parsed.agents, parsed.backlog, parsed.hooks == "on")))
        return 0
    if command == "serve":
        state: dict[str, Any] = {}
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "sla-seed":
                answer = sla_seed(state, int(words[1]), int(words[2]))
            elif words[0] == "sla-plan":
                _make_due(state)
                answer = sla_plan()
            elif words[0] == "sla-round":
                answer = sla_round(state)
            else:
                answer = {"error": f"unknown command {words[0]!r}"}
            print(json.dumps(answer), flush=True)
        return 0
    raise SystemExit(f"unknown child command {command!r}")


def _seed_threads(count: int, *, messages: bool = False, batch: int = 2000) -> list[Any]:
    """``count`` human-owned threads waiting on a person, each with its own customer
    (and with ``messages``, the customer's first message)."""
    from threads.models import Customer, Message, Responder, Thread, ThreadStatus

    customers = Customer.objects.bulk_create(
        [Customer(name=f"Customer {n}") for n in range(count)], batch_size=batch
    )
    threads = Thread.objects.bulk_create(
        [
            Thread(
                customer=customer,
                token_hash=f"{n:064x}",
                subject=f"Question {n}",
                status=ThreadStatus.WAITING_ON_HUMAN,
                responder=Responder.HUMAN,
                last_seq=1 if messages else 0,
            )
            for n, customer in enumerate(customers)
        ],
        batch_size=batch,
    )
    if messages:
        Message.objects.bulk_create(
            [
                Message(
                    thread=thread,
                    seq=1,
                    role="user",
                    author_kind="customer",
                    author_name="Customer",
                    content="Where is my order?",
                )
                for thread in threads
            ],
            batch_size=batch,
        )
    return threads


def _seed_waiting(queue: Any, count: int, *, messages: bool = False, **fields: Any) -> list[Any]:
    from escalations.models import Escalation

    return Escalation.objects.bulk_create(
        [
            Escalation(thread=thread, queue=queue, source="tool", reason="bench", **fields)
            for thread in _seed_threads(count, messages=messages)
        ],
        batch_size=2000,
    )


def _capture() -> Any:
    """CaptureQueriesContext on an emptied log: the log keeps 9 000 queries at most, and
    a full one would make every later capture look empty."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()
    return CaptureQueriesContext(connection)


def _counting(module: Any, name: str, samples: list[int]) -> Any:
    """Wrap ``module.name`` (an assignment run) to record its query count."""
    real = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        with _capture() as ctx:
            result = real(*args, **kwargs)
        if result:
            samples.append(len(ctx.captured_queries))
        return result

    setattr(module, name, counted)
    return real


def assign_bench(agents: int, backlog: int, hooks: bool) -> dict[str, Any]:
    """Drain ``backlog`` escalations with ``agents`` online agents of capacity 5."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from escalations import routing, services
    from escalations.models import (
        AgentPresence,
        AgentProfile,
        Escalation,
        EscalationStatus,
        Queue,
        QueueMember,
    )

    if not hooks:
        services.claimed_hooks[:] = []
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"agent{n}", is_staff=True) for n in range(agents)]
    )
    AgentProfile.objects.bulk_create([AgentProfile(user=u, max_open=CAPACITY) for u in users])
    presence = AgentPresence.objects.filter(user__in=users)
    AgentPresence.objects.bulk_create(
        [AgentPresence(user=u, status="online", last_seen_at=timezone.now()) for u in users]
    )
    queue = Queue.objects.create(name="Bench", is_default=True, auto_assign=True)
    QueueMember.objects.bulk_create([QueueMember(queue=queue, user=u) for u in users])
    _seed_waiting(queue, backlog)

    def finish_all() -> None:
        # The agents finish what they hold (not measured, no triggers).
        Escalation.objects.filter(status=EscalationStatus.CLAIMED).update(
            status=EscalationStatus.RESOLVED, resolved_at=timezone.now()
        )

    queries = assigned = runs = 0
    seconds = 0.0
    while True:
        presence.update(last_seen_at=timezone.now())  # heartbeats
        started = time.perf_counter()
        with _capture() as ctx:
            got = routing.assign_backlog(queue_ids=[queue.pk]).get("Bench", 0)
        seconds += time.perf_counter() - started
        queries += len(ctx.captured_queries)
        runs += 1
        if not got:
            break
        assigned += got
        finish_all()
    if assigned != backlog:
        raise RuntimeError(f"assigned {assigned} of {backlog}")

    # One escalation opening while an agent has room: handed out inside the opening
    # transaction. Its cost is the opening's queries minus those of the same opening in
    # the queue with auto-assignment off; a queue run after the commit would be a miss.
    openings: dict[bool, list[int]] = {False: [], True: []}
    late_runs: list[int] = []
    real = _counting(routing, "assign_queue", late_runs)
    for auto in (False, True):
        Queue.objects.filter(pk=queue.pk).update(auto_assign=auto)
        for thread in _seed_threads(EVENT_SAMPLES):
            presence.update(last_seen_at=timezone.now())
            with _capture() as ctx:
                escalation, _ = services.escalation_open(
                    thread=thread, source="tool", reason="bench", notify_customer=False
                )
            openings[auto].append(len(ctx.captured_queries))
            if auto and escalation.status != EscalationStatus.CLAIMED:
                raise RuntimeError("an opening with an agent free was not handed out")
            finish_all()
    routing.assign_queue = real  # type: ignore[assignment]
    if late_runs:
        raise RuntimeError(f"{len(late_runs)} openings were handed out after the commit")
    # One resolution freeing a slot while escalations wait: the on-commit assign_agent run.
    resolved: list[int] = []
    _counting(routing, "assign_agent", resolved)
    _seed_waiting(queue, agents * CAPACITY + EVENT_SAMPLES)
    routing.assign_backlog(queue_ids=[queue.pk])
    for _ in range(EVENT_SAMPLES):
        presence.update(last_seen_at=timezone.now())
        held = Escalation.objects.filter(status=EscalationStatus.CLAIMED).select_related(
            "claimed_by"
        )[0]
        services.escalation_resolve(escalation=held, user=held.claimed_by)
    if len(resolved) != EVENT_SAMPLES:
        raise RuntimeError(f"resolutions handed out work {len(resolved)} times")
    return {
        "assigned": assigned,
        "runs": runs,
        "queries": queries,
        "per_assignment": queries / assigned,
        "ms_per_assignment": seconds * 1000 / assigned,
        "opened_queries": max(openings[True]) - max(openings[False]),
        "opened_queries_min": min(openings[True]) - min(openings[False]),
        "opening_queries": max(openings[True]),
        "opening_queries_manual": max(openings[False]),
        "resolved_queries": max(resolved),
        "resolved_queries_min": min(resolved),
        "claimed_hooks": [getattr(h, "__qualname__", repr(h)) for h in services.claimed_hooks],
    }


def sla_seed(state: dict[str, Any], count: int, due: int) -> dict[str, Any]:
    """``count`` active escalations with a running first-response clock; ``due`` of them
    past due, the rest due tomorrow."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from escalations.models import Queue, SLAPolicy, SLATarget

    started = time.perf_counter()
    policy = SLAPolicy.objects.create(name="Bench")
    for priority in ("low", "normal", "high", "urgent"):
        SLATarget.objects.create(
            policy=policy,
            priority=priority,
            first_response_seconds=3600,
            next_response_seconds=1800,
        )
    queue = Queue.objects.create(
        name="Bench", is_default=True, auto_assign=False, sla_policy=policy
    )
    now = timezone.now()
    later = now + timedelta(days=1)
    escalations = _seed_waiting(
        queue,
        count,
        messages=True,
        sla_target="first_response",
        sla_started_at=now,
        sla_due_at=later,
        sla_check_at=later - timedelta(hours=4),
    )
    state["due"] = [e.pk for e in escalations[:: max(count // due, 1)][:due]]
    state["threads"] = [e.thread_id for e in escalations[:: max(count // due, 1)][:due]]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"seconds": time.perf_counter() - started, "count": count, "due": len(state["due"])}


def _make_due(state: dict[str, Any]) -> Any:
    from datetime import timedelta

    from django.utils import timezone

    from escalations.models import Escalation, SLABreach
    from threads.models import Thread

    now = timezone.now()
    past = now - timedelta(minutes=1)
    SLABreach.objects.filter(escalation_id__in=state["due"]).delete()
    Escalation.objects.filter(pk__in=state["due"]).update(
        sla_target="first_response",
        sla_check_at=past,
        sla_due_at=past,
        priority="normal",
        sla_breached_at=None,
    )
    Thread.objects.filter(pk__in=state["threads"]).update(priority="normal")
    return now


def sla_round(state: dict[str, Any]) -> dict[str, Any]:

    from escalations.sla import sla_sweep

    now = _make_due(state)
    started = time.perf_counter()
    with _capture() as ctx:
        counts = sla_sweep(now=now)
    return {
        "seconds": time.perf_counter() - started,
        "queries": len(ctx.captured_queries),
        **counts,
    }


def sla_plan() -> dict[str, Any]:
    """The plan of the sweep's batch query (PostgreSQL: run, with the rows it read)."""
    import re

    from django.db import connection, transaction
    from django.utils import timezone

    from escalations.sla import due_batch

    with transaction.atomic():
        sql, params = due_batch(timezone.now()).query.sql_with_params()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                plan = [row[0] for row in cursor.fetchall()]
            else:
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                plan = [" ".join(str(col) for col in row) for row in cursor.fetchall()]
        transaction.set_rollback(True)
    text = "\n".join(plan)
    rows_read = None
    match = re.search(r"escalation_sla_check_idx.*?actual time=[\d.]+\.\.[\d.]+ rows=(\d+)", text)
    if match:
        rows_read = int(match.group(1))
    return {
        "plan": plan,
        "sql": sql,
        "index_scan": "escalation_sla_check_idx" in text,
        "rows_read": rows_read,
    }


if __name__ == "__main__":
    sys.exit(main())
