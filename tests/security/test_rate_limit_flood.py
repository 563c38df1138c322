"""Rate limits under a flood (API.md: 429 with ``Retry-After``): one client posts to its
thread's message endpoint at about 50 requests a second against a real gunicorn — two
workers sharing the counters in Redis when REDIS_URL is set, one worker with the
process-local cache otherwise — behind a trusted proxy that names each client's address.

The flooder gets its thread's allowance and then only 429s; meanwhile other customers
(one of them behind the flooder's own address) post and read without a single refusal.
Status codes and counts only: no assertion about how long anything took.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import make_thread
from tests.realtime.servers import ROOT, database_url, free_port, wait_for_port
from threads.models import Message, Role, Thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PER_THREAD = 20
# A day-long window: the flood cannot straddle two windows unless it runs over
# midnight (UTC), which the test detects and allows for.
WINDOW_SECONDS = 86_400
FLOOD_REQUESTS = 150
FLOOD_INTERVAL = 0.02  # about 50 requests a second
FLOODER_IP = "203.0.113.7"
TURNS = 6  # messages (and reads) of each other customer


class Gunicorn:
    """``gunicorn supportdesk.wsgi:application`` on a free port, against the test database."""

    def __init__(self) -> None:
        self.port = free_port()
        redis_url = os.environ.get("REDIS_URL")
        self.workers = 2 if redis_url else 1  # without Redis each worker counts alone
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "SECRET_KEY": "flood-test",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SUPPORTDESK_RATE_LIMITS": "on",
            "SUPPORTDESK_RATE_MESSAGE_PER_THREAD": f"{PER_THREAD}/{WINDOW_SECONDS}",
            "SUPPORTDESK_RATE_MESSAGE_PER_IP": f"120/{WINDOW_SECONDS}",
            "SUPPORTDESK_TRUSTED_PROXIES": "1",
            "CACHE_KEY_PREFIX": f"flood{uuid.uuid4().hex[:8]}",
            "SUPPORTDESK_LLM": "offline",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "supportdesk.wsgi:application",
                "--workers",
                str(self.workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "error",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def server() -> Iterator[Gunicorn]:
    with Gunicorn() as running:
        yield running


class Client:
    """One customer: a keep-alive connection, its thread token, its address."""

    def __init__(self, server: Gunicorn, thread: Thread, token: str, ip: str) -> None:
        self.server, self.thread, self.token, self.ip = server, thread, token, ip
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.statuses: Counter[int] = Counter()
        self.retry_after: list[str] = []
        self.codes: Counter[str] = Counter()

    def request(self, method: str, path: str, body: Any = None) -> int:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "X-Forwarded-For": self.ip,
        }
        payload = json.dumps(body) if body is not None else None
        try:
            self.connection.request(method, path, payload, headers)
            response = self.connection.getresponse()
        except (http.client.HTTPException, OSError):
            # The server closed a kept-alive connection: once more on a new one.
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
            self.connection.request(method, path, payload, headers)
            response = self.connection.getresponse()
        data = response.read()
        self.statuses[response.status] += 1
        if response.status == 429:
            self.retry_after.append(response.getheader("Retry-After") or "")
            self.codes[json.loads(data)["error"]["code"]] += 1
        return response.status

    def post_message(self, content: str) -> int:
        return self.request(
            "POST", f"/api/v1/threads/{self.thread.pk}/messages/", {"content": content}
        )

    def read(self) -> int:
        return self.request("GET", f"/api/v1/threads/{self.thread.pk}/messages/?limit=200")


def test_it_limits_a_flooding_client_without_degrading_other_threads(server: Gunicorn) -> None:
    flooder = Client(server, *make_thread(customer_name="Flooder"), ip=FLOODER_IP)
    # A colleague behind the same address, on a thread of their own.
    colleague = Client(server, *make_thread(customer_name="Colleague"), ip=FLOODER_IP)
    others = [
        Client(server, *make_thread(customer_name=f"Other {n}"), ip=f"198.51.100.{n + 1}")
        for n in range(4)
    ]
    started_window = int(time.time() // WINDOW_SECONDS)

    # The others speak at set points of the flood (by its count, not by the clock), the
    # last ones when it is over: every part of the flood meets a conversation.
    progress = threading.Condition()
    sent = [0]

    def flood() -> None:
        for n in range(FLOOD_REQUESTS):
            flooder.post_message(f"flood {n}")
            with progress:
                sent[0] += 1
                progress.notify_all()
            time.sleep(FLOOD_INTERVAL)

    def converse(client: Client) -> None:
        for n in range(TURNS):
            point = n * FLOOD_REQUESTS // (TURNS - 1)
            with progress:
                progress.wait_for(lambda: sent[0] >= point, 120)  # noqa: B023 (waits here)
            client.post_message(f"{client.thread.customer.name}: question {n}")
            client.read()

    workers = [threading.Thread(target=flood)]
    workers += [threading.Thread(target=converse, args=(c,)) for c in [colleague, *others]]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers)
    windows = int(time.time() // WINDOW_SECONDS) - started_window + 1

    # The flooder: its allowance, then nothing but 429s with Retry-After.
    assert set(flooder.statuses) <= {201, 429}, flooder.statuses
    assert flooder.statuses[201] == PER_THREAD * windows
    assert flooder.statuses[429] == FLOOD_REQUESTS - PER_THREAD * windows
    assert flooder.codes == {"rate_limited": flooder.statuses[429]}
    assert all(
        value.isdigit() and 1 <= int(value) <= WINDOW_SECONDS for value in flooder.retry_after
    )
    assert (
        Message.objects.filter(thread=flooder.thread, role=Role.USER).count()
        == flooder.statuses[201]
    )

    # Everyone else: every request answered, nothing refused.
    for client in [colleague, *others]:
        assert client.statuses == {201: TURNS, 200: TURNS}, (client.ip, client.statuses)
        assert Message.objects.filter(thread=client.thread, role=Role.USER).count() == TURNS
