"""Websockets under one uvicorn worker: channels-redis against the in-memory layer.

Measured in one run, side by side:

- **connects**: 1 000 customer sockets (one thread each) opened at once against one
  uvicorn worker on channels-redis (and, for reference, on the in-memory layer); every
  handshake must succeed.
- **fan-out**: 100 and then 500 sockets follow one thread on each of two servers (one
  per layer, same database); a message is POSTed to a server and each of its sockets
  times the ``message.created`` frame from just before the POST. Rounds alternate
  between the layers (ABBA); the figure is p99(channels-redis) / p99(in-memory) over all
  deliveries, and every socket must get every message.
- **faults**: followers that reconnect with ``after=<last seq>`` (tests/realtime/wsclient.py,
  the Python twin of static/supportdesk/realtime.js) while messages stream in: the server
  is killed (SIGKILL) and restarted twice; Redis is killed and restarted under two
  servers. Every follower must end with every message exactly once.

A private redis-server on a free loopback port is used when one is installed (so the
bench never flushes or restarts a shared Redis); else REDIS_URL (no Redis restart then).

    python bench/ws.py [--postgres] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from benchlib import (
    HOST,
    PYTHON,
    ROOT,
    Database,
    Databases,
    free_port,
    log,
    migrate,
    postgres_url_from,
    run_seed,
    server_env,
)

sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect

from tests.realtime.wsclient import Follower, post_messages, until

CONNECTS = 1000
FANOUT_SIZES = (100, 500)
P99_TARGET = 1.5


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- Processes ---------------------------------------------------------------------


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="supportdesk-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--maxclients", "10000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(port: int, timeout: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port}")


class Uvicorn:
    """One uvicorn worker serving supportdesk.asgi (HTTP and /ws/)."""

    def __init__(self, database: Database, *, redis_url: str | None, prefix: str) -> None:
        self.port = free_port()
        extra = {"ALLOWED_HOSTS": f"{HOST},localhost", "CHANNEL_LAYER_PREFIX": prefix}
        self.env = server_env(database, **extra)
        self.env.pop("REDIS_URL", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.layer = "channels-redis" if redis_url else "in-memory"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def start(self) -> Uvicorn:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "uvicorn", "supportdesk.asgi:application", "--host", HOST,
             "--port", str(self.port), "--no-access-log", "--log-level", "warning",
             "--backlog", "4096"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,  # the fault scenarios make servers log Redis errors
            start_new_session=True,
        )  # fmt: skip
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


# --- Scenarios ---------------------------------------------------------------------


async def open_sockets(
    server: Uvicorn, threads: list[list[str]], after: int = 1
) -> tuple[list[ClientConnection], int, float]:
    """Open one customer socket per (thread, token) at once: (sockets, failures, seconds)."""

    async def one(thread_id: str, token: str) -> ClientConnection | None:
        url = f"{server.ws}/ws/threads/{thread_id}/?token={token}&after={after}"
        try:
            return await connect(url, origin=server.http, open_timeout=120, ping_interval=None)  # type: ignore[arg-type]
        except Exception as exc:
            log(f"ws: connect failed: {exc!r}")
            return None

    started = time.perf_counter()
    results = await asyncio.gather(*(one(t, k) for t, k in threads))
    seconds = time.perf_counter() - started
    sockets = [s for s in results if s is not None]
    return sockets, len(results) - len(sockets), seconds


async def close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


async def connects(server: Uvicorn, threads: list[list[str]]) -> dict[str, Any]:
    sockets, failures, seconds = await open_sockets(server, threads)
    log(f"ws: {len(sockets)}/{len(threads)} connects on {server.layer} in {seconds:.1f}s")
    await close_all(sockets)
    return {
        "layer": server.layer,
        "attempted": len(threads),
        "connected": len(sockets),
        "failed": failures,
        "seconds": seconds,
    }


async def fanout_round(
    server: Uvicorn, sockets: list[ClientConnection], thread: list[str], marker: str
) -> tuple[list[float], int]:
    """POST one message; (latency of each socket's frame in ms, sockets that got it)."""
    thread_id, token = thread
    body = json.dumps({"content": marker}).encode()

    async def wait_frame(socket: ClientConnection) -> float | None:
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            try:
                raw = await asyncio.wait_for(socket.recv(), deadline - time.perf_counter())
            except (TimeoutError, Exception):
                return None
            if marker in raw:
                return time.perf_counter()
        return None

    waiters = [asyncio.ensure_future(wait_frame(s)) for s in sockets]
    await asyncio.sleep(0)
    started = time.perf_counter()
    status = await asyncio.to_thread(post, server.port, thread_id, token, body)
    if status != 201:
        raise RuntimeError(f"fan-out POST answered {status}")
    arrivals = await asyncio.gather(*waiters)
    latencies = [(t - started) * 1000 for t in arrivals if t is not None]
    return latencies, len(latencies)


def post(port: int, thread_id: str, token: str, body: bytes) -> int:
    import http.client

    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(
            "POST",
            f"/api/v1/threads/{thread_id}/messages/",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


async def fanout(
    servers: dict[str, Uvicorn], threads: dict[str, list[str]], size: int, rounds: int
) -> dict[str, Any]:
    sockets: dict[str, list[ClientConnection]] = {}
    for name, server in servers.items():
        thread_id, token = threads[name]
        opened, failures, _ = await open_sockets(server, [[thread_id, token]] * size)
        if failures:
            raise RuntimeError(f"fan-out: {failures} sockets failed to connect on {name}")
        sockets[name] = opened
    latencies: dict[str, list[float]] = {name: [] for name in servers}
    delivered = {name: 0 for name in servers}
    expected = {name: 0 for name in servers}
    order = list(servers)
    warmup = 2
    for index in range(rounds + warmup):
        sequence = order if index % 2 == 0 else order[::-1]  # ABBA
        for name in sequence:
            marker = f"fanout-{size}-{index}-{name}-{uuid.uuid4().hex[:8]}"
            got, count = await fanout_round(servers[name], sockets[name], threads[name], marker)
            if index >= warmup:
                latencies[name].extend(got)
                delivered[name] += count
                expected[name] += size
            await asyncio.sleep(0.2)
    for opened in sockets.values():
        await close_all(opened)
    out: dict[str, Any] = {"size": size, "rounds": rounds}
    for name in servers:
        values = latencies[name]
        out[name] = {
            "delivered": delivered[name],
            "expected": expected[name],
            "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99),
            "max_ms": max(values) if values else float("nan"),
            "mean_ms": statistics.fmean(values) if values else float("nan"),
        }
    out["p99_ratio"] = out["channels-redis"]["p99_ms"] / out["in-memory"]["p99_ms"]
    log(
        f"ws: fan-out {size}: p99 {out['channels-redis']['p99_ms']:.1f} ms (redis) vs "
        f"{out['in-memory']['p99_ms']:.1f} ms (in-memory), ratio {out['p99_ratio']:.2f}"
    )
    return out


async def fault_followers(
    servers: list[Uvicorn],
    thread: list[str],
    *,
    count: int,
    messages: int,
    fault: Any,
    fault_at: list[int],
) -> dict[str, Any]:
    thread_id, token = thread
    followers = [
        Follower(
            ws=servers[i % len(servers)].ws,
            http=servers[i % len(servers)].http,
            thread_id=thread_id,
            token=token,
        )
        for i in range(count)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(f.run(stop)) for f in followers]
    await until(lambda: all(f.connected.is_set() for f in followers), 30)
    posted: list[str] = []
    poster = asyncio.ensure_future(
        post_messages(
            servers=[s.http for s in servers],
            thread_id=thread_id,
            token=token,
            count=messages,
            interval=0.01,
            posted=posted,
        )
    )
    for mark in fault_at:
        await until(lambda mark=mark: len(posted) >= mark, 120)
        await asyncio.to_thread(fault)
    await asyncio.wait_for(poster, 300)
    # The thread's first message (from the seed) precedes the posted ones.
    expected_count = messages + 1
    await until(lambda: all(len(f.messages) >= expected_count for f in followers), 60)
    stop.set()
    await asyncio.gather(*tasks)
    lost = sum(max(0, expected_count - len(f.messages)) for f in followers)
    missing_posted = sum(len(set(posted) - set(f.messages)) for f in followers)
    return {
        "followers": count,
        "messages": messages,
        "faults": len(fault_at),
        "lost": max(lost, missing_posted),
        "duplicated": sum(f.socket_duplicates for f in followers),
        "dropped_duplicates": sum(f.dropped_duplicates for f in followers),
        "gap_fetches": sum(f.gap_fetches for f in followers),
        "reconnects": sum(f.connections - 1 for f in followers),
    }


# --- The run -------------------------------------------------------------------------


def seed_env(database: Database) -> dict[str, str]:
    env = server_env(database)
    env.pop("REDIS_URL", None)  # the seed's broadcasts go nowhere
    return env


async def measure(
    database: Database, redis: Redis | None, redis_url: str, *, quick: bool
) -> dict[str, Any]:
    prefix = f"bench{os.getpid()}"
    threads: list[list[str]] = run_seed(
        database,
        "api",
        "--threads",
        str(CONNECTS + 8),
        "--replied",
        "0",
        env=seed_env(database),
    )["threads"]
    connect_threads, spare = threads[:CONNECTS], threads[CONNECTS:]
    result: dict[str, Any] = {}

    redis_server = Uvicorn(database, redis_url=redis_url, prefix=prefix).start()
    memory_server = Uvicorn(database, redis_url=None, prefix=prefix).start()
    try:
        result["connects"] = [
            await connects(redis_server, connect_threads),
            await connects(memory_server, connect_threads),
        ]
        servers = {"channels-redis": redis_server, "in-memory": memory_server}
        fan_threads = {"channels-redis": spare[0], "in-memory": spare[1]}
        result["fanout"] = [
            await fanout(servers, fan_threads, size, rounds=4 if quick else 12)
            for size in FANOUT_SIZES
        ]
    finally:
        redis_server.stop()
        memory_server.stop()

    messages = 60 if quick else 200
    killed = Uvicorn(database, redis_url=redis_url, prefix=prefix).start()
    try:

        def restart_server() -> None:
            killed.kill()
            time.sleep(0.3)
            killed.start()

        log("ws: fault: server killed and restarted mid-stream")
        result["server_kill"] = await fault_followers(
            [killed],
            spare[2],
            count=20,
            messages=messages,
            fault=restart_server,
            fault_at=[messages // 4, messages * 2 // 3],
        )
    finally:
        killed.kill()

    if redis is not None:
        pair = [Uvicorn(database, redis_url=redis.url, prefix=prefix).start() for _ in range(2)]
        try:

            def restart_redis() -> None:
                redis.kill()
                time.sleep(0.5)
                redis.start()

            log("ws: fault: Redis killed and restarted under two servers")
            result["redis_restart"] = await fault_followers(
                pair,
                spare[3],
                count=20,
                messages=messages,
                fault=restart_redis,
                fault_at=[messages // 2],
            )
        finally:
            for server in pair:
                server.kill()
    return result


def run(databases: Databases, *, quick: bool = False) -> dict[str, Any]:
    database = databases.new("ws")
    log(f"ws: migrating {databases.kind} database")
    migrate(database)
    redis: Redis | None = None
    if shutil.which("redis-server"):
        redis = Redis()
        redis.start()
        redis_url = redis.url
    else:
        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            raise RuntimeError("bench/ws.py needs redis-server or REDIS_URL")
        log("ws: no redis-server: using REDIS_URL, without the Redis restart")
    try:
        outcome = asyncio.run(measure(database, redis, redis_url, quick=quick))
    finally:
        if redis is not None:
            redis.stop()
    outcome["results"] = rows(outcome)
    outcome["tool"] = "websockets (Python)"
    return outcome


def rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows: name, figure, target, ok, detail."""
    out: list[dict[str, Any]] = []
    for item in outcome.get("connects", []):
        target = "all" if item["layer"] == "channels-redis" else None
        out.append(
            {
                "name": f"concurrent connects, {item['layer']}",
                "figure": f"{item['connected']}/{item['attempted']}",
                "target": target or "—",
                "ok": item["connected"] == item["attempted"] if target else None,
                "detail": f"{item['seconds']:.1f} s to open all",
            }
        )
    for item in outcome.get("fanout", []):
        redis, memory = item["channels-redis"], item["in-memory"]
        complete = (
            redis["delivered"] == redis["expected"] and memory["delivered"] == memory["expected"]
        )
        out.append(
            {
                "name": f"fan-out to {item['size']}: p99 redis / p99 in-memory",
                "figure": f"{item['p99_ratio']:.2f}",
                "target": f"≤ {P99_TARGET}, 100 % delivered",
                "ok": item["p99_ratio"] <= P99_TARGET and complete,
                "detail": (
                    f"p99 {redis['p99_ms']:.1f} vs {memory['p99_ms']:.1f} ms, "
                    f"p50 {redis['p50_ms']:.1f} vs {memory['p50_ms']:.1f} ms, delivered "
                    f"{redis['delivered']}/{redis['expected']} and "
                    f"{memory['delivered']}/{memory['expected']}, {item['rounds']} rounds"
                ),
            }
        )
    for key, label in (("server_kill", "server killed twice"), ("redis_restart", "Redis restart")):
        item = outcome.get(key)
        if item is None:
            continue
        out.append(
            {
                "name": f"catch-up, {label}: lost / duplicated",
                "figure": f"{item['lost']} / {item['duplicated']}",
                "target": "0 / 0",
                "ok": item["lost"] == 0 and item["duplicated"] == 0,
                "detail": (
                    f"{item['followers']} followers × {item['messages']} messages, "
                    f"{item['reconnects']} reconnects, {item['gap_fetches']} gap fetches, "
                    f"{item['dropped_duplicates']} overlaps dropped by the client"
                ),
            }
        )
    return out


def run_rows(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """bench/run.py's table rows (its ``ratio`` column: the figure as a number)."""
    ws = outcome.get("ws")
    if not ws:
        return []
    out = []
    for row in ws["results"]:
        figure = row["figure"]
        if "/" in figure and row["name"].startswith("catch-up"):
            number = float(sum(int(part) for part in figure.split("/")))  # lost + duplicated
        elif "/" in figure:
            done, total = figure.split("/")
            number = int(done) / int(total)
        else:
            number = float(figure)
        out.append(
            {
                "benchmark": f"ws: {row['name']}",
                "database": outcome["database"],
                "ratio": number,
                "range": "-",
                "target": row["target"],
                "mark": "info" if row["ok"] is None else ("PASS" if row["ok"] else "BELOW"),
                "detail": f"{figure}; {row['detail']}",
            }
        )
    return out


def table(rows_: list[dict[str, Any]]) -> str:
    lines = ["| figure | value | target | mark | detail |", "|---|---|---|---|---|"]
    for row in rows_:
        mark = "info" if row["ok"] is None else ("PASS" if row["ok"] else "BELOW")
        lines.append(
            f"| {row['name']} | **{row['figure']}** | {row['target']} | {mark} | {row['detail']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="use local PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and messages")
    parser.add_argument("--json", help="write the raw results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    databases = Databases(postgres_url_from(args.postgres))
    try:
        outcome = run(databases, quick=args.quick)
    finally:
        databases.cleanup(keep=args.keep)
    print(table(outcome["results"]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(outcome, handle, indent=2, default=str)
    return 0 if all(r["ok"] is not False for r in outcome["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
