"""AI turns end to end: reply latency, turn throughput, prompt size of a long thread.

The model is ``tests/llm_server.py`` run as a process (a scripted OpenAI-compatible
server; ``echo`` mode answers a confident final answer), reached through the real
``openai`` provider (``SUPPORTDESK_LLM=openai``, ``OPENAI_BASE_URL``). Three figures,
each a ratio of two things measured in the same run:

- **latency** (SQLite; ``make run``'s set-up: daphne ``runserver --noreload``, one
  ``agent_worker`` with its default poll interval, a model answering after 1 s): a
  customer opens a thread with a message (``POST /api/v1/threads/``) and the bench polls
  the database every 10 ms until the AI's reply is stored; over the time of a direct
  ``openai`` SDK call to the same server (the model's own time: 1 s plus the SDK's
  overhead), in alternating rounds. Median of the round ratios; target ≤ 1.25.
- **throughput** (PostgreSQL; a model answering at once): 1 000 turns queued through
  ``customer_message_create`` while no worker runs, then drained by 2 ``agent_worker``
  processes: turns/s over the rate of plain ``message_create`` calls (1 000, one
  process, measured before and after the drain). Target ≥ 0.15.
- **tokens**: prompt tokens of the turn that writes message 500 of one thread over the
  turn that writes message 10 (the ``ModelCall`` rows, i.e. the server's ``usage``).
  Target 0.8..1.2.

    python bench/turns.py               # SQLite: latency and tokens
    python bench/turns.py --postgres    # PostgreSQL: throughput and tokens
    python bench/turns.py --both        # both (about 4 minutes)
    python bench/turns.py --parts latency,throughput,tokens   # any part on any database
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from benchlib import (
    DEFAULT_POSTGRES_URL,
    HOST,
    PYTHON,
    ROOT,
    Database,
    Databases,
    PostgresDatabase,
    Service,
    SqliteDatabase,
    free_port,
    log,
    machine_cpu_seconds,
    migrate,
    postgres_url_from,
    process_cpu_seconds,
    request,
    run_seed,
    server_env,
)

MODEL = "gpt-test"  # a model the scripted server lists
QUESTION = "Hi, I ordered a tent last week and it has not arrived yet. Where is my order #4711?"
# Parts run by default on each database: the targets are latency on SQLite (the
# ``make run`` set-up) and throughput on PostgreSQL (the production database).
DEFAULT_PARTS = {"sqlite": ["latency", "tokens"], "postgres": ["throughput", "tokens"]}
PARTS = ("latency", "throughput", "tokens")
# (low, high) bounds of each figure per database; None: informational there.
TARGETS: dict[str, dict[str, tuple[float | None, float | None] | None]] = {
    "latency": {"sqlite": (None, 1.25), "postgres": None},
    "throughput": {"sqlite": None, "postgres": (0.15, None)},
    "tokens": {"sqlite": (0.8, 1.2), "postgres": (0.8, 1.2)},
}
POLL_SECONDS = 0.01  # the latency part's database poll
TOKEN_MARKS = (10, 20, 50, 100, 200, 500)


def turns_env(database: Database, model_url: str) -> dict[str, str]:
    """The server's environment with the AI on the scripted model server. The channel
    layer is the in-memory one, as with ``make run`` (no REDIS_URL)."""
    env = server_env(
        database,
        SUPPORTDESK_LLM="openai",
        OPENAI_BASE_URL=model_url,
        OPENAI_API_KEY="bench",
        SUPPORTDESK_MODEL=MODEL,
    )
    env.pop("REDIS_URL", None)
    return env


def model_server(delay: float) -> tuple[Service, str]:
    """``tests/llm_server.py`` in echo mode; returns the service and its base URL."""
    server = Service(
        "model-server",
        [
            PYTHON,
            str(ROOT / "tests" / "llm_server.py"),
            "--host",
            HOST,
            "--port",
            "0",
            "--delay",
            str(delay),
            "--mode",
            "echo",
        ],
        {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        pipe_stdout=True,
    ).start()
    url = server.first_line()
    if not url.startswith(f"http://{HOST}:"):
        server.stop()
        raise RuntimeError(f"unexpected model server address {url!r}")
    return server, url


def agent_worker(env: dict[str, str], name: str = "agent-worker") -> tuple[Service, float, float]:
    """``manage.py agent_worker`` with its defaults; returns it, its start-up seconds and
    the poll interval it reports."""
    worker = Service(name, [PYTHON, "manage.py", "agent_worker"], env).start()
    startup = worker.wait_for_log("polling every")
    match = re.search(r"polling every ([0-9.]+)s", worker.log_tail(100_000))
    return worker, startup, float(match.group(1)) if match else float("nan")


class Poller:
    """Direct, cheap reads of the bench database from this process (one connection,
    autocommit, indexed lookups), for the turn tables named by ``seed.py turns-setup``."""

    def __init__(self, database: Database, setup: dict[str, Any]) -> None:
        self.turns = setup["turn_table"]
        self.uuid_hex = bool(setup["uuid_hex"])
        self.conn: Any
        if isinstance(database, SqliteDatabase):
            self.conn = sqlite3.connect(
                str(database.path), timeout=20, isolation_level=None, check_same_thread=False
            )
            self.mark = "?"
        else:
            import psycopg

            assert isinstance(database, PostgresDatabase)
            self.conn = psycopg.connect(database.url, autocommit=True, connect_timeout=10)
            self.mark = "%s"

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.conn.execute(sql.replace("?", self.mark), params)
        return cursor.fetchone()

    def turn_state(self, thread_id: str) -> tuple[str, str] | None:
        """(status, outcome) of the thread's turn; its reply, if any, commits with done."""
        key = uuid.UUID(thread_id).hex if self.uuid_hex else thread_id
        row = self._one(f'SELECT status, outcome FROM "{self.turns}" WHERE thread_id = ?', [key])
        return (str(row[0]), str(row[1])) if row else None

    def unfinished(self) -> int:
        row = self._one(
            f"SELECT COUNT(*) FROM \"{self.turns}\" WHERE status IN ('queued', 'running')"
        )
        return int(row[0])

    def backend_pids(self) -> list[int]:
        """PostgreSQL: the server processes of the other connections to this database."""
        if self.mark != "%s":
            return []
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return [int(row[0]) for row in rows]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median_ratio": round(statistics.median(values), 3),
        "min_ratio": round(min(values), 3),
        "max_ratio": round(max(values), 3),
    }


def _ms(values: Sequence[float | None]) -> float:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean) * 1000, 1) if clean else float("nan")


# --- latency -----------------------------------------------------------------------


def direct_call(client: Any) -> float:
    """One streamed completion through the ``openai`` SDK, as the provider makes it
    (structured output, usage in the stream); returns its seconds."""
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are the customer support assistant."},
            {"role": "user", "content": QUESTION},
        ],
        response_format={"type": "json_object"},
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        for _ in stream:
            pass
    return time.perf_counter() - started


def post_and_wait(port: int, poller: Poller, index: int, timeout: float = 30.0) -> dict[str, Any]:
    """POST a new thread with a message, then poll until its AI turn is done."""
    body = {
        "customer": {"name": f"Latency {index}", "email": f"latency{index}@example.com"},
        "subject": f"Latency {index}",
        "message": QUESTION,
    }
    wall = time.time()
    started = time.perf_counter()
    status, answer = request(port, "POST", "/api/v1/threads/", body=body, timeout=timeout)
    posted = time.perf_counter() - started
    if status != 201 or not isinstance(answer, dict):
        raise RuntimeError(f"POST /api/v1/threads/ answered {status}: {str(answer)[:300]}")
    thread_id = str(answer["thread"]["id"])
    state = None
    for _ in range(int(timeout / POLL_SECONDS) + 1):
        state = poller.turn_state(thread_id)
        if state is not None and state[0] not in ("queued", "running"):
            break
        if time.perf_counter() - started > timeout:
            break
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - started
    ok = state == ("done", "reply")
    if not ok:
        log(f"turns: thread {thread_id}: turn {state} after {elapsed:.1f}s, not a reply")
    return {
        "thread": thread_id,
        "post": posted,
        "seconds": elapsed,
        "wall_start": wall,
        "detected": wall + elapsed,
        "ok": ok,
    }


def latency(database: Database, setup: dict[str, Any], *, rounds: int) -> dict[str, Any]:
    import openai

    with contextlib.ExitStack() as stack:
        model, url = model_server(1.0)
        stack.callback(model.stop)
        env = turns_env(database, url)
        port = free_port()
        web = Service(
            "runserver", [PYTHON, "manage.py", "runserver", "--noreload", f"{HOST}:{port}"], env
        ).start()
        stack.callback(web.stop)
        web.wait_for_http(port)
        worker, startup, interval = agent_worker(env)
        stack.callback(worker.stop)
        log(f"turns: daphne runserver + 1 agent_worker (up in {startup:.1f}s, polls {interval}s)")
        poller = Poller(database, setup)
        stack.callback(poller.close)
        client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=30)
        stack.callback(client.close)
        # Warm-up: the worker imports the SDK and builds the knowledge index on its first
        # turn; the server and the SDK client open their first connections.
        for index in range(2):
            post_and_wait(port, poller, -1 - index)
            direct_call(client)
        samples: list[dict[str, Any]] = []
        for index in range(rounds):
            if index % 2 == 0:
                sample = post_and_wait(port, poller, index)
                sample["direct"] = direct_call(client)
            else:
                direct = direct_call(client)
                sample = post_and_wait(port, poller, index)
                sample["direct"] = direct
            samples.append(sample)
            log(
                f"turns: latency round {index + 1}/{rounds}: POST->reply "
                f"{sample['seconds'] * 1000:.0f} ms, direct model call "
                f"{sample['direct'] * 1000:.0f} ms"
            )
        times = run_seed(database, "turn-times", env=env)["turns"]
    errors = sum(1 for s in samples if not s["ok"])
    good = [s for s in samples if s["ok"]]
    if not good:
        raise RuntimeError("no AI reply arrived")
    ratios = [s["seconds"] / s["direct"] for s in good]
    rows = [(s, times.get(s["thread"], {})) for s in good]

    def span(a: str, b: str) -> list[float | None]:
        return [t[b] - t[a] if t.get(a) and t.get(b) else None for _, t in rows]

    by_worker_model = [s["seconds"] / (t["model_ms"] / 1000) for s, t in rows if t.get("model_ms")]
    breakdown = {
        # client-measured HTTP time of the POST
        "post_ms": _ms([s["post"] for s, _ in rows]),
        # turn row committed -> claimed by the worker (its poll interval and the claim)
        "queue_ms": _ms(span("created", "started")),
        # claimed -> model request sent (routing, context, knowledge search)
        "prepare_ms": _ms(span("started", "model_start")),
        # the worker's own model call (ModelCall.latency_ms)
        "model_ms": _ms([t["model_ms"] / 1000 if t.get("model_ms") else None for _, t in rows]),
        # model answered -> reply row written (same transaction as the turn's end)
        "finish_ms": _ms(span("model_end", "reply")),
        # reply stored -> seen by the bench's 10 ms poll (commit and poll granularity)
        "notice_ms": _ms([s["detected"] - t["reply"] if t.get("reply") else None for s, t in rows]),
        "total_ms": _ms([s["seconds"] for s in good]),
        "direct_ms": _ms([s["direct"] for s in good]),
    }
    log(f"turns: latency breakdown (medians): {breakdown}")
    queue = sorted(round(v * 1000) for v in span("created", "started") if v is not None)
    log(f"turns: queue waits (ms, sorted): {queue}")
    return {
        "name": "latency",
        **_spread(ratios),
        "rounds": len(ratios),
        "ratio_vs_worker_model_call": round(statistics.median(by_worker_model), 3)
        if by_worker_model
        else None,
        "poll_interval": interval,
        "worker_startup_s": round(startup, 2),
        "breakdown": breakdown,
        "queue_ms": queue,
        "errors": errors,
    }


# --- throughput --------------------------------------------------------------------


def pid_of(service: Service) -> int:
    assert service.process is not None
    return service.process.pid


def cpu_snapshot(pids: dict[str, list[int]], poller: Poller, *, done: int) -> dict[str, Any]:
    """CPU seconds so far of the bench's processes by role, of the PostgreSQL backends
    serving the workers (every other connection to the bench database is closed while
    they run) and of the whole machine."""
    snapshot: dict[str, Any] = {"done": done, "machine": machine_cpu_seconds()}
    for role, role_pids in pids.items():
        values = [process_cpu_seconds(pid) for pid in role_pids]
        snapshot[role] = None if None in values else sum(v for v in values if v is not None)
    backends = poller.backend_pids()
    values = [process_cpu_seconds(pid) for pid in backends]
    snapshot["postgres"] = (
        sum(v for v in values if v is not None) if backends and None not in values else None
    )
    return snapshot


def cpu_per_turn(first: dict[str, Any] | None, last: dict[str, Any]) -> dict[str, Any]:
    """CPU milliseconds per turn between two snapshots, by role; the PostgreSQL backends
    count from their start (they serve only the workers); ``machine_busy`` is the share
    of all cores busy over the interval, whoever used them."""
    if first is None or last["done"] <= first["done"]:
        return {}
    turns = last["done"] - first["done"]
    out: dict[str, Any] = {}
    for role in ("workers", "model"):
        if first[role] is not None and last[role] is not None:
            out[role] = round((last[role] - first[role]) * 1000 / turns, 1)
    if last["postgres"] is not None:
        out["postgres"] = round(last["postgres"] * 1000 / last["done"], 1)
    if first["machine"] and last["machine"]:
        busy = last["machine"][0] - first["machine"][0]
        total = last["machine"][1] - first["machine"][1]
        out["machine_busy"] = round(busy / total, 2) if total else None
        out["machine_ms"] = round(busy * 1000 / turns, 1)
    return out


def throughput(
    database: Database, *, turns: int, calls: int, workers: int = 2, timeout: float = 600.0
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        model, url = model_server(0.0)
        stack.callback(model.stop)
        env = turns_env(database, url)
        log(f"turns: queueing {turns} turns through customer_message_create (no worker runs)")
        queued = run_seed(
            database, "turns-queue", "--threads", str(turns), "--baseline", "100", env=env
        )
        log(
            f"turns: {queued['queued_turns']} turns queued in {queued['queue_seconds']:.1f}s; "
            f"timing {calls} message_create calls"
        )
        before = run_seed(database, "message-rate", "--calls", str(calls), env=env)
        log(f"turns: message_create: {before['rate']:.0f}/s before the drain")
        poller = Poller(database, queued)
        stack.callback(poller.close)
        spawned = time.time()
        running: list[Service] = []
        for number in range(workers):
            worker = Service(
                f"agent-worker-{number + 1}", [PYTHON, "manage.py", "agent_worker"], env
            ).start()
            stack.callback(worker.stop)
            running.append(worker)
        pids = {"model": [pid_of(model)], "workers": [pid_of(w) for w in running]}
        left = turns
        first: dict[str, Any] | None = None  # CPU counters once the first turns are done
        next_log = time.monotonic() + 5
        for _ in range(int(timeout / 0.25) + 1):
            left = poller.unfinished()
            if first is None and left < turns:
                first = cpu_snapshot(pids, poller, done=turns - left)
            if left == 0 or time.time() - spawned > timeout:
                break
            if any(w.process is not None and w.process.poll() is not None for w in running):
                raise RuntimeError(f"an agent_worker exited:\n{running[0].log_tail()}")
            if time.monotonic() >= next_log:
                log(f"turns: {turns - left}/{turns} turns finished")
                next_log += 5
            time.sleep(0.25)
        drained = time.time()
        last = cpu_snapshot(pids, poller, done=turns - left)
        for worker in running:
            worker.stop()
        if left:
            raise RuntimeError(f"{left} turns still unfinished after {timeout:.0f}s")
        after = run_seed(database, "message-rate", "--calls", str(calls), env=env)
        log(f"turns: message_create: {after['rate']:.0f}/s after the drain")
        stats = run_seed(database, "turns-stats", env=env)
    cpu = cpu_per_turn(first, last)
    log(f"turns: CPU per turn during the drain (ms): {cpu}")
    seconds = stats["last_finished"] - stats["first_started"]
    turn_rate = turns / seconds
    wall_rate = turns / (drained - spawned)
    message_rate = statistics.mean([before["rate"], after["rate"]])
    replies = stats["by_outcome"].get("reply", 0)
    log(f"turns: {stats}")
    return {
        "name": "throughput",
        "median_ratio": round(turn_rate / message_rate, 3),
        "min_ratio": round(turn_rate / max(before["rate"], after["rate"]), 3),
        "max_ratio": round(turn_rate / min(before["rate"], after["rate"]), 3),
        "turns": turns,
        "workers": workers,
        "turns_per_s": round(turn_rate, 1),
        "turns_per_s_wall": round(wall_rate, 1),
        "message_create_per_s": round(message_rate, 1),
        "message_create_before": round(before["rate"], 1),
        "message_create_after": round(after["rate"], 1),
        "message_create_queries": len(before["queries"]),
        "model_latency_ms": round(stats["model_latency_ms"], 1),
        "per_worker": sorted(stats["turns_per_worker"].values(), reverse=True),
        "outcomes": stats["by_outcome"],
        "tasks": stats["tasks"],
        "retried": stats["attempts_over_1"],
        "cpu_ms_per_turn": cpu,
        "errors": turns - replies,
    }


# --- tokens ------------------------------------------------------------------------


def tokens(database: Database, *, messages: int, marks: Sequence[int]) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        model, url = model_server(0.0)
        stack.callback(model.stop)
        env = turns_env(database, url)
        log(f"turns: one thread grown to {messages} messages (each turn run inline)")
        result = run_seed(
            database,
            "conversation",
            "--messages",
            str(messages),
            "--marks",
            ",".join(str(m) for m in marks),
            env=env,
        )
    at = {int(k): v for k, v in result["at"].items()}
    low, high = min(at), max(at)
    for mark, info in sorted(at.items()):
        log(
            f"turns: turn writing message {mark}: {info['prompt_tokens']} prompt tokens, "
            f"{info['model_calls']} model call(s), {info['queries']} SQL statements"
        )
    for sql in at[high]["sql"]:
        log(f"    {' '.join(sql.split())[:160]}")
    ratio = at[high]["prompt_tokens"] / at[low]["prompt_tokens"]
    return {
        "name": "tokens",
        "median_ratio": round(ratio, 3),
        "min_ratio": round(ratio, 3),
        "max_ratio": round(ratio, 3),
        "low_mark": low,
        "high_mark": high,
        "prompt_tokens": {str(k): v["prompt_tokens"] for k, v in sorted(at.items())},
        "queries": {str(k): v["queries"] for k, v in sorted(at.items())},
        "seconds": round(result["seconds"], 1),
        "errors": 0,
    }


# --- the benchmark -----------------------------------------------------------------

LABELS = {
    "latency": "AI reply: POST->reply / model time",
    "throughput": "turns/s (2 workers) / message_create/s",
    "tokens": "prompt tokens: message {high} / message {low}",
}


def detail(result: dict[str, Any]) -> str:
    name = result["name"]
    if name == "latency":
        b = result["breakdown"]
        return (
            f"p50 {b['total_ms']:.0f} vs {b['direct_ms']:.0f} ms: POST {b['post_ms']:.0f}, "
            f"queue {b['queue_ms']:.0f}, prepare {b['prepare_ms']:.0f}, "
            f"model {b['model_ms']:.0f}, finish {b['finish_ms']:.0f}, "
            f"seen {b['notice_ms']:.0f} ms; poll {result['poll_interval']}s; "
            f"{result['rounds']} rounds"
            + (f", {result['errors']} errors" if result["errors"] else "")
        )
    if name == "throughput":
        cpu = result["cpu_ms_per_turn"]
        cpu_text = (
            f"; CPU/turn: workers {cpu['workers']:.1f}, postgres {cpu['postgres']:.1f}, "
            f"model server {cpu['model']:.1f} ms, machine {cpu['machine_ms']:.0f} ms "
            f"({cpu['machine_busy']:.0%} busy)"
            if {"workers", "postgres", "model", "machine_ms"} <= cpu.keys()
            else ""
        )
        return (
            f"{result['turns_per_s']:.1f} vs {result['message_create_per_s']:.0f}/s "
            f"({result['turns']} turns; message_create {result['message_create_before']:.0f} "
            f"before, {result['message_create_after']:.0f} after; wall incl. worker start-up "
            f"{result['turns_per_s_wall']:.1f}/s{cpu_text})"
            + (f", {result['errors']} not replied" if result["errors"] else "")
        )
    tokens_at = result["prompt_tokens"]
    return (
        "prompt tokens at "
        + ", ".join(f"{k}: {v}" for k, v in tokens_at.items())
        + f"; SQL per turn {result['queries'][str(result['low_mark'])]}"
        f"→{result['queries'][str(result['high_mark'])]}"
    )


def label(result: dict[str, Any]) -> str:
    return LABELS[result["name"]].format(
        low=result.get("low_mark", ""), high=result.get("high_mark", "")
    )


def run(
    databases: Databases,
    *,
    parts: Sequence[str] | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    kind = databases.kind
    parts = list(parts or DEFAULT_PARTS[kind])
    database = databases.new("turns")
    log(f"turns: migrating {kind} database")
    migrate(database)
    setup = run_seed(database, "turns-setup")
    log(f"turns: {setup['articles']} help-centre articles loaded; parts: {', '.join(parts)}")
    results: list[dict[str, Any]] = []
    for part in parts:
        started = time.monotonic()
        if part == "latency":
            result = latency(database, setup, rounds=8 if quick else 30)
        elif part == "throughput":
            n = 200 if quick else 1000
            result = throughput(database, turns=n, calls=n)
        elif part == "tokens":
            messages = 100 if quick else 500
            marks = [m for m in TOKEN_MARKS if m <= messages]
            if messages not in marks:
                marks.append(messages)
            result = tokens(database, messages=messages, marks=marks)
        else:
            raise ValueError(f"unknown part {part!r}")
        bounds = TARGETS[part][kind]
        result["low"], result["high"] = bounds if bounds else (None, None)
        result["label"] = label(result)
        result["detail"] = detail(result)
        results.append(result)
        log(
            f"turns: {result['label']} = {result['median_ratio']:.2f} "
            f"({time.monotonic() - started:.0f}s)"
        )
    return {"database": kind, "tool": "turns", "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL")
    parser.add_argument("--both", action="store_true", help="SQLite, then PostgreSQL")
    parser.add_argument("--parts", help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and turns")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",")] if args.parts else None
    if parts and any(p not in PARTS for p in parts):
        parser.error(f"--parts takes {', '.join(PARTS)}")
    if args.both:
        targets = [None, postgres_url_from(False) or DEFAULT_POSTGRES_URL]
    else:
        targets = [postgres_url_from(args.postgres)]
    outcomes = []
    for url in targets:
        databases = Databases(url)
        try:
            outcomes.append(run(databases, parts=parts, quick=args.quick))
        finally:
            databases.cleanup(keep=args.keep)
    print(json.dumps(outcomes, indent=2))


if __name__ == "__main__":
    main()
