"""Desk thread list at scale: ``GET /api/v1/desk/threads/`` with 100 000 threads against
the same request with 1 000, two servers side by side (one database each, same data mix),
measured in alternating rounds. The ratio is time(100k) / time(1k) per request.

Also prints the SQL of each request (captured with the test client on the 100k database)
and checks it has no OFFSET and no COUNT, with the plan of the page query.

    python bench/desk_list.py              # SQLite
    python bench/desk_list.py --postgres   # PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any
from urllib.parse import urlsplit

from benchlib import (
    Databases,
    Gunicorn,
    Scenario,
    interleaved,
    load_generator,
    log,
    migrate,
    postgres_url_from,
    request,
    run_seed,
)

LIST_PATH = "/api/v1/desk/threads/"
TARGET = 2.0  # time(100k) / time(1k) at most
DEEP_PAGES = 10  # how many `next` links the deep variant follows


def follow_next(port: int, auth: str, path: str, pages: int) -> str:
    """The path of the page reached by following ``next`` ``pages`` times from ``path``."""
    for _ in range(pages):
        status, body = request(port, "GET", path, headers={"Authorization": auth})
        if status != 200 or not isinstance(body, dict) or not body.get("next"):
            raise RuntimeError(f"cannot follow next from {path}: {status}")
        parts = urlsplit(body["next"])
        path = f"{parts.path}?{parts.query}"
    return path


def run(
    databases: Databases,
    *,
    small: int = 1_000,
    large: int = 100_000,
    rounds: int = 8,
    seconds: float = 1.0,
    connections: int = 4,
    use_wrk: bool | None = None,
) -> dict[str, Any]:
    sizes = {"small": small, "large": large}
    dbs = {label: databases.new(f"list_{label}") for label in sizes}
    seeded: dict[str, dict[str, Any]] = {}
    for label, database in dbs.items():
        log(f"desk list: migrating and seeding {sizes[label]} threads ({databases.kind})")
        migrate(database)
        seeded[label] = run_seed(database, "bulk", "--threads", str(sizes[label]))
        log(
            f"desk list: seeded {sizes[label]} threads in {seeded[label]['seconds']:.1f}s, "
            f"with {seeded[label]['extras']}"
        )

    variants = {
        "first_page": LIST_PATH,
        "status_open": f"{LIST_PATH}?status=open",
        "priority_urgent": f"{LIST_PATH}?priority=urgent",
        "deep_page": None,  # page DEEP_PAGES + 1, found by following `next`
    }
    servers = {label: Gunicorn(database, workers=2, name=label) for label, database in dbs.items()}
    try:
        for server in servers.values():
            server.start()
        paths: dict[str, dict[str, str]] = {}
        for label, server in servers.items():
            auth = f"Token {seeded[label]['staff_token']}"
            paths[label] = {
                name: path or follow_next(server.port, auth, LIST_PATH, DEEP_PAGES)
                for name, path in variants.items()
            }
            for name, path in paths[label].items():
                status, body = request(server.port, "GET", path, headers={"Authorization": auth})
                rows = len(body.get("results", [])) if isinstance(body, dict) else 0
                if status != 200 or rows == 0:
                    raise RuntimeError(f"{label} {name}: {status} {str(body)[:300]}")

        big = "large"
        auth_big = f"Token {seeded[big]['staff_token']}"
        spec = [
            {"name": name, "method": "GET", "path": path, "auth": auth_big, "explain": True}
            for name, path in paths[big].items()
        ]
        queries = run_seed(dbs[big], "inspect", json.dumps(spec))
        for name, info in queries.items():
            log(
                f"desk list, {large} threads, {name}: {info['status']}, {len(info['queries'])} queries, "
                f"largest OFFSET={info['max_offset']}, "
                f"COUNT={'yes' if info['has_count'] else 'no'}, "
                f"unfiltered COUNT={'yes' if info['unfiltered_count'] else 'no'}"
            )
            for sql in info["queries"]:
                log(f"    SQL  {sql}")
            for line in info["plan"]:
                log(f"    PLAN {line}")

        pairs = []
        for name in variants:
            per_size = {
                label: Scenario(
                    f"{name}_{label}",
                    servers[label].port,
                    "GET",
                    [(paths[label][name], f"Token {seeded[label]['staff_token']}")],
                    expect=200,
                )
                for label in sizes
            }
            # Throughput ratio small/large is the time ratio large/small.
            pairs.append((name, per_size["small"], per_size[big]))
        with load_generator(connections, use_wrk) as load:
            log(f"desk list: {rounds} rounds x {seconds:.0f}s per request, {load.tool}")
            comparisons = interleaved(load, pairs, rounds=rounds, seconds=seconds)
            tool = load.tool
    finally:
        for server in servers.values():
            server.stop()

    results = []
    for comparison in comparisons:
        info = queries[comparison.name]
        results.append(
            {
                "name": comparison.name,
                "median_ratio": round(comparison.median, 3),
                "min_ratio": round(comparison.spread[0], 3),
                "max_ratio": round(comparison.spread[1], 3),
                "rps_small": round(statistics.median(comparison.measured_rps), 1),
                "rps_large": round(statistics.median(comparison.baseline_rps), 1),
                "p50_ms_small": round(statistics.median(comparison.measured_p50), 2),
                "p50_ms_large": round(statistics.median(comparison.baseline_p50), 2),
                "rounds": len(comparison.ratios),
                "errors": comparison.errors,
                "queries": len(info["queries"]),
                "max_offset": info["max_offset"],
                "has_count": info["has_count"],
                "unfiltered_count": info["unfiltered_count"],
                "target": TARGET,
            }
        )
    return {
        "database": databases.kind,
        "tool": tool,
        "connections": connections,
        "workers": 2,
        "sizes": sizes,
        "extras": {label: seeded[label]["extras"] for label in sizes},
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    databases = Databases(postgres_url_from(args.postgres))
    try:
        outcome = run(
            databases,
            large=args.large,
            rounds=args.rounds,
            seconds=args.seconds,
            connections=args.connections,
            use_wrk=False if args.python_client else None,
        )
    finally:
        databases.cleanup(keep=args.keep)
    print(json.dumps(outcome, indent=2))


if __name__ == "__main__":
    main()
