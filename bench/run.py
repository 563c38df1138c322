"""Run every benchmark of bench/ and print their ratios against the targets.

    python bench/run.py                 # the embedded default (SQLite, in-memory layer),
                                        # then PostgreSQL (+ Redis) if DATABASE_URL is
                                        # postgres:// (and REDIS_URL is set)
    python bench/run.py --sqlite        # the embedded default only
    python bench/run.py --postgres      # PostgreSQL only (DATABASE_URL's server, else local)
    python bench/run.py --both --record # SQLite and PostgreSQL; append to bench/README.md
    python bench/run.py --both --only turns --record   # the AI turns benchmark alone

Each figure is a ratio of two things measured side by side in one run, so the noise of a
shared machine cancels out; no absolute time is a pass or fail. The exit status is 0
unless a benchmark could not run or a request failed (a figure below its target is
reported, not failed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import api
import desk_list
import ops
import turns
import ws
from benchlib import (
    BENCH_DIR,
    DEFAULT_POSTGRES_URL,
    ROOT,
    Databases,
    log,
    postgres_url_from,
    redis_url_from_env,
)

README = BENCH_DIR / "README.md"
PAGE_SIZE = 50  # the desk list's default page


def mark(ratio: float, target: float | None, higher_is_better: bool) -> str:
    if target is None:
        return "info"
    ok = ratio >= target if higher_is_better else ratio <= target
    return "PASS" if ok else "BELOW"


def mark_bounds(ratio: float, low: float | None, high: float | None) -> str:
    """PASS within [low, high] (either bound may be open), info when there is none."""
    if low is None and high is None:
        return "info"
    ok = (low is None or ratio >= low) and (high is None or ratio <= high)
    return "PASS" if ok else "BELOW"


def bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{low}..{high}"
    if low is not None:
        return f"≥ {low}"
    if high is not None:
        return f"≤ {high}"
    return "—"


def rows_of(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten the benchmarks' outcomes into table rows."""
    rows: list[dict[str, Any]] = []
    db = outcome["database"]
    for result in outcome.get("api", {}).get("results", []):
        target = result["target"]
        name = {
            "message_post": "message POST / bare POST",
            "staff_reply": "staff reply POST / bare POST",
            "message_post_c1": "message POST / bare POST, 1 connection",
        }[result["name"]]
        rows.append(
            {
                "benchmark": name,
                "database": db,
                "ratio": result["median_ratio"],
                "range": f"{result['min_ratio']:.2f}..{result['max_ratio']:.2f}",
                "target": f"≥ {target}" if target is not None else "—",
                "mark": mark(result["median_ratio"], target, True),
                "detail": (
                    f"{result['measured_rps']:.0f} vs {result['baseline_rps']:.0f} req/s, "
                    f"p50 {result['measured_p50_ms']:.1f} vs {result['baseline_p50_ms']:.1f} ms, "
                    f"{result['queries']} vs {result['baseline_queries']} queries"
                    + (f", {result['errors']} errors" if result["errors"] else "")
                ),
            }
        )
    desk = outcome.get("desk_list", {})
    sizes = "/".join(f"{n // 1000}k" for n in reversed(desk.get("sizes", {}).values()))
    for result in desk.get("results", []):
        # The acceptance: the same queries at both sizes, no unbounded COUNT (a
        # paginator's exact total), no OFFSET deeper than one page.
        same_queries = result.get("queries_small", result["queries"]) == result["queries"]
        sql_ok = not result["unbounded_count"] and result["max_offset"] <= PAGE_SIZE
        status = mark(result["median_ratio"], result["target"], False)
        if not (sql_ok and same_queries):
            status = "BELOW"
        if result["unbounded_count"]:
            counting = "unbounded COUNT"
        elif result["capped_count"]:
            counting = "capped COUNT"
        elif result["has_count"]:
            counting = "COUNT per thread only"
        else:
            counting = "no COUNT"
        queries = (
            f"{result['queries']} queries"
            if same_queries
            else f"{result['queries']} queries (at 1k: {result['queries_small']})"
        )
        rows.append(
            {
                "benchmark": f"{result.get('label', 'desk list ' + result['name'])}: {sizes} time",
                "database": db,
                "ratio": result["median_ratio"],
                "range": f"{result['min_ratio']:.2f}..{result['max_ratio']:.2f}",
                "target": f"≤ {result['target']}",
                "mark": status,
                "detail": (
                    f"p50 {result['p50_ms_large']:.1f} vs {result['p50_ms_small']:.1f} ms, "
                    f"{queries}, OFFSET {result['max_offset'] or 'none'}, {counting}"
                    + (", DISTINCT" if result.get("has_distinct") else "")
                    + (f", {result['errors']} errors" if result["errors"] else "")
                ),
            }
        )
    for result in outcome.get("turns", {}).get("results", []):
        single = result["min_ratio"] == result["max_ratio"]
        rows.append(
            {
                "benchmark": result["label"],
                "database": db,
                "ratio": result["median_ratio"],
                "range": "—" if single else f"{result['min_ratio']:.2f}..{result['max_ratio']:.2f}",
                "target": bounds_text(result["low"], result["high"]),
                "mark": mark_bounds(result["median_ratio"], result["low"], result["high"]),
                "detail": result["detail"],
            }
        )
    rows += ops.rows(outcome)  # queues, auto-assignment and the SLA sweep (bench/ops.py)
    rows += ws.run_rows(outcome)  # websockets: connects, fan-out, faults (bench/ws.py)
    return rows


COLUMNS = ["benchmark", "database", "ratio", "range", "target", "mark", "detail"]


def table_text(rows: list[dict[str, Any]]) -> str:
    cells = [[str(row[c]) if c != "ratio" else f"{row[c]:.2f}" for c in COLUMNS] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def table_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        values = [str(row[c]) if c != "ratio" else f"**{row[c]:.2f}**" for c in COLUMNS]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def source_version() -> str:
    """The commit measured, marked when tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {commit}" + (" with local changes" if changed else "")


def load_average() -> float | None:
    """The machine's 1-minute load average (the machine is shared: it is recorded)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def record(
    outcomes: list[dict[str, Any]], rows: list[dict[str, Any]], loads: list[float | None]
) -> None:
    tools = sorted({o[k]["tool"] for o in outcomes for k in ("api", "desk_list") if k in o})
    setups = [f"load: {', '.join(tools)}, gunicorn 2 sync workers"] if tools else []
    if any("turns" in o for o in outcomes):
        setups.append("AI turns: scripted model server, daphne runserver and agent_worker")
    setups.append("runs: " + ", ".join(o["database"] for o in outcomes))
    if all(load is not None for load in loads):
        setups.append("load average " + " → ".join(f"{load:.1f}" for load in loads))
    heading = (
        f"\n### {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC — "
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {', '.join(setups)}, {source_version()}\n\n"
    )
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    README.write_text(text.rstrip("\n") + "\n" + heading + table_markdown(rows) + "\n")
    log(f"recorded in {README.name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="the embedded default only")
    where.add_argument("--postgres", action="store_true", help="PostgreSQL only")
    where.add_argument("--both", action="store_true", help="SQLite, then PostgreSQL")
    parser.add_argument(
        "--only", choices=["api", "desk_list", "turns", "ops", "ws"], help="run one benchmark"
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--record", action="store_true", help="append to bench/README.md")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = parser.parse_args()

    # The embedded default (SQLite, in-memory layer, no Redis) always, unless --postgres;
    # PostgreSQL when DATABASE_URL names one (or --both/--postgres), with REDIS_URL's
    # Redis for its servers when that is set: the production set-up.
    env_postgres = postgres_url_from(False)
    postgres = env_postgres or (DEFAULT_POSTGRES_URL if args.both or args.postgres else None)
    targets: list[Databases] = []
    if not args.postgres:
        targets.append(Databases(None))
    if postgres and not args.sqlite:
        targets.append(Databases(postgres, redis_url=redis_url_from_env()))
    elif redis_url_from_env() and not args.sqlite:
        log("REDIS_URL is set but DATABASE_URL is not postgres://: Redis runs with PostgreSQL only")
    use_wrk = False if args.python_client else None
    benchmarks: dict[str, Callable[[Databases], dict[str, Any]]] = {
        "api": lambda dbs: api.run(
            dbs,
            rounds=3 if args.quick else 12,
            seconds=2.0,
            use_wrk=use_wrk,
        ),
        "desk_list": lambda dbs: desk_list.run(
            dbs,
            rounds=2 if args.quick else 8,
            seconds=1.0,
            large=20_000 if args.quick else 100_000,
            use_wrk=use_wrk,
        ),
        "turns": lambda dbs: turns.run(dbs, quick=args.quick),
        "ops": lambda dbs: ops.run(dbs, quick=args.quick),
        "ws": lambda dbs: ws.run(dbs, quick=args.quick),
    }
    if args.quick:
        log(
            "--quick: fewer rounds, 20k threads instead of 100k, 200 AI turns instead of "
            "1 000 (not for the record)"
        )
    outcomes: list[dict[str, Any]] = []
    failed = False
    log("runs: " + ", ".join(databases.label for databases in targets))
    loads = [load_average()]
    for databases in targets:
        outcome: dict[str, Any] = {"database": databases.label}
        try:
            for name, bench in benchmarks.items():
                if args.only and name != args.only:
                    continue
                started = time.monotonic()
                try:
                    outcome[name] = bench(databases)
                except Exception as exc:
                    failed = True
                    log(f"{name} on {databases.label} failed: {exc}")
                    continue
                log(f"{name} on {databases.label} took {time.monotonic() - started:.0f}s")
        finally:
            databases.cleanup(keep=args.keep)
        outcomes.append(outcome)

    loads.append(load_average())
    rows = [row for outcome in outcomes for row in rows_of(outcome)]
    print()
    print(table_text(rows))
    errors = sum(
        r["errors"]
        for o in outcomes
        for k in ("api", "desk_list", "turns")
        for r in o.get(k, {}).get("results", [])
    )
    if errors:
        failed = True
        print(f"\n{errors} requests failed or had an unexpected status: figures are not valid.")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(outcomes, handle, indent=2)
    if args.record and rows and not args.quick and not failed:
        record(outcomes, rows, loads)
    elif args.record:
        log("not recorded: --quick, a failed benchmark, or nothing measured")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
