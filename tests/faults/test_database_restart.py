"""PostgreSQL stopped and started again under traffic, with a private cluster (never the
shared server): gunicorn and an AI worker keep running; while the database is down every
request gets 503 with the error body and Retry-After (never a 500), and once it is back
the same processes serve and answer again."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.faults.processes import (
    ROOT,
    PrivatePostgres,
    Workers,
    free_port,
    postgres_bin,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BINDIR = postgres_bin()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


class Stack:
    """Our processes against the private cluster: gunicorn (HTTP) and one AI worker."""

    def __init__(self, database: PrivatePostgres, log_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            "DATABASE_URL": database.url,
            "SECRET_KEY": "faults-test",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SUPPORTDESK_RATE_LIMITS": "off",
            "SUPPORTDESK_LLM": "offline",
            # A turn that was running when the database went away comes back this soon.
            "SUPPORTDESK_TURN_LEASE_SECONDS": "5",
            "LOG_LEVEL": "ERROR",
            "REDIS_URL": "",
            "DJANGO_SUPERUSER_USERNAME": "ops",
            "DJANGO_SUPERUSER_PASSWORD": "ops-password-123",
            "DJANGO_SUPERUSER_EMAIL": "ops@example.com",
        }
        self.workers = Workers(self.env, log_dir)
        self.log_dir = log_dir
        self.gunicorn: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.workers.env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def start(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("createsuperuser", "--noinput")
        with open(self.log_dir / "gunicorn.log", "wb") as log:
            self.gunicorn = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "supportdesk.wsgi:application",
                    "--workers",
                    "2",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--timeout",
                    "120",
                ],
                cwd=ROOT,
                env=self.workers.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until(self.serving, 60, "gunicorn to serve")
        self.workers.start()
        # The worker's sweeper reports in once it runs: the outage must find it working.
        wait_until(
            lambda: call(self.port, "GET", "/healthz").body["worker"] == "ok",
            60,
            "the AI worker to start",
            self.workers.logs,
        )

    def serving(self) -> bool:
        try:
            return call(self.port, "GET", "/healthz").status in (200, 503)
        except OSError:
            return False

    def alive(self) -> bool:
        return (
            self.gunicorn is not None
            and self.gunicorn.poll() is None
            and all(worker.poll() is None for worker in self.workers.alive)
        )

    def stop(self) -> None:
        self.workers.stop_all()
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            self.gunicorn.terminate()
            try:
                self.gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.gunicorn.kill()
                self.gunicorn.wait(timeout=30)


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    reason = PrivatePostgres.available(BINDIR)
    if reason is not None:
        pytest.skip(reason)
    assert BINDIR is not None
    cluster = PrivatePostgres(BINDIR)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def stack(database: PrivatePostgres, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(database, tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()


class Traffic:
    """Rounds of customer and staff requests from a background thread, every response
    recorded in order."""

    def __init__(self, port: int, thread_id: str, token: str, staff: str) -> None:
        self.port = port
        self.thread_id, self.token, self.staff = thread_id, token, staff
        self.records: list[tuple[str, Response]] = []
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")

    def one_round(self) -> list[tuple[str, Response]]:
        customer = {"Authorization": f"Bearer {self.token}"}
        messages = f"/api/v1/threads/{self.thread_id}/messages/"
        key = {"Idempotency-Key": str(uuid.uuid4())}
        return [
            ("health", call(self.port, "GET", "/healthz")),
            ("list", call(self.port, "GET", messages, headers=customer)),
            ("post", call(self.port, "POST", messages, {"content": "hi"}, {**customer, **key})),
            (
                "desk",
                call(
                    self.port,
                    "GET",
                    "/api/v1/desk/threads/",
                    headers={"Authorization": f"Token {self.staff}"},
                ),
            ),
            ("create", call(self.port, "POST", "/api/v1/threads/", {"customer": {"name": "R"}})),
        ]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.records.extend(self.one_round())
            self.rounds += 1
            time.sleep(0.05)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def wait_rounds(self, count: int) -> None:
        target = self.rounds + count
        wait_until(lambda: self.rounds >= target, 120, f"{count} rounds of traffic")

    def since(self, index: int) -> list[tuple[str, Response]]:
        return self.records[index:]


def ok(name: str, response: Response) -> bool:
    return response.status == (201 if name in ("post", "create") else 200)


def assert_unavailable(name: str, response: Response) -> None:
    """The contract's 503: the error body (or the health body) and Retry-After."""
    assert response.status == 503, (name, response.status, response.body)
    assert int(response.headers["retry-after"]) >= 1, (name, response.headers)
    if name == "health":
        assert response.body["status"] == "unavailable"
        assert response.body["database"] == "down"
    else:
        assert set(response.body) == {"error"}, response.body
        assert response.body["error"]["code"] == "service_unavailable", response.body
        assert isinstance(response.body["error"]["message"], str)


def unfinished_turns(database: PrivatePostgres) -> int:
    """Turns still queued or running, read straight from the private cluster."""
    with psycopg.connect(database.url, connect_timeout=10) as connection:
        row = connection.execute(
            "SELECT count(*) FROM agent_agentturn WHERE status IN ('queued', 'running')"
        ).fetchone()
    return int(row[0]) if row else 0


def answered(port: int, thread_id: str, token: str, after: int) -> bool:
    page = call(
        port,
        "GET",
        f"/api/v1/threads/{thread_id}/messages/?after={after}",
        headers={"Authorization": f"Bearer {token}"},
    )
    return page.status == 200 and any(
        m["author"]["kind"] in ("ai", "system") for m in page.body["results"]
    )


def test_it_answers_503_while_postgres_is_down_and_recovers_without_a_restart(
    database: PrivatePostgres, stack: Stack
) -> None:
    created = call(stack.port, "POST", "/api/v1/threads/", {"customer": {"name": "Ann"}})
    assert created.status == 201, created.body
    thread_id, token = created.body["thread"]["id"], created.body["token"]
    login = call(
        stack.port,
        "POST",
        "/api/v1/auth/token/",
        {"username": "ops", "password": "ops-password-123"},
    )
    staff = login.body["token"]
    gunicorn_pid = stack.gunicorn.pid if stack.gunicorn else None
    worker_pids = [worker.pid for worker in stack.workers.alive]

    traffic = Traffic(stack.port, thread_id, token, staff)
    traffic.start()
    try:
        traffic.wait_rounds(3)
        before = len(traffic.records)

        database.stop("fast")
        down_from = len(traffic.records)
        traffic.wait_rounds(5)
        # A customer's message while the database is down: 503, saved nowhere...
        retried_key = {
            "Idempotency-Key": "sent-during-the-outage",
            "Authorization": f"Bearer {token}",
        }
        path = f"/api/v1/threads/{thread_id}/messages/"
        refused = call(stack.port, "POST", path, {"content": "During the outage"}, retried_key)

        database.start()
        up_from = len(traffic.records)
        wait_until(
            lambda: any(ok(n, r) for n, r in traffic.since(up_from) if n == "post"),
            120,
            "the API to answer again",
        )
        recovered_at = len(traffic.records)
        traffic.wait_rounds(5)
    finally:
        traffic.stop()

    assert all(ok(name, response) for name, response in traffic.records[:before])
    outage = traffic.records[down_from:up_from]
    # Every request that met the dead database got the contract's 503, none a 500.
    for name, response in outage:
        if not ok(name, response):
            assert_unavailable(name, response)
    assert {name for name, r in outage if r.status == 503} == {
        "health",
        "list",
        "post",
        "desk",
        "create",
    }
    assert_unavailable("post", refused)
    for name, response in traffic.since(up_from):
        assert ok(name, response) or response.status == 503, (name, response.status, response.body)
    # Recovered, by the same processes: every request after the first success succeeds.
    settled = traffic.records[recovered_at + 5 :]  # after the round of the first success
    assert settled and all(ok(name, response) for name, response in settled), [
        (name, response.status) for name, response in settled if not ok(name, response)
    ]
    assert stack.alive()
    assert stack.gunicorn is not None and stack.gunicorn.pid == gunicorn_pid
    assert [worker.pid for worker in stack.workers.alive] == worker_pids

    # The refused message is sent again with its key: stored once, and answered by the
    # worker that lived through the outage.
    resent = call(stack.port, "POST", path, {"content": "During the outage"}, retried_key)
    assert resent.status == 201, resent.body
    again = call(stack.port, "POST", path, {"content": "During the outage"}, retried_key)
    assert (again.status, again.body["id"]) == (201, resent.body["id"])
    fresh = call(stack.port, "POST", "/api/v1/threads/", {"customer": {"name": "Bo"}})
    fresh_id, fresh_token = fresh.body["thread"]["id"], fresh.body["token"]
    posted = call(
        stack.port,
        "POST",
        f"/api/v1/threads/{fresh_id}/messages/",
        {"content": "How do I reset my password?"},
        {"Authorization": f"Bearer {fresh_token}"},
    )
    wait_until(
        lambda: answered(stack.port, fresh_id, fresh_token, posted.body["seq"]),
        120,
        "the AI worker to answer after the outage",
        stack.workers.logs,
    )
    # Every turn, including any the outage interrupted, reaches a final state.
    wait_until(
        lambda: unfinished_turns(database) == 0, 120, "every turn to finish", stack.workers.logs
    )
    assert stack.alive()
