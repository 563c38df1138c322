"""Desk thread list and admin changelists at scale: ``GET /api/v1/desk/threads/`` and the
Django admin's thread, escalation, approval-draft, human-request and message
changelists with 100 000 threads against the same requests with 1 000, two servers side
by side (one database each, same data mix), measured in alternating rounds. The ratio is
time(100k) / time(1k) per request.

Also prints the SQL of each request (captured with the test client on both databases)
and checks it: the same number of queries at both sizes, no OFFSET deeper than a page,
no unbounded COUNT (a paginator's exact total), with the plans on the 100k database.

    python bench/desk_list.py              # SQLite
    python bench/desk_list.py --postgres   # PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from benchlib import (
    Databases,
    Gunicorn,
    Headers,
    Scenario,
    auth_header,
    cookie_header,
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

# The desk list (staff token): the first page, two filters, and page 11.
DESK_VARIANTS: dict[str, str | None] = {
    "first_page": LIST_PATH,
    "status_open": f"{LIST_PATH}?status=open",
    "priority_urgent": f"{LIST_PATH}?priority=urgent",
    "deep_page": None,  # page DEEP_PAGES + 1, found by following `next`
}
# The admin changelists (a superuser's session), first pages as a supervisor opens them.
ADMIN_VARIANTS = {
    "threads": "/admin/threads/thread/",
    "threads_open": "/admin/threads/thread/?status__exact=open",
    "escalations": "/admin/escalations/escalation/",
    "approval_drafts": "/admin/approvals/approvaldraft/",
    "human_requests": "/admin/escalations/humanrequest/",
    "messages": "/admin/threads/message/",
}


@dataclass
class Variant:
    name: str
    label: str
    paths: dict[str, str]  # per size
    headers: dict[str, Headers]  # per size


def follow_next(port: int, headers: Headers, path: str, pages: int) -> str:
    """The path of the page reached by following ``next`` ``pages`` times from ``path``."""
    for _ in range(pages):
        status, body = request(port, "GET", path, headers=headers)
        if status != 200 or not isinstance(body, dict) or not body.get("next"):
            raise RuntimeError(f"cannot follow next from {path}: {status}")
        parts = urlsplit(body["next"])
        path = f"{parts.path}?{parts.query}"
    return path


def check_page(port: int, variant: Variant, size: str) -> None:
    """One request of ``variant``: a 200 with rows (a JSON page, or an admin changelist)."""
    path, headers = variant.paths[size], variant.headers[size]
    status, body = request(port, "GET", path, headers=headers)
    # A JSON page with results, or an admin changelist with its table of rows.
    ok = bool(body.get("results")) if isinstance(body, dict) else 'id="result_list"' in str(body)
    if status != 200 or not ok:
        raise RuntimeError(f"{size} {variant.name}: {status} {str(body)[:300]}")


def run(
    databases: Databases,
    *,
    small: int = 1_000,
    large: int = 100_000,
    rounds: int = 8,
    seconds: float = 1.0,
    admin_seconds: float = 2.0,
    connections: int = 4,
    use_wrk: bool | None = None,
    parts: tuple[str, ...] = ("desk", "admin"),
) -> dict[str, Any]:
    """The lists of ``parts`` (desk, admin) at both sizes at both sizes. ``seconds`` per round and request for the desk list,
    ``admin_seconds`` for the admin changelists (pages of 100 rows, rendered by Django's
    templates: a few requests per second on two workers, so a round needs longer to
    count more than a handful)."""
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
    staff = {label: auth_header(f"Token {seeded[label]['staff_token']}") for label in sizes}
    admin = {label: cookie_header(seeded[label]["admin_cookies"]) for label in sizes}

    servers = {label: Gunicorn(database, workers=2, name=label) for label, database in dbs.items()}
    try:
        for server in servers.values():
            server.start()
        variants: list[Variant] = []
        if "desk" in parts:
            variants += [
                Variant(
                    name,
                    f"desk list {name}",
                    {
                        label: path or follow_next(server.port, staff[label], LIST_PATH, DEEP_PAGES)
                        for label, server in servers.items()
                    },
                    staff,
                )
                for name, path in DESK_VARIANTS.items()
            ]
        if "admin" in parts:
            variants += [
                Variant(
                    f"admin_{name}",
                    f"admin {name.replace('_', ' ')}",
                    dict.fromkeys(sizes, path),
                    admin,
                )
                for name, path in ADMIN_VARIANTS.items()
            ]
        for variant in variants:
            for label, server in servers.items():
                check_page(server.port, variant, label)

        queries: dict[str, dict[str, Any]] = {}
        for label in sizes:
            spec = [
                {
                    "name": v.name,
                    "method": "GET",
                    "path": v.paths[label],
                    "headers": v.headers[label],
                    "explain": label == "large",
                }
                for v in variants
            ]
            queries[label] = run_seed(dbs[label], "inspect", json.dumps(spec))
        for name, info in queries["large"].items():
            log(
                f"desk list, {large} threads, {name}: {info['status']}, "
                f"{len(info['queries'])} queries ({len(queries['small'][name]['queries'])} "
                f"at {small}), largest OFFSET={info['max_offset']}, "
                f"COUNT={'yes' if info['has_count'] else 'no'}, "
                f"capped COUNT={'yes' if info['capped_count'] else 'no'}, "
                f"unbounded COUNT={'yes' if info['unbounded_count'] else 'no'}, "
                f"DISTINCT={'yes' if info['has_distinct'] else 'no'}"
            )
            for sql in info["queries"]:
                log(f"    SQL  {sql}")
            for line in info["plan"]:
                log(f"    PLAN {line}")

        pairs: dict[bool, list[tuple[str, Scenario, Scenario]]] = {False: [], True: []}
        for variant in variants:
            per_size = {
                label: Scenario(
                    f"{variant.name}_{label}",
                    servers[label].port,
                    "GET",
                    [(variant.paths[label], variant.headers[label])],
                    expect=200,
                )
                for label in sizes
            }
            # Throughput ratio small/large is the time ratio large/small.
            is_admin = variant.name.startswith("admin_")
            pairs[is_admin].append((variant.name, per_size["small"], per_size["large"]))
        with load_generator(connections, use_wrk) as load:
            log(f"desk list: {rounds} rounds x {seconds:.0f}s per request, {load.tool}")
            comparisons = []
            if pairs[False]:
                comparisons += interleaved(load, pairs[False], rounds=rounds, seconds=seconds)
            if pairs[True]:
                log(f"admin: {rounds} rounds x {admin_seconds:.0f}s per request, {load.tool}")
                comparisons += interleaved(load, pairs[True], rounds=rounds, seconds=admin_seconds)
            tool = load.tool
    finally:
        for server in servers.values():
            server.stop()

    labels = {variant.name: variant.label for variant in variants}
    results = []
    for comparison in comparisons:
        info = queries["large"][comparison.name]
        results.append(
            {
                "name": comparison.name,
                "label": labels[comparison.name],
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
                "queries_small": len(queries["small"][comparison.name]["queries"]),
                "max_offset": info["max_offset"],
                "has_count": info["has_count"],
                "capped_count": info["capped_count"],
                "unbounded_count": info["unbounded_count"],
                "has_distinct": info["has_distinct"],
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
    parser.add_argument("--admin-seconds", type=float, default=2.0)
    parser.add_argument("--parts", default="desk,admin", help="desk, admin or both")
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
            admin_seconds=args.admin_seconds,
            parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
            connections=args.connections,
            use_wrk=False if args.python_client else None,
        )
    finally:
        databases.cleanup(keep=args.keep)
    print(json.dumps(outcome, indent=2))


if __name__ == "__main__":
    main()
