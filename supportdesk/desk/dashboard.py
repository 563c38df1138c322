"""The supervisors' dashboard: what the desk did per day, in a bounded number of queries.

Each figure is one aggregate query over the window (grouped by day), never a query per
day or per row, except the time-to-approve median, which reads the approved drafts'
two timestamps (capped). LLM cost and human handle time come from the usage roll-up
(``supportdesk.agent.selectors.usage_rows``), the same numbers as ``/api/v1/desk/usage/``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from approvals.models import ApprovalDraft, DraftKind, DraftStatus
from escalations.models import Escalation
from supportdesk.agent.selectors import usage_rows
from threads.models import AuthorKind, Message, Thread, Visibility

WINDOWS = (7, 14, 30, 90)
DEFAULT_DAYS = 14
MEDIAN_SAMPLE = 20_000


@dataclass
class Dashboard:
    since: datetime
    until: datetime
    days: list[str]
    messages: dict[str, list[int]] = field(default_factory=dict)  # author kind → per day
    escalations: list[int] = field(default_factory=list)
    escalation_sources: dict[str, int] = field(default_factory=dict)
    threads_ai: list[int] = field(default_factory=list)
    threads_human: list[int] = field(default_factory=list)
    approved: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    median_approve_seconds: float | None = None
    sla_breaches: list[int] | None = None  # None: no SLA models in this deployment
    cost: list[float] = field(default_factory=list)
    handle_minutes: list[float] = field(default_factory=list)
    active_minutes: list[float] = field(default_factory=list)
    model_calls: int = 0

    @property
    def approval_rate(self) -> float | None:
        decided = sum(self.approved) + sum(self.rejected)
        return None if decided == 0 else sum(self.approved) / decided

    @property
    def ai_share(self) -> float | None:
        total = sum(self.threads_ai) + sum(self.threads_human)
        return None if total == 0 else sum(self.threads_ai) / total


def window(days: int, now: datetime | None = None) -> tuple[datetime, datetime, list[str]]:
    """``days`` whole days ending today (in the current time zone), as [since, until)."""
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=days - 1)
    tz = timezone.get_current_timezone()
    since = datetime.combine(first, time.min, tzinfo=tz)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=tz)
    labels = [str(first + timedelta(days=n)) for n in range(days)]
    return since, until, labels


def _per_day(rows: Any, labels: list[str], key: str = "n") -> list[int]:
    by_day = {str(row["day"]): int(row[key] or 0) for row in rows}
    return [by_day.get(label, 0) for label in labels]


def build(*, days: int = DEFAULT_DAYS, now: datetime | None = None) -> Dashboard:
    since, until, labels = window(days, now)
    board = Dashboard(since=since, until=until, days=labels)
    in_window = {"created_at__gte": since, "created_at__lt": until}

    # Public messages per day, by who wrote them.
    counted = (
        Message.objects.filter(visibility=Visibility.PUBLIC, **in_window)
        .annotate(day=TruncDate("created_at"))
        .values("day", "author_kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    grid: dict[str, dict[str, int]] = {kind: {} for kind in AuthorKind.values}
    for row in counted:
        grid.setdefault(row["author_kind"], {})[str(row["day"])] = row["n"]
    board.messages = {
        kind: [grid.get(kind, {}).get(label, 0) for label in labels] for kind in AuthorKind.values
    }

    escalations = Escalation.objects.filter(**in_window)
    board.escalations = _per_day(
        escalations.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by(),
        labels,
    )
    board.escalation_sources = {
        row["source"]: row["n"]
        for row in escalations.values("source").annotate(n=Count("pk")).order_by("-n")
    }

    # A thread is human-handled once a person replied to the customer or it was escalated.
    human_reply = Message.objects.filter(
        thread=OuterRef("pk"), author_kind=AuthorKind.HUMAN, visibility=Visibility.PUBLIC
    )
    escalated = Escalation.objects.filter(thread=OuterRef("pk"))
    handled = (
        Thread.objects.filter(**in_window)
        .annotate(
            day=TruncDate("created_at"),
            human=ExpressionWrapper(
                Q(Exists(human_reply)) | Q(Exists(escalated)), output_field=BooleanField()
            ),
        )
        .values("day", "human")
        .annotate(n=Count("pk"))
        .order_by()
    )
    ai_days: dict[str, int] = {}
    human_days: dict[str, int] = {}
    for row in handled:
        (human_days if row["human"] else ai_days)[str(row["day"])] = row["n"]
    board.threads_ai = [ai_days.get(label, 0) for label in labels]
    board.threads_human = [human_days.get(label, 0) for label in labels]

    decided = ApprovalDraft.objects.filter(
        kind=DraftKind.APPROVAL, decided_at__gte=since, decided_at__lt=until
    )
    decisions = list(
        decided.filter(status__in=[DraftStatus.APPROVED, DraftStatus.REJECTED])
        .annotate(day=TruncDate("decided_at"))
        .values("day")
        .annotate(
            approved=Count("pk", filter=Q(status=DraftStatus.APPROVED)),
            rejected=Count("pk", filter=Q(status=DraftStatus.REJECTED)),
        )
        .order_by()
    )
    board.approved = _per_day(decisions, labels, "approved")
    board.rejected = _per_day(decisions, labels, "rejected")
    waits = [
        (decided_at - created_at).total_seconds()
        for created_at, decided_at in decided.filter(status=DraftStatus.APPROVED).values_list(
            "created_at", "decided_at"
        )[:MEDIAN_SAMPLE]
        if decided_at is not None
    ]
    board.median_approve_seconds = statistics.median(waits) if waits else None

    board.sla_breaches = _sla_breaches(since, until, labels)

    usage = {row["key"]: row for row in usage_rows(since=since, until=until, group_by="day")}
    board.cost = [
        float(Decimal(usage[label]["cost"])) if label in usage else 0.0 for label in labels
    ]
    board.handle_minutes = [
        round(usage[label]["human_handle_seconds"] / 60, 1) if label in usage else 0.0
        for label in labels
    ]
    board.active_minutes = [
        round(usage[label]["human_active_seconds"] / 60, 1) if label in usage else 0.0
        for label in labels
    ]
    board.model_calls = sum(int(row["model_calls"]) for row in usage.values())
    return board


def _sla_breaches(since: datetime, until: datetime, labels: list[str]) -> list[int] | None:
    """Breaches per day, or None when this deployment has no SLA models."""
    try:
        breach = apps.get_model("escalations", "SLABreach")
    except LookupError:
        return None
    rows = (
        breach.objects.filter(breached_at__gte=since, breached_at__lt=until)
        .annotate(day=TruncDate("breached_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return _per_day(rows, labels)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
