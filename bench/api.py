"""Write path under gunicorn: a customer message POST and a staff reply POST, each
against the bare authenticated DRF POST (``/api/v1/bench/bare/``, bench settings only).

The bare endpoint goes through the same middleware, DRF parser, exception handler and
staff Token authentication (one indexed token lookup), and writes nothing: it is the floor
cost of "an authenticated JSON POST" on this server. The ratio message/bare is therefore
the share of throughput the message write path keeps.

    python bench/api.py              # SQLite (temp file)
    python bench/api.py --postgres   # PostgreSQL (a dedicated database, dropped after)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from benchlib import (
    Database,
    Databases,
    Gunicorn,
    Scenario,
    auth_header,
    interleaved,
    load_generator,
    log,
    migrate,
    postgres_url_from,
    request,
    run_seed,
)

BARE_PATH = "/api/v1/bench/bare/"
CONTENT = "Hello, my order #4711 has not arrived yet. Could you check where it is, please?"
TARGETS = {
    "message_post": (0.25, 0.15),
    "staff_reply": (None, None),
    "message_post_c1": (None, None),
}


def inspect_queries(
    database: Database, staff: str, thread: list[str], owned: list[str]
) -> dict[str, Any]:
    """The SQL of one request of each endpoint (test client, same database)."""
    thread_id, token = thread
    spec = [
        {
            "name": "bare",
            "method": "POST",
            "path": BARE_PATH,
            "headers": auth_header(f"Token {staff}"),
            "body": {"content": CONTENT},
        },
        {
            "name": "message_post",
            "method": "POST",
            "path": f"/api/v1/threads/{thread_id}/messages/",
            "headers": auth_header(f"Bearer {token}"),
            "body": {"content": CONTENT},
        },
        {
            "name": "staff_reply",
            "method": "POST",
            "path": f"/api/v1/desk/threads/{owned[0]}/reply/",
            "headers": auth_header(f"Token {staff}"),
            "body": {"content": CONTENT},
        },
    ]
    return run_seed(database, "inspect", json.dumps(spec))


def run(
    databases: Databases,
    *,
    rounds: int = 12,
    seconds: float = 2.0,
    connections: int = 4,
    threads: int = 1000,
    replied: int = 200,
    use_wrk: bool | None = None,
) -> dict[str, Any]:
    database = databases.new("api")
    log(f"api: migrating {databases.kind} database")
    migrate(database)
    log(f"api: creating {threads} + {replied} threads through the services")
    seeded = run_seed(database, "api", "--threads", str(threads), "--replied", str(replied))
    staff = seeded["staff_token"]
    customer_threads: list[list[str]] = seeded["threads"]
    owned_threads: list[list[str]] = seeded["replied"]
    queries = inspect_queries(database, staff, customer_threads[-1], owned_threads[-1])
    for name, info in queries.items():
        log(f"api: {name} -> {info['status']}, {len(info['queries'])} queries")
        for sql in info["queries"]:
            log(f"    {sql[:160]}")

    with Gunicorn(database, workers=2) as server:
        bare = Scenario(
            "bare",
            server.port,
            "POST",
            [(BARE_PATH, auth_header(f"Token {staff}"))],
            body={"content": CONTENT},
            expect=201,
        )
        message = Scenario(
            "message_post",
            server.port,
            "POST",
            [
                (f"/api/v1/threads/{tid}/messages/", auth_header(f"Bearer {tok}"))
                for tid, tok in customer_threads
            ],
            body={"content": CONTENT},
            expect=201,
        )
        reply = Scenario(
            "staff_reply",
            server.port,
            "POST",
            [
                (f"/api/v1/desk/threads/{tid}/reply/", auth_header(f"Token {staff}"))
                for tid, _ in owned_threads
            ],
            body={"content": CONTENT},
            expect=201,
        )
        # One connection: no overlap between requests, so latency rather than throughput
        # under load (and every SQLite connection closed is the last one open).
        bare_1 = dataclasses.replace(bare, name="bare_c1", connections=1)
        message_1 = dataclasses.replace(message, name="message_post_c1", connections=1)
        for scenario in (bare, message, reply):
            path, headers = scenario.targets[0]
            status, body = request(server.port, "POST", path, headers=headers, body=scenario.body)
            if status != scenario.expect:
                raise RuntimeError(f"{scenario.name}: {status} {body}\n{server.log_tail()}")
        with load_generator(connections, use_wrk) as load:
            log(f"api: {rounds} rounds x {seconds:.0f}s per endpoint, {load.tool}, c={connections}")
            comparisons = interleaved(
                load,
                [
                    ("message_post", message, bare),
                    ("staff_reply", reply, bare),
                    ("message_post_c1", message_1, bare_1),
                ],
                rounds=rounds,
                seconds=seconds,
            )
            tool = load.tool
    results = []
    for comparison in comparisons:
        row = comparison.as_dict()
        sqlite_target, postgres_target = TARGETS[comparison.name]
        row["target"] = postgres_target if databases.kind == "postgres" else sqlite_target
        row["connections"] = 1 if comparison.name.endswith("_c1") else connections
        row["queries"] = len(queries[comparison.name.removesuffix("_c1")]["queries"])
        row["baseline_queries"] = len(queries["bare"]["queries"])
        results.append(row)
    return {
        "database": databases.kind,
        "tool": tool,
        "connections": connections,
        "workers": 2,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--replied", type=int, default=200)
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    databases = Databases(postgres_url_from(args.postgres))
    try:
        outcome = run(
            databases,
            rounds=args.rounds,
            seconds=args.seconds,
            connections=args.connections,
            threads=args.threads,
            replied=args.replied,
            use_wrk=False if args.python_client else None,
        )
    finally:
        databases.cleanup(keep=args.keep)
    print(json.dumps(outcome, indent=2))


if __name__ == "__main__":
    main()
