"""SLA clocks of escalations: due dates in business hours, pauses, warnings and breaches.

A queue's ``SLAPolicy`` gives, per priority, two targets in seconds of business time:

- ``first_response``: from the escalation to the first public human reply;
- ``next_response``: from a customer message (while a human owns the thread) to the next
  public human reply.

Exactly one clock runs at a time, described by ``Escalation.sla_target``,
``sla_started_at`` and ``sla_due_at`` (copied to ``Thread.sla_due_at`` for the desk).
A human reply stops it (``on_human_reply``); the next customer message starts the next
one (``on_customer_message``). Between the two the customer is the one who has to answer,
so no clock runs: that is the pause. Business hours (the queue's, else the policy's)
stop the clock outside their ranges.

``sla_sweep`` looks only at rows whose ``sla_check_at`` has come (a partial index): first
the warning at 80 % of the target, then the due time. A breach is recorded once per
escalation and target (a constraint), raises the priority, is broadcast, and runs
``sla_breach_hooks``; a warning runs ``sla_warning_hooks``. Hooks run inside the sweep's
transaction: anything that leaves the process (email, webhooks) must wait for the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from escalations.models import (
    ACTIVE_ESCALATION,
    BusinessHours,
    BusinessHoursRange,
    Escalation,
    Queue,
    QueueMember,
    QueueRole,
    SLABreach,
    SLAKind,
    SLATarget,
)
from threads import events
from threads import services as thread_services
from threads.models import AuthorKind, Message, Priority, Responder, Role, Thread, Visibility

logger = logging.getLogger(__name__)

# The warning goes out when this share of the target has elapsed.
WARNING_FRACTION = 0.8
# Rows the sweeper locks and handles per transaction.
SWEEP_BATCH = 200

PRIORITY_ORDER = [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT]


@dataclass(frozen=True)
class SLAWarning:
    """What ``sla_warning_hooks`` receive: ``target`` will be missed at ``due_at``."""

    escalation: Escalation
    target: str
    due_at: datetime


# The notifications feature plugs in here (the people to tell: ``queue_supervisors`` of
# ``escalation.queue_id``, and the assignee). Called as ``hook(escalation, warning)`` and
# ``hook(escalation, breach)``, inside the sweep's transaction.
sla_warning_hooks: list[Callable[[Escalation, SLAWarning], object]] = []
sla_breach_hooks: list[Callable[[Escalation, SLABreach], object]] = []


def raised(priority: str) -> str:
    """The next priority up (urgent stays urgent)."""
    index = PRIORITY_ORDER.index(Priority(priority))
    return PRIORITY_ORDER[min(index + 1, len(PRIORITY_ORDER) - 1)]


def higher(first: str, second: str) -> str:
    return max(first, second, key=lambda p: PRIORITY_ORDER.index(Priority(p)))


# --- Business time ------------------------------------------------------------------------

# A clock never needs to look further ahead than this (a target of months in a calendar
# of one hour a week would; that is a configuration error, not something to loop on).
MAX_CALENDAR_DAYS = 3660


@dataclass(frozen=True)
class Calendar:
    """Weekly open ranges (wall-clock times in ``zone``); ``add`` counts only open time."""

    zone: ZoneInfo
    ranges: dict[int, tuple[tuple[time, time], ...]]

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment ``seconds`` of open time after ``start``."""
        remaining = timedelta(seconds=max(seconds, 0))
        day = start.astimezone(self.zone).date()
        for _ in range(MAX_CALENDAR_DAYS):
            for opens, closes in self.ranges.get(day.weekday(), ()):
                # Through UTC, so a range that spans a DST change has its real length.
                open_at = datetime.combine(day, opens, tzinfo=self.zone).astimezone(UTC)
                close_day = day + timedelta(days=1) if closes == time(0) else day
                close_at = datetime.combine(close_day, closes, tzinfo=self.zone).astimezone(UTC)
                begin = max(open_at, start)
                if begin >= close_at:
                    continue
                if remaining <= close_at - begin:
                    return begin + remaining
                remaining -= close_at - begin
            day += timedelta(days=1)
        raise ValueError(f"{seconds} s of business time do not fit in {MAX_CALENDAR_DAYS} days")


def calendar_of(hours: BusinessHours | None) -> Calendar | None:
    """The calendar of ``hours`` (one query); None means around the clock, and so does a
    calendar without any range (a calendar that never opens would never be due)."""
    if hours is None:
        return None
    try:
        zone = ZoneInfo(hours.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        logger.error("business hours %s: unknown timezone %r; using UTC", hours.pk, hours.timezone)
        zone = ZoneInfo("UTC")
    ranges: dict[int, list[tuple[time, time]]] = {}
    for row in BusinessHoursRange.objects.filter(hours=hours).order_by("weekday", "start"):
        ranges.setdefault(row.weekday, []).append((row.start, row.end))
    if not ranges:
        return None
    return Calendar(zone=zone, ranges={day: tuple(spans) for day, spans in ranges.items()})


@dataclass(frozen=True)
class Policy:
    """A queue's SLA, loaded once: seconds per (priority, target), and its calendar."""

    targets: dict[tuple[str, str], int]
    calendar: Calendar | None

    def add(self, start: datetime, seconds: float) -> datetime:
        if self.calendar is None:
            return start + timedelta(seconds=seconds)
        return self.calendar.add(start, seconds)

    def clock(self, *, priority: str, target: str, started: datetime) -> dict[str, Any]:
        """The escalation fields of a clock for ``target`` started at ``started`` (the
        fields of no clock when the policy has no such target)."""
        seconds = self.targets.get((priority, target))
        if seconds is None:
            return dict(NO_CLOCK)
        due = self.add(started, seconds)
        warn = self.add(started, seconds * WARNING_FRACTION)
        return {
            "sla_target": target,
            "sla_started_at": started,
            "sla_due_at": due,
            "sla_check_at": min(warn, due),
        }


NO_CLOCK: dict[str, Any] = {
    "sla_target": "",
    "sla_started_at": None,
    "sla_due_at": None,
    "sla_check_at": None,
}


def policy_for(queue: Queue | None) -> Policy | None:
    """The SLA of ``queue`` (two or three queries), None when it has no policy."""
    if queue is None or queue.sla_policy_id is None:
        return None
    targets: dict[tuple[str, str], int] = {}
    for row in SLATarget.objects.filter(policy_id=queue.sla_policy_id):
        if row.first_response_seconds is not None:
            targets[(row.priority, SLAKind.FIRST_RESPONSE)] = row.first_response_seconds
        if row.next_response_seconds is not None:
            targets[(row.priority, SLAKind.NEXT_RESPONSE)] = row.next_response_seconds
    hours = queue.business_hours
    if hours is None and queue.sla_policy is not None:
        hours = queue.sla_policy.business_hours
    return Policy(targets=targets, calendar=calendar_of(hours))


def _queue_with_policy(queue_id: int | None) -> Queue | None:
    if queue_id is None:
        return None
    return (
        Queue.objects.select_related("business_hours", "sla_policy", "sla_policy__business_hours")
        .filter(pk=queue_id)
        .first()
    )


def _set_thread_due(thread_id: Any, due: datetime | None) -> None:
    # The thread's copy of the running clock, for the desk list (thread_sla_due_idx).
    Thread.objects.filter(pk=thread_id).update(sla_due_at=due, updated_at=timezone.now())
    events.emit("thread.updated", thread_id=str(thread_id), payload={"reason": "sla"})


# --- Starting and stopping clocks (hooks) ----------------------------------------------


def first_response_clock(*, queue: Queue, priority: str, started: datetime) -> dict[str, Any]:
    """The clock fields of a new escalation in ``queue`` (used by the routing hook)."""
    policy = policy_for(queue)
    if policy is None:
        return dict(NO_CLOCK)
    return policy.clock(priority=priority, target=SLAKind.FIRST_RESPONSE, started=started)


def on_customer_message(message: Message) -> None:
    """``customer_message_hooks``: a customer wrote on a human-owned thread whose clock
    is paused (a human answered last): the next-response clock starts at this message.

    Costs nothing on AI-owned threads; one query when a clock already runs.
    """
    thread = message.thread
    if thread.responder != Responder.HUMAN:
        return
    escalation = (
        Escalation.objects.filter(thread_id=thread.pk, status__in=ACTIVE_ESCALATION)
        .only("pk", "queue_id", "priority", "sla_target", "thread_id")
        .first()
    )
    if escalation is None or escalation.queue_id is None or escalation.sla_target:
        return
    policy = policy_for(_queue_with_policy(escalation.queue_id))
    if policy is None:
        return
    fields = policy.clock(
        priority=escalation.priority, target=SLAKind.NEXT_RESPONSE, started=message.created_at
    )
    if not fields["sla_target"]:
        return
    # Conditional: two customer messages racing start one clock, from the first.
    if Escalation.objects.filter(pk=escalation.pk, sla_target="").update(**fields):
        _set_thread_due(thread.pk, fields["sla_due_at"])


def on_human_reply(message: Message) -> None:
    """``human_reply_hooks``: a public human reply meets the running target; the clock
    stops until the customer writes again (waiting on the customer does not count)."""
    if message.visibility != Visibility.PUBLIC:
        return
    stopped = (
        Escalation.objects.filter(thread_id=message.thread_id, status__in=ACTIVE_ESCALATION)
        .exclude(sla_target="")
        .update(**NO_CLOCK)
    )
    if stopped:
        _set_thread_due(message.thread_id, None)


def on_resolved(escalation: Escalation) -> None:
    """``resolved_hooks``: a resolved escalation has no clock."""
    if escalation.sla_target or escalation.sla_check_at is not None:
        Escalation.objects.filter(pk=escalation.pk).update(**NO_CLOCK)
        for name, value in NO_CLOCK.items():
            setattr(escalation, name, value)
    Thread.objects.filter(pk=escalation.thread_id, sla_due_at__isnull=False).update(sla_due_at=None)


# --- The sweeper ---------------------------------------------------------------------


def _human_reply_since(started: Any) -> Exists:
    return Exists(
        Message.objects.filter(
            thread_id=OuterRef("thread_id"),
            author_kind=AuthorKind.HUMAN,
            visibility=Visibility.PUBLIC,
            created_at__gte=started,
        )
    )


def due_rows(now: datetime) -> QuerySet[Escalation]:
    """Escalations whose SLA check time has come, earliest first: a range scan of the
    partial index ``escalation_sla_check_idx``, so rows not due are never read. (No
    status filter: it would tempt a planner to the status index. A resolved escalation
    has no check time; ``_sweep_one`` clears one that still had.)"""
    return (
        Escalation.objects.filter(sla_check_at__lte=now)
        .annotate(replied=_human_reply_since(OuterRef("sla_started_at")))
        .order_by("sla_check_at")
    )


def due_batch(now: datetime, *, exclude: set[Any] | None = None) -> QuerySet[Escalation]:
    """One batch of due rows for a sweeper, locked with their threads; rows another
    sweeper (or a reply, a claim) holds are skipped, never waited for."""
    rows = due_rows(now)
    if exclude:
        rows = rows.exclude(pk__in=exclude)
    return rows.select_related("thread").select_for_update(skip_locked=True, of=("self", "thread"))[
        :SWEEP_BATCH
    ]


def sla_sweep(*, now: datetime | None = None, limit: int = 10_000) -> dict[str, int]:
    """Warn about and record breaches of every SLA clock whose check time has come.

    Reads only due rows (``sla_check_at <= now``), locked with ``skip_locked`` so
    sweepers running beside several workers share the work; each row is handled once
    per step (a conditional update on ``sla_check_at``). Per row:

    - a human already replied (a reply that bypassed ``on_human_reply``): the target
      was met; the clock stops, or restarts on a later customer message;
    - the 80 % mark: ``sla_warning_hooks``, and the next check is the due time;
    - the due time: one ``SLABreach`` per escalation and target; the escalation's
      priority goes one up (and the thread's, if lower), ``sla_breached_at`` is set,
      ``escalation.updated`` and ``sla.breached`` are broadcast and ``sla_breach_hooks``
      run. A clock that breached is not checked again.

    Returns the counts ``{"warned", "breached", "met"}``.
    """
    now = now or timezone.now()
    counts = {"warned": 0, "breached": 0, "met": 0}
    failed: set[Any] = set()
    handled = 0
    while handled < limit:
        with transaction.atomic():
            rows = list(due_batch(now, exclude=failed))
            for escalation in rows:
                try:
                    with transaction.atomic():
                        outcome = _sweep_one(escalation, now)
                except Exception:
                    logger.exception("SLA sweep of escalation %s failed", escalation.pk)
                    failed.add(escalation.pk)
                    continue
                if outcome:
                    counts[outcome] += 1
        if not rows:
            break
        handled += len(rows)
    return counts


def _sweep_one(escalation: Escalation, now: datetime) -> str | None:
    check_at = escalation.sla_check_at
    assert check_at is not None
    if escalation.status not in ACTIVE_ESCALATION:
        Escalation.objects.filter(pk=escalation.pk).update(**NO_CLOCK)
        return None
    if getattr(escalation, "replied", False):
        return _met(escalation)
    due = escalation.sla_due_at
    if due is not None and check_at < due:
        if not Escalation.objects.filter(pk=escalation.pk, sla_check_at=check_at).update(
            sla_check_at=due
        ):
            return None
        escalation.sla_check_at = due
        warning = SLAWarning(escalation=escalation, target=escalation.sla_target, due_at=due)
        for hook in sla_warning_hooks:
            hook(escalation, warning)
        return "warned"
    return _breach(escalation, now)


def _met(escalation: Escalation) -> str | None:
    if not Escalation.objects.filter(pk=escalation.pk, sla_check_at=escalation.sla_check_at).update(
        **NO_CLOCK
    ):
        return None
    # A customer message after the last human reply starts the next clock at once.
    last_reply = (
        Message.objects.filter(
            thread_id=escalation.thread_id,
            author_kind=AuthorKind.HUMAN,
            visibility=Visibility.PUBLIC,
        )
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    waiting = (
        Message.objects.filter(
            thread_id=escalation.thread_id, role=Role.USER, seq__gt=last_reply or 0
        )
        .order_by("seq")
        .first()
    )
    due = None
    if waiting is not None:
        policy = policy_for(_queue_with_policy(escalation.queue_id))
        if policy is not None:
            fields = policy.clock(
                priority=escalation.priority,
                target=SLAKind.NEXT_RESPONSE,
                started=waiting.created_at,
            )
            Escalation.objects.filter(pk=escalation.pk).update(**fields)
            due = fields["sla_due_at"]
    _set_thread_due(escalation.thread_id, due)
    return "met"


def _breach(escalation: Escalation, now: datetime) -> str | None:
    if not Escalation.objects.filter(pk=escalation.pk, sla_check_at=escalation.sla_check_at).update(
        sla_check_at=None
    ):
        return None
    escalation.sla_check_at = None
    breach, created = SLABreach.objects.get_or_create(
        escalation=escalation,
        target=escalation.sla_target,
        defaults={
            "queue_id": escalation.queue_id,
            "priority": escalation.priority,
            "due_at": escalation.sla_due_at,
            "breached_at": now,
        },
    )
    if not created:
        return None  # this target already breached once in this escalation
    priority = raised(escalation.priority)
    fields: dict[str, Any] = {"priority": priority}
    if escalation.sla_breached_at is None:
        fields["sla_breached_at"] = now
    Escalation.objects.filter(pk=escalation.pk).update(**fields)
    for name, value in fields.items():
        setattr(escalation, name, value)
    thread = escalation.thread
    if higher(thread.priority, priority) != thread.priority:
        thread_services.thread_update(thread=thread, priority=priority)
    payload = {"escalation_id": str(escalation.pk), "status": escalation.status}
    events.emit("escalation.updated", thread_id=str(thread.pk), payload=payload)
    events.emit(
        "sla.breached",
        thread_id=str(thread.pk),
        payload=events.SLABreachedPayload(
            escalation_id=str(escalation.pk),
            target=breach.target,
            due_at=breach.due_at.isoformat(),
            priority=priority,
        ),
    )
    breach.escalation = escalation
    for hook in sla_breach_hooks:
        hook(escalation, breach)
    return "breached"


def queue_supervisors(queue_id: int | None) -> QuerySet[Any]:
    """The users to tell about an SLA warning or breach in ``queue_id`` (none without
    a queue)."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    if queue_id is None:
        return users.none()
    return users.filter(
        is_active=True,
        pk__in=QueueMember.objects.filter(queue_id=queue_id, role=QueueRole.SUPERVISOR).values(
            "user_id"
        ),
    )
