"""Reads of threads and messages, with access rules and the joins each caller needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q, QuerySet

from threads.models import Assignment, Customer, Message, Thread, Visibility
from threads.tokens import token_matches


def thread_get_for_customer(*, thread_id: Any, token: str) -> Thread | None:
    """The thread if ``token`` is its customer token, else None (callers answer 404)."""
    try:
        thread = Thread.objects.select_related("customer", "assignee").get(pk=thread_id)
    except Thread.DoesNotExist:
        return None
    return thread if token_matches(token, thread.token_hash) else None


def customer_get_for_staff(*, customer_id: Any) -> Customer | None:
    return Customer.objects.filter(pk=customer_id).first()


# Apps above threads (escalations, approvals) add their per-thread data to the staff
# views here at start-up: annotators extend the queryset (a constant number of queries
# per page), field readers turn the annotations into the staff Thread's fields.
staff_thread_annotators: list[Callable[[QuerySet[Thread]], QuerySet[Thread]]] = []
staff_thread_fields: dict[str, Callable[[Thread], Any]] = {}


def thread_list_for_staff() -> QuerySet[Thread]:
    queryset = Thread.objects.select_related("customer", "assignee")
    for annotate in staff_thread_annotators:
        queryset = annotate(queryset)
    return queryset


def staff_thread_field(thread: Thread, name: str, default: Any) -> Any:
    reader = staff_thread_fields.get(name)
    return reader(thread) if reader is not None else default


def thread_search(queryset: QuerySet[Thread], text: str) -> QuerySet[Thread]:
    return queryset.filter(
        Q(subject__icontains=text)
        | Q(customer__name__icontains=text)
        | Q(customer__email__icontains=text)
        | Q(customer__external_id__icontains=text)
    )


def message_list(
    *, thread: Thread, after: int, limit: int, public_only: bool
) -> tuple[list[Message], bool]:
    """Messages with ``seq > after`` in ascending order, at most ``limit``, and has_more."""
    queryset = Message.objects.filter(thread=thread, seq__gt=after)
    if public_only:
        queryset = queryset.filter(visibility=Visibility.PUBLIC)
    else:
        queryset = queryset.select_related("author_user")
    rows = list(queryset.order_by("seq")[: limit + 1])
    return rows[:limit], len(rows) > limit


def message_list_before(
    *, thread: Thread, before: int, after: int, limit: int, public_only: bool
) -> tuple[list[Message], bool]:
    """The newest ``limit`` messages with ``after < seq < before``, in ascending order,
    and whether older ones remain (the desk opens a long thread at its newest page)."""
    queryset = Message.objects.filter(thread=thread, seq__lt=before, seq__gt=after)
    if public_only:
        queryset = queryset.filter(visibility=Visibility.PUBLIC)
    else:
        queryset = queryset.select_related("author_user")
    rows = list(queryset.order_by("-seq")[: limit + 1])
    has_more = len(rows) > limit
    return rows[:limit][::-1], has_more


def assignment_list(*, thread: Thread) -> QuerySet[Assignment]:
    return Assignment.objects.filter(thread=thread).select_related("assignee", "assigned_by")


# The escalations and approvals apps replace these at start-up (see their AppConfig.ready)
# so that the desk filters work without threads importing the apps above it.
def _no_rows_match(queryset: QuerySet[Thread], value: bool | None) -> QuerySet[Thread]:
    return queryset.none() if value else queryset


def _no_queue(queryset: QuerySet[Thread], queue_id: int) -> QuerySet[Thread]:
    return queryset.none()


thread_filter_open_escalation = _no_rows_match
thread_filter_pending_approval = _no_rows_match
# Threads whose open or claimed escalation waits in the queue with this id.
thread_filter_queue = _no_queue
