"""Notifications: desk socket events, emails and signed webhooks through the durable outbox."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from escalations import notifications, services
from escalations.models import Escalation, OutboxMessage, WebhookEndpoint
from escalations.notifications import deliver_due
from tests.conftest import EventLog
from tests.factories import make_thread
from tests.realtime.servers import database_url
from tests.threads.test_concurrency import run_concurrently
from threads.models import Thread

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec-test-secret"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def receiver_verifies(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's side, written as the README tells integrators to (not our code)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts:
        return False
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    recent = abs(time.time() - int(parts["t"])) <= tolerance
    return recent and hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))


class Receiver:
    """A real HTTP server that records webhook deliveries and answers scripted statuses.

    With ``secret`` it checks each signature as an integrator would and answers 401 to
    one that does not verify."""

    def __init__(self, secret: str | None = None) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.verified: list[bool] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if secret is not None:
                        ok = receiver_verifies(
                            secret, self.headers.get("X-Supportdesk-Signature", ""), body
                        )
                        receiver.verified.append(ok)
                        status = status if ok else 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/supportdesk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def endpoint(receiver: Receiver, db: Any) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET)


def escalate(thread: Thread | None = None, **kwargs: Any) -> Escalation:
    if thread is None:
        thread, _ = make_thread(subject="Broken tent")
    kwargs.setdefault("reason", "needs a person")
    escalation, _ = services.escalation_open(thread=thread, source="tool", **kwargs)
    escalation.refresh_from_db()
    return escalation


@pytest.mark.django_db
def test_it_signs_webhooks_so_a_receiver_can_verify_them(
    receiver: Receiver, endpoint: WebhookEndpoint, settings: Any
) -> None:
    settings.SUPPORTDESK_PUBLIC_URL = "https://desk.example.com"
    escalation = escalate()
    row = OutboxMessage.objects.get(escalation=escalation, kind="webhook")
    assert receiver.received == []  # nothing leaves inside the request
    assert deliver_due()["outbox_sent"] == 1
    (delivery,) = receiver.received
    signature = delivery.headers["X-Supportdesk-Signature"]
    assert notifications.verify(SECRET, signature, delivery.body)
    assert not notifications.verify("another-secret", signature, delivery.body)
    assert not notifications.verify(SECRET, signature, delivery.body + b" ")
    assert delivery.headers["X-Supportdesk-Delivery"] == str(row.pk)
    assert delivery.headers["X-Supportdesk-Event"] == "escalation.opened"
    body = delivery.json()
    assert (body["id"], body["event"]) == (str(row.pk), "escalation.opened")
    assert body["data"]["escalation_id"] == str(escalation.pk)
    assert body["data"]["summary"] == escalation.summary
    assert body["data"]["thread_url"] == (
        f"https://desk.example.com/desk/threads/{escalation.thread_id}/"
    )
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert deliver_due()["outbox_sent"] == 0
    assert len(receiver.received) == 1


def test_it_checks_the_signature_timestamp() -> None:
    body = b'{"event":"x"}'
    header = notifications.sign(SECRET, 1_000_000, body)
    assert notifications.verify(SECRET, header, body, now=1_000_100)
    assert not notifications.verify(SECRET, header, body, now=1_000_000 + 301)
    assert not notifications.verify(SECRET, "v1=abc", body)


@pytest.mark.django_db
def test_it_retries_after_a_receiver_error_with_backoff(
    receiver: Receiver, endpoint: WebhookEndpoint, settings: Any
) -> None:
    settings.SUPPORTDESK_OUTBOX_BACKOFF = 20.0
    receiver.statuses = [500, 503]
    escalate()
    row = OutboxMessage.objects.get(kind="webhook")
    now = timezone.now()
    assert deliver_due(now=now) == {"outbox_sent": 0, "outbox_retrying": 1, "outbox_failed": 0}
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (
        "pending",
        1,
        "the receiver answered 500",
    )
    first_wait = (row.next_attempt_at - now).total_seconds()
    assert 15 <= first_wait <= 20
    assert deliver_due(now=now + timedelta(seconds=1))["outbox_sent"] == 0
    assert len(receiver.received) == 1

    later = row.next_attempt_at
    assert deliver_due(now=later)["outbox_retrying"] == 1
    row.refresh_from_db()
    assert 30 <= (row.next_attempt_at - later).total_seconds() <= 40  # doubled

    assert deliver_due(now=row.next_attempt_at)["outbox_sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 3)
    ids = {r.headers["X-Supportdesk-Delivery"] for r in receiver.received}
    assert ids == {str(row.pk)}  # one idempotency id across the retries
    assert len(receiver.received) == 3


@pytest.mark.django_db
def test_it_gives_up_after_the_last_attempt(
    receiver: Receiver, endpoint: WebhookEndpoint, settings: Any
) -> None:
    settings.SUPPORTDESK_OUTBOX_MAX_ATTEMPTS = 2
    settings.SUPPORTDESK_OUTBOX_BACKOFF = 0.0
    receiver.statuses = [500, 500, 500]
    escalate()
    now = timezone.now()
    deliver_due(now=now)
    assert deliver_due(now=now + timedelta(seconds=1))["outbox_failed"] == 1
    row = OutboxMessage.objects.get(kind="webhook")
    assert (row.status, row.attempts) == ("failed", 2)
    assert deliver_due(now=now + timedelta(days=1)) == {
        "outbox_sent": 0,
        "outbox_retrying": 0,
        "outbox_failed": 0,
    }
    assert len(receiver.received) == 2


@pytest.mark.django_db
def test_it_retries_an_unreachable_receiver(settings: Any) -> None:
    settings.SUPPORTDESK_WEBHOOK_TIMEOUT = 0.5
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/nobody-listens")
    escalate()
    assert deliver_due()["outbox_retrying"] == 1
    row = OutboxMessage.objects.get()
    assert row.status == "pending" and row.last_error.startswith("could not reach")


@pytest.mark.django_db
def test_it_fails_a_row_whose_endpoint_was_disabled(
    receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    escalate()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
    assert deliver_due()["outbox_failed"] == 1
    assert OutboxMessage.objects.get().status == "failed"
    assert receiver.received == []


@pytest.mark.django_db
def test_it_sends_only_the_events_an_endpoint_wants(receiver: Receiver, agent: Any) -> None:
    WebhookEndpoint.objects.create(url=receiver.url, events=["escalation.assigned"])
    escalation = escalate()
    assert not OutboxMessage.objects.exists()
    services.escalation_claim(escalation=escalation, user=agent)
    webhooks = OutboxMessage.objects.filter(kind="webhook")
    assert list(webhooks.values_list("event", flat=True)) == ["escalation.assigned"]


@pytest.mark.django_db
def test_it_redelivers_a_row_whose_sender_died_mid_send(
    receiver: Receiver, endpoint: WebhookEndpoint, settings: Any
) -> None:
    escalate()
    row = OutboxMessage.objects.get()
    now = timezone.now()
    lease = timedelta(seconds=settings.SUPPORTDESK_OUTBOX_LEASE_SECONDS)
    # What deliver_due's claim does, by a worker that then dies before it sends.
    assert OutboxMessage.objects.filter(pk=row.pk, attempts=0).update(
        attempts=1, next_attempt_at=now + lease
    )
    assert deliver_due(now=now)["outbox_sent"] == 0
    assert deliver_due(now=now + lease)["outbox_sent"] == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(receiver.received) == 1


@pytest.mark.django_db(transaction=True)
def test_it_never_lets_two_workers_send_the_same_row(
    receiver: Receiver, endpoint: WebhookEndpoint
) -> None:
    for _ in range(6):
        escalate()
    rows = set(OutboxMessage.objects.values_list("pk", flat=True))
    assert len(rows) == 6

    results = run_concurrently(4, lambda index: deliver_due())
    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["outbox_sent"] for r in results) == 6
    delivered = [r.headers["X-Supportdesk-Delivery"] for r in receiver.received]
    assert sorted(delivered) == sorted(str(pk) for pk in rows)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_it_sends_email_through_the_outbox(settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com", "lead@example.com"]
    settings.DEFAULT_FROM_EMAIL = "supportdesk@example.com"
    escalation = escalate()
    row = OutboxMessage.objects.get(kind="email")
    assert mail.outbox == []
    assert deliver_due()["outbox_sent"] == 1
    (email,) = mail.outbox
    assert email.to == ["desk@example.com", "lead@example.com"]
    assert email.from_email == "supportdesk@example.com"
    assert email.subject == "[supportdesk] Escalation (normal): Broken tent"
    assert escalation.summary is not None and escalation.summary in email.body
    assert f"/desk/threads/{escalation.thread_id}/" in email.body
    assert email.extra_headers["X-Supportdesk-Delivery"] == str(row.pk)
    row.refresh_from_db()
    assert row.status == "sent" and row.sent_at is not None
    deliver_due()
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_it_emails_the_assignee_when_an_escalation_is_claimed(agent: Any, settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = []
    escalation = escalate()
    services.escalation_claim(escalation=escalation, user=agent)
    row = OutboxMessage.objects.get()
    assert (row.event, row.payload["to"]) == ("escalation.assigned", [agent.email])
    deliver_due()
    assert mail.outbox[0].subject == "[supportdesk] Assigned to you: Broken tent"


@pytest.mark.django_db
def test_it_notifies_the_desk_socket_on_commit(
    event_log: EventLog, agent: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        escalation = escalate(priority="high")
    with django_capture_on_commit_callbacks(execute=True):
        services.escalation_claim(escalation=escalation, user=agent)
    sent = [e for e in event_log.events if e.type == "notification"]
    assert [e.payload["kind"] for e in sent] == ["escalation.opened", "escalation.assigned"]
    opened, assigned = (e.payload for e in sent)
    assert opened == {
        "kind": "escalation.opened",
        "escalation_id": str(escalation.pk),
        "thread_id": str(escalation.thread_id),
        "title": "Escalation (high): Broken tent",
        "summary": escalation.summary,
        "priority": "high",
        "source": "tool",
        "url": f"{settings.SUPPORTDESK_PUBLIC_URL}/desk/threads/{escalation.thread_id}/",
        "user_id": None,
        "sla_due_at": None,
    }
    assert assigned["user_id"] == agent.pk


@pytest.mark.django_db
def test_it_writes_nothing_when_the_change_rolls_back(
    endpoint: WebhookEndpoint, settings: Any
) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    thread, _ = make_thread()
    with pytest.raises(RuntimeError), transaction.atomic():
        escalate(thread)
        raise RuntimeError("the request failed after the escalation")
    assert not OutboxMessage.objects.exists()
    assert not Escalation.objects.exists()


@dataclass(frozen=True)
class Clock:
    """What the SLA code hands its hooks (a warning, or a breach row): target and due time."""

    target: str
    due_at: datetime


@pytest.mark.django_db
def test_it_notifies_an_sla_warning_and_breach_once_each(
    endpoint: WebhookEndpoint, agent: Any, settings: Any
) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    escalation = escalate()
    services.escalation_claim(escalation=escalation, user=agent)
    warning_hooks: list[Any] = []
    breach_hooks: list[Any] = []
    notifications.register_sla_hooks(warning_hooks=warning_hooks, breach_hooks=breach_hooks)
    notifications.register_sla_hooks(warning_hooks=warning_hooks, breach_hooks=breach_hooks)
    assert (len(warning_hooks), len(breach_hooks)) == (1, 1)
    due = timezone.now() + timedelta(minutes=5)
    first = Clock("first_response", due)
    for hook in warning_hooks + warning_hooks:
        hook(escalation, first)
    for hook in breach_hooks:
        hook(escalation, first)
    rows = OutboxMessage.objects.exclude(event__in=["escalation.opened", "escalation.assigned"])
    by_event = {(r.event, r.kind): r for r in rows}
    assert sorted(by_event) == [
        ("escalation.sla_breached", "email"),
        ("escalation.sla_breached", "webhook"),
        ("escalation.sla_warning", "email"),
        ("escalation.sla_warning", "webhook"),
    ]
    assert by_event["escalation.sla_warning", "email"].payload["to"] == [agent.email]
    assert by_event["escalation.sla_breached", "email"].payload["to"] == [
        "desk@example.com",
        agent.email,
    ]
    data = by_event["escalation.sla_warning", "webhook"].payload["data"]
    assert data["sla_due_at"] == due.isoformat()
    # The next clock (after the next customer message) warns again.
    warning_hooks[0](escalation, Clock("next_response", due + timedelta(hours=1)))
    assert OutboxMessage.objects.filter(event="escalation.sla_warning").count() == 4


def test_it_listens_to_the_sla_code_hooks() -> None:
    sla = pytest.importorskip("escalations.sla")
    assert notifications.notify_sla_warning in sla.sla_warning_hooks
    assert notifications.notify_sla_breach in sla.sla_breach_hooks


KILLED_AFTER_COMMIT = """
import os, signal
from escalations import services
from threads.models import Thread
thread = Thread.objects.select_related("customer").get(pk="{thread_id}")
services.escalation_open(thread=thread, source="tool", reason="then the process died")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_delivers_once_after_the_process_is_killed_between_commit_and_send(
    receiver: Receiver, endpoint: WebhookEndpoint, settings: Any
) -> None:
    thread, _ = make_thread(subject="Killed")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "kill-test",
        "DEBUG": "0",
        "SUPPORTDESK_LLM": "offline",
        "SUPPORTDESK_NOTIFY_EMAILS": "desk@example.com",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            KILLED_AFTER_COMMIT.format(thread_id=thread.pk),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    escalation = Escalation.objects.get(thread=thread)
    rows = OutboxMessage.objects.filter(escalation=escalation)
    assert sorted(rows.values_list("kind", "status", "attempts")) == [
        ("email", "pending", 0),
        ("webhook", "pending", 0),
    ]
    assert receiver.received == [] and mail.outbox == []

    assert deliver_due()["outbox_sent"] == 2
    assert deliver_due()["outbox_sent"] == 0
    (delivery,) = receiver.received
    assert delivery.json()["data"]["escalation_id"] == str(escalation.pk)
    assert notifications.verify(SECRET, delivery.headers["X-Supportdesk-Signature"], delivery.body)
    assert [email.to for email in mail.outbox] == [["desk@example.com"]]
    assert set(rows.values_list("status", flat=True)) == {"sent"}


# --- from the sla_sweep command to a verifying receiver -------------------------------


@pytest.fixture
def verifying_receiver() -> Iterator[Receiver]:
    server = Receiver(secret=SECRET)
    yield server
    server.close()


@pytest.mark.django_db(transaction=True)
def test_it_delivers_an_sla_breach_from_the_sweep_command_to_a_verifying_receiver(
    verifying_receiver: Receiver, event_log: EventLog, settings: Any
) -> None:
    from escalations.models import QueueRole, SLABreach
    from tests.escalations.ops_helpers import make_agent, make_policy, make_queue

    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    WebhookEndpoint.objects.create(
        url=verifying_receiver.url,
        secret=SECRET,
        events=["escalation.sla_warning", "escalation.sla_breached"],
    )
    agent = make_agent("ana")
    queue = make_queue(agents=[agent], policy=make_policy(first=100))
    boss = make_agent("boss", online=False)
    from escalations import routing

    routing.queue_member_add(queue=queue, user=boss, role=QueueRole.SUPERVISOR)
    escalation = escalate()
    assert (escalation.status, escalation.claimed_by) == ("claimed", agent)
    # The clock started 100 s ago and nobody answered: its 80 % mark and its due time
    # have both passed.
    now = timezone.now()
    Escalation.objects.filter(pk=escalation.pk).update(
        sla_started_at=now - timedelta(seconds=100),
        sla_check_at=now - timedelta(seconds=20),
        sla_due_at=now - timedelta(seconds=1),
    )
    assert deliver_due()["outbox_sent"] == 2  # the opened and assigned emails
    mail.outbox.clear()
    event_log.events.clear()

    out = io.StringIO()
    call_command("sla_sweep", stdout=out)

    assert out.getvalue().strip() == "warned 1, breached 1, met 0"
    breach = SLABreach.objects.get(escalation=escalation)
    assert (breach.target, breach.priority) == ("first_response", "normal")
    rows = OutboxMessage.objects.filter(event__startswith="escalation.sla_")
    assert sorted(rows.values_list("event", "kind", "status")) == [
        ("escalation.sla_breached", "email", "pending"),
        ("escalation.sla_breached", "webhook", "pending"),
        ("escalation.sla_warning", "email", "pending"),
        ("escalation.sla_warning", "webhook", "pending"),
    ]
    desk = [e.payload for e in event_log.events if e.type == "notification"]
    assert [(p["kind"], p["escalation_id"]) for p in desk] == [
        ("escalation.sla_warning", str(escalation.pk)),
        ("escalation.sla_breached", str(escalation.pk)),
    ]
    assert "sla.breached" in event_log.types()
    assert verifying_receiver.received == [] and mail.outbox == []  # nothing sent yet

    call_command("deliver_webhooks", stdout=out)

    assert out.getvalue().strip().endswith("sent 4, retrying 0, failed 0")
    assert verifying_receiver.verified == [True, True]
    bodies = {d.json()["event"]: d.json() for d in verifying_receiver.received}
    assert sorted(bodies) == ["escalation.sla_breached", "escalation.sla_warning"]
    breached = bodies["escalation.sla_breached"]["data"]
    assert (breached["escalation_id"], breached["priority"]) == (str(escalation.pk), "high")
    assert breached["assignee"] == {"id": agent.pk, "username": "ana"}
    emails = {email.subject: email.to for email in mail.outbox}
    assert emails["[supportdesk] SLA breached: Broken tent"] == [
        "desk@example.com",
        boss.email,
        agent.email,
    ]
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    # A second sweep and a second delivery find nothing to do.
    call_command("sla_sweep", stdout=out)
    call_command("deliver_webhooks", stdout=out)
    assert out.getvalue().strip().splitlines()[-2:] == [
        "warned 0, breached 0, met 0",
        "sent 0, retrying 0, failed 0",
    ]
    assert len(verifying_receiver.received) == 2


def test_it_refuses_a_forged_signature_at_the_receiver() -> None:
    body = b'{"event":"escalation.opened"}'
    header = notifications.sign(SECRET, int(time.time()), body)
    assert receiver_verifies(SECRET, header, body)
    assert not receiver_verifies("wrong", header, body)
    assert not receiver_verifies(SECRET, header, body.replace(b"opened", b"closed"))


# --- pruning sent rows -----------------------------------------------------------------


def _sent_rows(count: int, *, days_ago: float) -> list[OutboxMessage]:
    """``count`` emails sent ``days_ago`` days ago."""
    rows = []
    for _ in range(count):
        escalation = escalate()
        row = OutboxMessage.objects.get(escalation=escalation, kind="email")
        rows.append(row)
    deliver_due(limit=1000)
    sent_at = timezone.now() - timedelta(days=days_ago)
    OutboxMessage.objects.filter(pk__in=[r.pk for r in rows]).update(sent_at=sent_at)
    return rows


@pytest.mark.django_db
def test_it_prunes_sent_rows_past_the_retention(settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    settings.SUPPORTDESK_OUTBOX_RETENTION_DAYS = 30
    old = _sent_rows(3, days_ago=31)
    recent = _sent_rows(2, days_ago=29)
    # Rows not sent are never pruned, however old.
    pending = escalate()
    OutboxMessage.objects.filter(escalation=pending).update(
        created_at=timezone.now() - timedelta(days=90)
    )
    failed = escalate()
    OutboxMessage.objects.filter(escalation=failed).update(
        status="failed", sent_at=timezone.now() - timedelta(days=90)
    )

    assert notifications.outbox_prune(batch=2) == 3

    left = set(OutboxMessage.objects.values_list("pk", flat=True))
    assert not left & {row.pk for row in old}
    assert {row.pk for row in recent} <= left
    assert OutboxMessage.objects.filter(escalation__in=[pending, failed]).count() == 2
    assert notifications.outbox_prune() == 0


@pytest.mark.django_db
def test_it_keeps_sent_rows_when_the_retention_is_off(settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    settings.SUPPORTDESK_OUTBOX_RETENTION_DAYS = 0
    _sent_rows(2, days_ago=400)
    assert notifications.outbox_prune() == 0
    assert OutboxMessage.objects.filter(status="sent").count() == 2


@pytest.mark.django_db
def test_it_prunes_from_the_command(settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    _sent_rows(2, days_ago=3)
    _sent_rows(1, days_ago=0.5)
    out = io.StringIO()
    call_command("prune_outbox", "--days", "1", stdout=out)
    assert out.getvalue().strip() == "pruned 2 sent notification(s) older than 1 day(s)"
    assert OutboxMessage.objects.count() == 1


@pytest.mark.django_db
def test_it_prunes_in_the_worker_sweep(settings: Any) -> None:
    from supportdesk.agent.worker import sweep_once

    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    settings.SUPPORTDESK_OUTBOX_RETENTION_DAYS = 7
    _sent_rows(2, days_ago=8)
    assert sweep_once("test-worker")["outbox_pruned"] == 2
    assert not OutboxMessage.objects.exists()
