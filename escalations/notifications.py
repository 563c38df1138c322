"""Notifications about escalations: the desk socket, email and signed webhooks.

Four events: ``escalation.opened``, ``escalation.assigned`` (``claimed_hooks``),
``escalation.sla_warning`` (80 % of the SLA target gone) and ``escalation.sla_breached``
(both from the SLA code's hooks, see :func:`register_sla_hooks`). For each, inside the
transaction of the change:

- a ``notification`` event for the desk socket (``threads.events``, sent on commit, at
  most once like every socket frame);
- one ``OutboxMessage`` per subscribed ``WebhookEndpoint`` and one per email, committed
  with the change: a crash after the commit loses nothing, a rollback sends nothing.

:func:`deliver_due` (the worker's sweeper and ``manage.py deliver_webhooks``; never a
request) sends due rows: webhooks with ``urllib.request`` and a short timeout, signed
``X-Supportdesk-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, emails
through Django's email backend. Failures are retried with exponential backoff up to
``SUPPORTDESK_OUTBOX_MAX_ATTEMPTS``. Delivery is at least once: receivers deduplicate on
``X-Supportdesk-Delivery`` (the row's id, stable across retries).

A throttled escalation (over an escalation rate limit) notifies nobody.

Supervisors work the outbox in the admin through the services at the end of this
module: :func:`outbox_retry` (a failed delivery goes out again) and
:func:`webhook_endpoint_set_active` (disabling an endpoint fails what it still had
pending). :func:`outbox_prune` deletes sent rows older than
``SUPPORTDESK_OUTBOX_RETENTION_DAYS`` (the sweeper, ``deliver_webhooks --loop`` and
``manage.py prune_outbox`` call it).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import smtplib
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from escalations import summaries
from escalations.models import (
    Escalation,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
    WebhookEndpoint,
)
from threads import events

logger = logging.getLogger(__name__)

OPENED = "escalation.opened"
ASSIGNED = "escalation.assigned"
SLA_WARNING = "escalation.sla_warning"
SLA_BREACHED = "escalation.sla_breached"
EVENTS = (OPENED, ASSIGNED, SLA_WARNING, SLA_BREACHED)

SIGNATURE_HEADER = "X-Supportdesk-Signature"
DELIVERY_HEADER = "X-Supportdesk-Delivery"
EVENT_HEADER = "X-Supportdesk-Event"


class NotificationPayload(TypedDict):
    """The payload of a ``notification`` event (and the desk socket frame's fields)."""

    kind: str  # one of EVENTS
    escalation_id: str
    thread_id: str
    title: str
    summary: str
    priority: str
    source: str
    url: str
    # Whom it is for (the assignee); None: everyone at the desk.
    user_id: int | None
    sla_due_at: str | None


# --- writing notifications (inside the change's transaction) --------------------------


def _load(escalation: Escalation) -> Escalation:
    # Hooks earlier in the list (summary, SLA clock, routing) may have written the row.
    return Escalation.objects.select_related("thread", "claimed_by").get(pk=escalation.pk)


def _subject(escalation: Escalation) -> str:
    text = escalation.thread.subject or f"thread {escalation.thread_id}"
    return " ".join(text.split())[:120]


def _title(event: str, escalation: Escalation) -> str:
    subject = _subject(escalation)
    due = _due(escalation)
    return {
        OPENED: f"Escalation ({escalation.priority}): {subject}",
        ASSIGNED: f"Assigned to you: {subject}",
        SLA_WARNING: f"SLA due {due}: {subject}",
        SLA_BREACHED: f"SLA breached: {subject}",
    }[event]


def _due(escalation: Escalation) -> str:
    due = escalation.sla_due_at
    return due.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if due else "(no due time)"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _assignee(escalation: Escalation) -> dict[str, Any] | None:
    user = escalation.claimed_by
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username()}


def webhook_data(event: str, escalation: Escalation) -> dict[str, Any]:
    """The ``data`` of a webhook body: the escalation as a receiver needs it."""
    return {
        "escalation_id": str(escalation.pk),
        "thread_id": str(escalation.thread_id),
        "thread_url": summaries.thread_url(escalation.thread_id),
        "subject": escalation.thread.subject,
        "title": _title(event, escalation),
        "source": escalation.source,
        "reason": escalation.reason,
        "priority": escalation.priority,
        "status": escalation.status,
        "summary": escalation.summary or "",
        "confidence": escalation.confidence,
        "assignee": _assignee(escalation),
        "created_at": _iso(escalation.created_at),
        "claimed_at": _iso(escalation.claimed_at),
        "sla_due_at": _iso(escalation.sla_due_at),
    }


_HEADLINES = {
    OPENED: "A customer needs a person.",
    ASSIGNED: "You are now handling this escalation.",
    SLA_WARNING: "Most of the time to answer this escalation is gone.",
    SLA_BREACHED: "This escalation has missed its SLA.",
}


def email_payload(event: str, escalation: Escalation, to: list[str]) -> dict[str, Any]:
    """What an email outbox row stores: recipients, subject and plain-text body."""
    lines = [
        _HEADLINES[event],
        "",
        escalation.summary or "(no summary)",
        "",
        f"Priority: {escalation.priority}",
        f"Source: {escalation.source}",
    ]
    if escalation.sla_due_at:
        lines.append(f"SLA due: {_due(escalation)}")
    lines += ["", f"Full thread history: {summaries.thread_url(escalation.thread_id)}"]
    return {
        "to": to,
        "subject": f"[supportdesk] {_title(event, escalation)}"[:200],
        "body": "\n".join(lines) + "\n",
    }


def _supervisors(escalation: Escalation) -> list[str]:
    """The emails of the escalation's queue supervisors (the SLA code names them)."""
    try:
        from escalations.sla import queue_supervisors
    except ImportError:
        return []
    queue_id = getattr(escalation, "queue_id", None)
    if queue_id is None:
        return []
    return [email for email in queue_supervisors(queue_id).values_list("email", flat=True) if email]


def _recipients(event: str, escalation: Escalation) -> list[str]:
    assignee = escalation.claimed_by.email if escalation.claimed_by else ""
    team = list(settings.SUPPORTDESK_NOTIFY_EMAILS)
    if event == OPENED:
        wanted = team
    elif event == ASSIGNED:
        wanted = [assignee]
    elif event == SLA_WARNING:
        # The person who can still make it, and whoever watches the queue.
        wanted = [assignee, *_supervisors(escalation)]
        if not any(wanted):
            wanted = team
    else:
        wanted = [*team, *_supervisors(escalation), assignee]
    return [address for address in dict.fromkeys(wanted) if address]


def _key(event: str, escalation: Escalation, occurrence: str, target: str) -> str:
    return f"{event}:{escalation.pk}:{occurrence}:{target}"[:200]


def notify(
    escalation: Escalation,
    event: str,
    *,
    hold_seconds: int = 0,
    occurrence: str = "",
    due_at: datetime | None = None,
) -> list[OutboxMessage]:
    """Announce ``event`` about ``escalation``: desk socket, webhooks, email.

    Must run inside the transaction of the change (the hooks do): the outbox rows commit
    with it. ``hold_seconds`` delays emails and webhooks (waiting for a summary).
    ``occurrence`` tells repeated events apart (an SLA clock per target and due time, an
    assignment per claimer): the same (event, escalation, occurrence, recipient) is
    written once however often this is called. ``due_at`` is the SLA due time the event
    is about. Returns the rows (a duplicate is skipped by the database). Throttled
    escalations notify nobody.
    """
    escalation = _load(escalation)
    if escalation.throttled:
        return []
    if due_at is not None:
        escalation.sla_due_at = due_at
    payload = NotificationPayload(
        kind=event,
        escalation_id=str(escalation.pk),
        thread_id=str(escalation.thread_id),
        title=_title(event, escalation),
        summary=escalation.summary or "",
        priority=escalation.priority,
        source=escalation.source,
        url=summaries.thread_url(escalation.thread_id),
        user_id=escalation.claimed_by_id if event != OPENED else None,
        sla_due_at=_iso(escalation.sla_due_at),
    )
    events.emit("notification", thread_id=str(escalation.thread_id), payload=payload)
    now = timezone.now()
    due = now + timedelta(seconds=hold_seconds)
    rows: list[OutboxMessage] = []
    for endpoint in WebhookEndpoint.objects.filter(active=True):
        if not endpoint.wants(event):
            continue
        row = OutboxMessage(
            kind=OutboxKind.WEBHOOK,
            endpoint=endpoint,
            event=event,
            escalation=escalation,
            next_attempt_at=due,
            dedupe_key=_key(event, escalation, occurrence, f"webhook:{endpoint.pk}"),
            payload={},
        )
        row.payload = _webhook_body(row, event, escalation, now)
        rows.append(row)
    to = _recipients(event, escalation)
    if to:
        rows.append(
            OutboxMessage(
                kind=OutboxKind.EMAIL,
                event=event,
                escalation=escalation,
                next_attempt_at=due,
                dedupe_key=_key(event, escalation, occurrence, "email"),
                payload=email_payload(event, escalation, to),
            )
        )
    if rows:
        OutboxMessage.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


def _webhook_body(
    row: OutboxMessage, event: str, escalation: Escalation, now: datetime
) -> dict[str, Any]:
    return {
        "id": str(row.pk),
        "event": event,
        "created_at": now.isoformat(),
        "data": webhook_data(event, escalation),
    }


def notify_opened(escalation: Escalation) -> None:
    """``opened_hooks``: a new escalation. While the model refines its summary, emails
    and webhooks wait (at most ``SUPPORTDESK_SUMMARY_HOLD_SECONDS``)."""
    hold = (
        settings.SUPPORTDESK_SUMMARY_HOLD_SECONDS
        if getattr(escalation, summaries.REFINING_ATTR, False)
        else 0
    )
    notify(escalation, OPENED, hold_seconds=hold)


def notify_assigned(escalation: Escalation) -> None:
    """``claimed_hooks``: the escalation has a person now."""
    notify(escalation, ASSIGNED, occurrence=f"user-{escalation.claimed_by_id}")


def _sla_occurrence(escalation: Escalation, detail: Any) -> tuple[str, datetime | None]:
    # The SLA code passes what happened: a warning (target, due_at) or a breach row
    # (target, due_at). A next-response clock can warn again after the next message.
    target = str(getattr(detail, "target", "") or getattr(escalation, "sla_target", "") or "")
    due_at = getattr(detail, "due_at", None) or escalation.sla_due_at
    return f"{target}:{due_at.isoformat() if due_at else ''}", due_at


def notify_sla_warning(escalation: Escalation, warning: Any = None) -> None:
    """``sla_warning_hooks``: 80 % of an SLA target has gone (``warning.due_at`` is due)."""
    occurrence, due_at = _sla_occurrence(escalation, warning)
    notify(escalation, SLA_WARNING, occurrence=occurrence, due_at=due_at)


def notify_sla_breach(escalation: Escalation, breach: Any = None) -> None:
    """``sla_breach_hooks``: an SLA target was missed."""
    occurrence, due_at = _sla_occurrence(escalation, breach)
    notify(escalation, SLA_BREACHED, occurrence=occurrence, due_at=due_at)


def register_sla_hooks(
    *, warning_hooks: list[Any] | None = None, breach_hooks: list[Any] | None = None
) -> None:
    """Plug the SLA notifications into the SLA code's hook lists (idempotent).

    The SLA code calls each hook with the escalation, inside its transaction, once per
    warning (at 80 % of the target) and once per breach.
    """
    if warning_hooks is not None and notify_sla_warning not in warning_hooks:
        warning_hooks.append(notify_sla_warning)
    if breach_hooks is not None and notify_sla_breach not in breach_hooks:
        breach_hooks.append(notify_sla_breach)


def release_held(escalation: Escalation) -> int:
    """Send the held ``escalation.opened`` notifications now, with the current summary.

    Called by the summary refinement in its transaction. Rows already tried are left
    alone. Returns how many were released.
    """
    escalation = _load(escalation)
    now = timezone.now()
    released = 0
    held = OutboxMessage.objects.filter(
        escalation=escalation, event=OPENED, status=OutboxStatus.PENDING, attempts=0
    )
    for row in held:
        if row.kind == OutboxKind.WEBHOOK:
            payload = {**row.payload, "data": webhook_data(OPENED, escalation)}
        else:
            payload = email_payload(OPENED, escalation, list(row.payload.get("to", [])))
        released += OutboxMessage.objects.filter(
            pk=row.pk, status=OutboxStatus.PENDING, attempts=0
        ).update(payload=payload, next_attempt_at=min(now, row.next_attempt_at))
    return released


# --- signatures -----------------------------------------------------------------------


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes a webhook sends (and signs)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256 over "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: check the signature and that the timestamp is recent."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


# --- delivery (a worker loop, never a request) ---------------------------------------------


class DeliveryError(Exception):
    """This attempt failed; try again later."""


class PermanentDeliveryError(DeliveryError):
    """No retry can succeed (endpoint removed or disabled, unusable URL)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would re-send the signed body elsewhere (or drop it for a GET): refuse.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _send_webhook(message: OutboxMessage) -> None:
    endpoint = message.endpoint
    if endpoint is None or not endpoint.active:
        raise PermanentDeliveryError("the endpoint is disabled or gone")
    if urlsplit(endpoint.url).scheme not in ("http", "https"):
        raise PermanentDeliveryError("the endpoint URL is not http(s)")
    body = body_bytes(message.payload)
    request = urllib.request.Request(
        endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "supportdesk-webhooks/1",
            EVENT_HEADER: message.event,
            DELIVERY_HEADER: str(message.pk),
            SIGNATURE_HEADER: sign(endpoint.secret, int(time.time()), body),
        },
    )
    try:
        with _opener.open(request, timeout=settings.SUPPORTDESK_WEBHOOK_TIMEOUT) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"the receiver answered {exc.code}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DeliveryError(f"could not reach the receiver: {exc}") from exc


def _send_email(message: OutboxMessage) -> None:
    payload = message.payload
    email = EmailMessage(
        subject=" ".join(str(payload.get("subject", "")).split()),
        body=str(payload.get("body", "")),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(payload.get("to", [])),
        headers={DELIVERY_HEADER: str(message.pk)},
    )
    try:
        email.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"the mail server refused: {exc}") from exc


def backoff_seconds(attempts: int) -> float:
    """Wait before retry number ``attempts`` (1, 2, …): doubling, capped, with jitter."""
    base = settings.SUPPORTDESK_OUTBOX_BACKOFF * (2 ** max(0, attempts - 1))
    return float(min(base, settings.SUPPORTDESK_OUTBOX_BACKOFF_CAP) * (0.75 + random.random() / 4))


def deliver_due(
    *, now: datetime | None = None, limit: int = 50, budget_seconds: float = 15.0
) -> dict[str, int]:
    """Send the outbox rows that are due; returns counts (sent, retrying, failed).

    Stops claiming after ``budget_seconds`` so a slow receiver cannot hold up the rest of
    the sweeper's loop (the remaining rows are still due next time).

    Each row is claimed with a conditional update (status pending, the attempts count we
    read, due by now) that counts the attempt and pushes ``next_attempt_at`` one lease
    ahead: only one worker wins it, and if that worker dies mid-send the row is due
    again after the lease (at least once). Errors are recorded on the row, never raised.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=settings.SUPPORTDESK_OUTBOX_LEASE_SECONDS)
    counts = {"outbox_sent": 0, "outbox_retrying": 0, "outbox_failed": 0}
    due = list(
        OutboxMessage.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", "attempts")[:limit]
    )
    started = time.monotonic()
    for pk, attempts in due:
        if time.monotonic() - started > budget_seconds:
            break
        claimed = OutboxMessage.objects.filter(
            pk=pk, status=OutboxStatus.PENDING, attempts=attempts, next_attempt_at__lte=now
        ).update(attempts=attempts + 1, next_attempt_at=now + lease)
        if not claimed:
            continue  # another worker has it
        message = OutboxMessage.objects.select_related("endpoint").get(pk=pk)
        mine = OutboxMessage.objects.filter(pk=pk, attempts=attempts + 1)
        try:
            if message.kind == OutboxKind.WEBHOOK:
                _send_webhook(message)
            else:
                _send_email(message)
        except Exception as exc:
            if not isinstance(exc, DeliveryError):
                logger.exception("outbox row %s: unexpected error", pk)
            error = str(exc)[:2000] or exc.__class__.__name__
            if (
                isinstance(exc, PermanentDeliveryError)
                or attempts + 1 >= settings.SUPPORTDESK_OUTBOX_MAX_ATTEMPTS
            ):
                mine.update(status=OutboxStatus.FAILED, last_error=error)
                counts["outbox_failed"] += 1
                logger.warning("outbox row %s (%s) failed for good: %s", pk, message.event, error)
            else:
                mine.update(
                    last_error=error,
                    next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts + 1)),
                )
                counts["outbox_retrying"] += 1
            continue
        mine.update(status=OutboxStatus.SENT, sent_at=timezone.now(), last_error="")
        counts["outbox_sent"] += 1
    return counts


# --- supervisors' operations on the outbox (the admin's actions call these) -------------

DISABLED_ERROR = "the endpoint was disabled"


@transaction.atomic
def outbox_retry(*, message: OutboxMessage) -> OutboxMessage:
    """Send a failed delivery again: it is pending and due now, with a fresh run of
    ``SUPPORTDESK_OUTBOX_MAX_ATTEMPTS`` attempts (same id, so receivers deduplicate).

    Conditional on ``status = 'failed'`` (checked by row count): a row that is pending
    or sent raises NotRetryable, a webhook whose endpoint is disabled EndpointDisabled.
    """
    from escalations.exceptions import EndpointDisabled, NotRetryable

    endpoint = message.endpoint if message.kind == OutboxKind.WEBHOOK else None
    if (
        endpoint is not None
        and not WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).exists()
    ):
        raise EndpointDisabled()
    won = OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.FAILED).update(
        status=OutboxStatus.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    if not won:
        raise NotRetryable()
    message.refresh_from_db()
    return message


@transaction.atomic
def webhook_endpoint_set_active(
    *, endpoint: WebhookEndpoint, active: bool
) -> tuple[WebhookEndpoint, int]:
    """Enable or disable a webhook endpoint; returns (endpoint, deliveries failed).

    Disabling fails the deliveries still pending for it at once (``last_error`` says
    why), so nothing waits for an endpoint that will not be called; they can be retried
    once it is enabled again. Conditional on the current state: setting the state it
    already has changes nothing (0 failed).
    """
    changed = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=not active).update(
        active=active
    )
    endpoint.active = active
    if not changed or active:
        return endpoint, 0
    failed = OutboxMessage.objects.filter(endpoint=endpoint, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.FAILED, last_error=DISABLED_ERROR
    )
    return endpoint, failed


def outbox_prune(
    *, now: datetime | None = None, days: float | None = None, batch: int = 1000
) -> int:
    """Delete sent rows older than ``days`` (default ``SUPPORTDESK_OUTBOX_RETENTION_DAYS``;
    0 keeps everything); returns how many. Pending and failed rows are never pruned.

    Batches of ``batch`` rows, each its own short transaction, through the partial index
    on sent rows: safe beside the senders (a row is only pruned once it is sent).
    """
    days = settings.SUPPORTDESK_OUTBOX_RETENTION_DAYS if days is None else days
    if not days or days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    sent = OutboxMessage.objects.filter(status=OutboxStatus.SENT, sent_at__lt=cutoff)
    pruned = 0
    while True:
        ids = list(sent.order_by("sent_at").values_list("pk", flat=True)[:batch])
        if not ids:
            return pruned
        deleted, _ = OutboxMessage.objects.filter(pk__in=ids, status=OutboxStatus.SENT).delete()
        pruned += deleted
        if len(ids) < batch:
            return pruned
