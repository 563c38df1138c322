"""Reads of approval drafts, and their contribution to the staff Thread."""

from __future__ import annotations

from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from approvals.models import ApprovalDraft, DraftKind, DraftStatus
from threads import selectors as thread_selectors
from threads.models import Thread


def _pending_approvals() -> Subquery:
    counted = (
        ApprovalDraft.objects.filter(
            thread=OuterRef("pk"), status=DraftStatus.PENDING, kind=DraftKind.APPROVAL
        )
        .order_by()
        .values("thread")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Subquery(counted, output_field=IntegerField())


def annotate_staff_threads(queryset: QuerySet[Thread]) -> QuerySet[Thread]:
    return queryset.annotate(pending_approvals_count=Coalesce(_pending_approvals(), 0))


def filter_pending_approval(queryset: QuerySet[Thread], value: bool | None) -> QuerySet[Thread]:
    if value is None:
        return queryset
    pending = ApprovalDraft.objects.filter(
        thread=OuterRef("pk"), status=DraftStatus.PENDING, kind=DraftKind.APPROVAL
    )
    return queryset.filter(Exists(pending)) if value else queryset.exclude(Exists(pending))


def install_thread_hooks() -> None:
    if annotate_staff_threads not in thread_selectors.staff_thread_annotators:
        thread_selectors.staff_thread_annotators.append(annotate_staff_threads)
    thread_selectors.staff_thread_fields["pending_approvals"] = lambda thread: getattr(
        thread, "pending_approvals_count", 0
    )
    thread_selectors.thread_filter_pending_approval = filter_pending_approval
