"""Reads of escalations and human requests, and their contribution to the staff Thread."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from escalations.models import (
    ACTIVE_ESCALATION,
    Escalation,
    HumanRequest,
    HumanRequestStatus,
)
from threads import selectors as thread_selectors
from threads.models import Thread


def escalation_list() -> QuerySet[Escalation]:
    return Escalation.objects.select_related("claimed_by", "thread", "queue")


def human_request_list() -> QuerySet[HumanRequest]:
    return HumanRequest.objects.select_related("answered_by")


def _pending_requests() -> Subquery:
    counted = (
        HumanRequest.objects.filter(thread=OuterRef("pk"), status=HumanRequestStatus.PENDING)
        .order_by()
        .values("thread")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Subquery(counted, output_field=IntegerField())


def annotate_staff_threads(queryset: QuerySet[Thread]) -> QuerySet[Thread]:
    return queryset.prefetch_related(
        Prefetch(
            "escalations",
            queryset=Escalation.objects.filter(status__in=ACTIVE_ESCALATION).select_related(
                "claimed_by", "queue"
            ),
            to_attr="active_escalations",
        )
    ).annotate(pending_human_requests_count=Coalesce(_pending_requests(), 0))


def _open_escalation(thread: Thread) -> Any:
    from escalations.serializers import EscalationSerializer

    active = getattr(thread, "active_escalations", None)
    if active is None:
        active = list(Escalation.objects.filter(thread=thread, status__in=ACTIVE_ESCALATION))
    return EscalationSerializer(active[0]).data if active else None


def filter_open_escalation(queryset: QuerySet[Thread], value: bool | None) -> QuerySet[Thread]:
    if value is None:
        return queryset
    active = Escalation.objects.filter(thread=OuterRef("pk"), status__in=ACTIVE_ESCALATION)
    return queryset.filter(Exists(active)) if value else queryset.exclude(Exists(active))


def filter_queue(queryset: QuerySet[Thread], queue_id: int) -> QuerySet[Thread]:
    """Threads with an open or claimed escalation in the queue ``queue_id``."""
    active = Escalation.objects.filter(
        thread=OuterRef("pk"), status__in=ACTIVE_ESCALATION, queue_id=queue_id
    )
    return queryset.filter(Exists(active))


def install_thread_hooks() -> None:
    if annotate_staff_threads not in thread_selectors.staff_thread_annotators:
        thread_selectors.staff_thread_annotators.append(annotate_staff_threads)
    thread_selectors.staff_thread_fields["open_escalation"] = _open_escalation
    thread_selectors.staff_thread_fields["pending_human_requests"] = lambda thread: getattr(
        thread, "pending_human_requests_count", 0
    )
    thread_selectors.thread_filter_open_escalation = filter_open_escalation
    thread_selectors.thread_filter_queue = filter_queue
