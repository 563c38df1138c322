"""Reads of the AI runtime: the usage roll-up behind ``GET /api/v1/desk/usage/`` and
``manage.py usage_report`` (both call :func:`usage_rows`).

A row puts the machine's work (model calls, tokens, cost, latency) beside the people's:

- ``human_messages``: public replies written by human agents;
- ``human_handle_seconds``: escalation handle time, from the claim to the resolution,
  counted when the escalation is resolved (work still in progress is not in a report);
- ``human_active_seconds``: active reply time, for each human reply the time since the
  message before it that the human was answering (the customer's, or their own previous
  reply; never before they got the thread), capped at
  ``SUPPORTDESK_HUMAN_REPLY_CAP_SECONDS`` so a reply sent the next morning counts as
  reading and typing, not as the night;
- ``drafts_edited``: AI drafts a human changed before sending them;
- ``escalations_handled``: escalations resolved after being claimed.
Grouped by ``day``, ``thread``, ``agent`` (the LLM provider for the machine's work, the
username for the people's), ``model`` (machine work only) or ``escalation``: one row per
escalation resolved in the period (keyed by its id) with what it cost — its handle time,
the human replies, active reply time and edited drafts on its thread while it was open,
and the model calls on its thread while it was open plus those of the turn that
escalated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from approvals.models import ApprovalDraft
from escalations.models import Escalation
from supportdesk.agent.models import ModelCall
from threads.models import Assignment, AuthorKind, Message, Role, Visibility

GROUPS = ("day", "thread", "agent", "model", "escalation")
MAX_ROWS = 1000
DEFAULT_DAYS = 30

USAGE_FIELDS = (
    "key",
    "model_calls",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "avg_latency_ms",
    "human_messages",
    "human_handle_seconds",
    "human_active_seconds",
    "drafts_edited",
    "escalations_handled",
)


def parse_moment(raw: str | None, *, end: bool) -> datetime | None:
    """An ISO date or date-time (naive means UTC); a bare date as ``until`` means the end
    of that day. None for an empty value; ValueError for anything else."""
    if raw is None or raw == "":
        return None
    moment = parse_datetime(raw) if "T" in raw or " " in raw else None
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError(raw)
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


class WindowError(ValueError):
    """A bad ``since``/``until``; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


BAD_MOMENT = "Use an ISO 8601 date or date-time."


def usage_window(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    """``since``/``until`` as given (defaults: the last 30 days). Raises WindowError."""
    try:
        end = parse_moment(until, end=True)
    except ValueError:
        raise WindowError("until", BAD_MOMENT) from None
    try:
        start = parse_moment(since, end=False)
    except ValueError:
        raise WindowError("since", BAD_MOMENT) from None
    end = end or timezone.now()
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start > end:
        raise WindowError("since", "Must not be after until.")
    return start, end


def empty_row(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "model_calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": "0",
        "avg_latency_ms": None,
        "human_messages": 0,
        "human_handle_seconds": 0,
        "human_active_seconds": 0,
        "drafts_edited": 0,
        "escalations_handled": 0,
    }


def _day(moment: datetime) -> str:
    # The same day TruncDate gives: in the current time zone.
    return str(timezone.localtime(moment).date())


def usage_rows(*, since: datetime, until: datetime, group_by: str) -> list[dict[str, Any]]:
    """The usage rows of ``[since, until)`` grouped by ``group_by``, sorted by key, at
    most ``MAX_ROWS``. A bounded number of queries whatever the number of rows."""
    if group_by not in GROUPS:
        raise ValueError(group_by)
    if group_by == "escalation":
        return _escalation_rows(since, until)
    rows: dict[str, dict[str, Any]] = {}

    def row(key: Any) -> dict[str, Any]:
        text = str(key)
        return rows.setdefault(text, empty_row(text))

    _add_model_calls(
        row, group_by, ModelCall.objects.filter(created_at__gte=since, created_at__lt=until)
    )
    if group_by != "model":
        _add_human_messages(row, group_by, since, until)
        _add_handle_time(row, group_by, since, until)
        _add_drafts(row, group_by, since, until)
    return [rows[key] for key in sorted(rows)][:MAX_ROWS]


def _add_model_calls(row: Any, group_by: str, calls: QuerySet[ModelCall]) -> None:
    key_field = {"day": "day", "thread": "thread_id", "model": "model", "agent": "provider"}[
        group_by
    ]
    if group_by == "day":
        calls = calls.annotate(day=TruncDate("created_at"))
    totals = (
        calls.values(key_field)
        .annotate(
            n=Count("pk"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost"),
            latency=Avg("latency_ms"),
        )
        .order_by(key_field)
    )
    for total in totals:
        row(total[key_field]).update(
            model_calls=total["n"],
            prompt_tokens=total["prompt"] or 0,
            completion_tokens=total["completion"] or 0,
            cost=str(total["cost"] or 0),
            avg_latency_ms=int(total["latency"]) if total["latency"] is not None else None,
        )


def _human_replies(since: datetime, until: datetime) -> QuerySet[Message]:
    return Message.objects.filter(
        created_at__gte=since,
        created_at__lt=until,
        author_kind=AuthorKind.HUMAN,
        visibility=Visibility.PUBLIC,
    )


def _add_human_messages(row: Any, group_by: str, since: datetime, until: datetime) -> None:
    key = {"day": "day", "thread": "thread_id", "agent": "author_user__username"}[group_by]
    human = _human_replies(since, until)
    if group_by == "day":
        human = human.annotate(day=TruncDate("created_at"))
    for total in human.values(key).annotate(n=Count("pk")).order_by(key):
        row(total[key])["human_messages"] = total["n"]
    _add_active_time(row, group_by, since, until)


def _add_active_time(row: Any, group_by: str, since: datetime, until: datetime) -> None:
    key = {"day": "created_at", "thread": "thread_id", "agent": "author_user__username"}[group_by]
    for group, seconds in _active_times(_human_replies(since, until), key):
        target = row(_day(group) if group_by == "day" else group)
        target["human_active_seconds"] += round(seconds)


def _active_times(replies: QuerySet[Message], *keys: str) -> list[tuple[Any, ...]]:
    """``(key values..., active seconds)`` per human reply of ``replies``: the time since
    the message it answers (or since the human got the thread, if later), capped."""
    answered = (
        Message.objects.filter(
            thread=OuterRef("thread"),
            seq__lt=OuterRef("seq"),
            visibility=Visibility.PUBLIC,
            author_kind__in=[AuthorKind.CUSTOMER, AuthorKind.HUMAN],
        )
        .order_by("-seq")
        .values("created_at")[:1]
    )
    got_thread = (
        Assignment.objects.filter(
            thread=OuterRef("thread"),
            assignee=OuterRef("author_user"),
            created_at__lte=OuterRef("created_at"),
        )
        .order_by("-id")
        .values("created_at")[:1]
    )
    rows = (
        replies.filter(role=Role.ASSISTANT)
        .annotate(answered_at=Subquery(answered), got_thread_at=Subquery(got_thread))
        .values_list(*keys, "created_at", "answered_at", "got_thread_at")
    )
    cap = settings.SUPPORTDESK_HUMAN_REPLY_CAP_SECONDS
    times = []
    for *values, sent_at, answered_at, got_thread_at in rows:
        anchors = [moment for moment in (answered_at, got_thread_at) if moment is not None]
        if not anchors:
            continue
        seconds = min(cap, max(0.0, (sent_at - max(anchors)).total_seconds()))
        times.append((*values, seconds))
    return times


def _add_handle_time(row: Any, group_by: str, since: datetime, until: datetime) -> None:
    key = {"day": "resolved_at", "thread": "thread_id", "agent": "claimed_by__username"}[group_by]
    handled: Iterable[tuple[Any, datetime, datetime]] = Escalation.objects.filter(
        resolved_at__gte=since, resolved_at__lt=until, claimed_at__isnull=False
    ).values_list(key, "claimed_at", "resolved_at")
    for group, claimed_at, resolved_at in handled:
        target = row(_day(group) if group_by == "day" else group)
        target["human_handle_seconds"] += round(
            max(0.0, (resolved_at - claimed_at).total_seconds())
        )
        target["escalations_handled"] += 1


def _add_drafts(row: Any, group_by: str, since: datetime, until: datetime) -> None:
    key = {"day": "day", "thread": "thread_id", "agent": "decided_by__username"}[group_by]
    drafts = ApprovalDraft.objects.filter(edited=True, decided_at__gte=since, decided_at__lt=until)
    if group_by == "day":
        drafts = drafts.annotate(day=TruncDate("decided_at"))
    for total in drafts.values(key).annotate(n=Count("pk")).order_by(key):
        row(total[key])["drafts_edited"] = total["n"]


@dataclass(frozen=True)
class _Span:
    """An escalation resolved in the period, from its opening to its resolution."""

    pk: Any
    thread_id: Any
    turn_id: Any
    opened: datetime
    claimed: datetime | None
    resolved: datetime


def _escalation_rows(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """``group_by=escalation``: the escalations resolved in ``[since, until)`` and what each
    cost, people and machine (five queries whatever the number of rows).

    An escalation's span is from its opening to its resolution; on a thread at most one
    escalation is active at a time, so a reply, a draft or a model call on the thread
    belongs to the escalation whose span holds it. The turn that escalated (before the
    span) counts for it too: that is what the AI tried first.
    """
    spans = [
        _Span(pk, thread_id, turn_id, opened, claimed, resolved)
        for pk, thread_id, turn_id, opened, claimed, resolved in Escalation.objects.filter(
            resolved_at__gte=since, resolved_at__lt=until
        )
        .order_by("pk")
        .values_list("pk", "thread_id", "turn_id", "created_at", "claimed_at", "resolved_at")[
            :MAX_ROWS
        ]
        if resolved is not None
    ]
    if not spans:
        return []
    rows = {span.pk: empty_row(str(span.pk)) for span in spans}
    by_thread: dict[Any, list[_Span]] = {}
    for span in spans:
        by_thread.setdefault(span.thread_id, []).append(span)
        if span.claimed is not None:
            rows[span.pk]["human_handle_seconds"] = round(
                max(0.0, (span.resolved - span.claimed).total_seconds())
            )
            rows[span.pk]["escalations_handled"] = 1

    def owner(thread_id: Any, moment: datetime | None) -> dict[str, Any] | None:
        for span in by_thread.get(thread_id, ()):
            if moment is not None and span.opened <= moment <= span.resolved:
                return rows[span.pk]
        return None

    start = min(span.opened for span in spans)
    end = max(span.resolved for span in spans) + timedelta(microseconds=1)
    threads = list(by_thread)
    by_turn = {span.turn_id: rows[span.pk] for span in spans if span.turn_id is not None}
    in_spans = Q(thread_id__in=threads, created_at__gte=start, created_at__lt=end)
    calls = ModelCall.objects.filter(in_spans | Q(turn_id__in=list(by_turn))).values_list(
        "thread_id",
        "turn_id",
        "created_at",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
    )
    latencies: dict[str, list[int]] = {}
    for thread_id, turn_id, created_at, prompt, completion, cost, latency in calls:
        target = by_turn.get(turn_id) or owner(thread_id, created_at)
        if target is None:
            continue
        target["model_calls"] += 1
        target["prompt_tokens"] += prompt
        target["completion_tokens"] += completion
        target["cost"] = str(Decimal(target["cost"]) + cost)
        latencies.setdefault(target["key"], []).append(latency)
    for row in rows.values():
        if values := latencies.get(row["key"]):
            row["avg_latency_ms"] = int(sum(values) / len(values))
    replies = _human_replies(start, end).filter(thread_id__in=threads)
    for thread_id, created_at in replies.values_list("thread_id", "created_at"):
        if (target := owner(thread_id, created_at)) is not None:
            target["human_messages"] += 1
    for thread_id, created_at, seconds in _active_times(replies, "thread_id", "created_at"):
        if (target := owner(thread_id, created_at)) is not None:
            target["human_active_seconds"] += round(seconds)
    drafts = ApprovalDraft.objects.filter(
        edited=True, thread_id__in=threads, decided_at__gte=start, decided_at__lt=end
    ).values_list("thread_id", "decided_at")
    for thread_id, decided_at in drafts:
        if (target := owner(thread_id, decided_at)) is not None:
            target["drafts_edited"] += 1
    return sorted(rows.values(), key=lambda row: str(row["key"]))
