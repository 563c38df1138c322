"""What the desk pages show on first paint, read through the apps' selectors.

Each page embeds its first screen of data as JSON (``json_script``) so it opens without
waiting for the API; after that the page's JavaScript reads the REST API. The shapes are
the API's own (the same serializers), so one renderer in the browser handles both.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions

from approvals.api import approval_queryset
from approvals.models import ApprovalDraft, DraftKind, DraftStatus
from approvals.serializers import ApprovalDraftSerializer
from escalations import selectors as escalation_selectors
from escalations.models import HumanRequestStatus, Queue
from escalations.serializers import EscalationSerializer, HumanRequestSerializer
from supportdesk.agent.models import AgentTurn
from threads import selectors as thread_selectors
from threads.api_desk import ThreadFilter
from threads.models import Thread
from threads.serializers import (
    AssignmentSerializer,
    StaffMessageSerializer,
    StaffThreadSerializer,
    user_ref,
)

INBOX_PAGE = 50
MESSAGE_PAGE = 50
APPROVALS_PAGE = 100
QUEUE_CHOICES = 200
# The thread page shows the newest few escalations (the open one and its handoff summary
# first); older ones are in the admin.
ESCALATION_HISTORY = 5
ERROR_PREVIEW_CHARS = 300


class InboxFilterError(ValueError):
    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__("invalid inbox filters")
        self.errors = errors


def inbox_threads(*, request: Any, params: Any) -> tuple[list[dict[str, Any]], bool]:
    """The first inbox page for ``params`` (the desk API's filters), newest activity first,
    and whether more threads match. A constant number of queries whatever the page holds.
    Raises InboxFilterError for filters the API would refuse."""
    filterset = ThreadFilter(
        data=params, queryset=thread_selectors.thread_list_for_staff(), request=request
    )
    if not filterset.is_valid():
        raise InboxFilterError(dict(filterset.errors))
    try:
        queryset: QuerySet[Thread] = filterset.qs
        rows = list(queryset.order_by("-updated_at", "-pk")[: INBOX_PAGE + 1])
    except exceptions.ValidationError as error:
        raise InboxFilterError(
            error.detail if isinstance(error.detail, dict) else {"filters": error.detail}
        ) from None
    return list(StaffThreadSerializer(rows[:INBOX_PAGE], many=True).data), len(rows) > INBOX_PAGE


def inbox_queues() -> list[dict[str, Any]]:
    """The queues the inbox can filter by, by name."""
    return [
        {"id": pk, "name": name}
        for pk, name in Queue.objects.order_by("name").values_list("pk", "name")[:QUEUE_CHOICES]
    ]


def staff_thread(thread_id: Any) -> Thread | None:
    return thread_selectors.thread_list_for_staff().filter(pk=thread_id).first()


def turn_lines(
    *, thread: Thread, after: int = 0, before: int | None = None
) -> list[dict[str, Any]]:
    """The thread's AI turns whose customer message has ``after < seq < before``: the
    router's decision and its reason, and how the turn ended, as the desk shows them."""
    turns = AgentTurn.objects.filter(thread=thread).select_related("trigger_message")
    turns = turns.filter(trigger_message__seq__gt=after)
    if before is not None:
        turns = turns.filter(trigger_message__seq__lt=before)
    lines = []
    for turn in turns.order_by("created_at")[:500]:
        trigger = turn.trigger_message
        lines.append(
            {
                "id": str(turn.pk),
                "seq": trigger.seq if trigger is not None else None,
                "kind": turn.kind,
                "status": turn.status,
                "decision": turn.decision,
                "decision_step": turn.decision_step,
                "decision_reason": turn.decision_reason,
                "outcome": turn.outcome,
                "confidence": turn.confidence,
                "attempts": turn.attempts,
                "error": turn.error[:ERROR_PREVIEW_CHARS],
                "created_at": turn.created_at.isoformat(),
                "finished_at": turn.finished_at.isoformat() if turn.finished_at else None,
            }
        )
    return lines


def thread_page(*, thread: Thread) -> dict[str, Any]:
    """Everything the thread view needs on first paint: the newest page of the transcript,
    the routing decisions beside it, the assignment history, the escalations (with the
    handoff summary), the pending questions and drafts."""
    messages, has_older = thread_selectors.message_list_before(
        thread=thread,
        before=thread.last_seq + 1,
        after=0,
        limit=MESSAGE_PAGE,
        public_only=False,
    )
    first_seq = messages[0].seq if messages else thread.last_seq + 1
    escalations = escalation_selectors.escalation_list().filter(thread=thread)
    requests = escalation_selectors.human_request_list().filter(
        thread=thread, status=HumanRequestStatus.PENDING
    )
    drafts = approval_queryset().filter(thread=thread, status=DraftStatus.PENDING)
    return {
        "thread": StaffThreadSerializer(thread).data,
        "messages": StaffMessageSerializer(messages, many=True).data,
        "has_older": has_older,
        "turns": turn_lines(thread=thread, after=first_seq - 1),
        "assignments": AssignmentSerializer(
            thread_selectors.assignment_list(thread=thread).order_by("id"), many=True
        ).data,
        "escalations": EscalationSerializer(
            escalations.order_by("-created_at")[:ESCALATION_HISTORY], many=True
        ).data,
        "human_requests": HumanRequestSerializer(requests.order_by("created_at"), many=True).data,
        "drafts": ApprovalDraftSerializer(drafts.order_by("created_at"), many=True).data,
    }


def pending_approvals() -> list[dict[str, Any]]:
    """Approval drafts waiting for a decision, oldest first (the review queue), each with
    the thread it answers."""
    drafts: QuerySet[ApprovalDraft] = (
        approval_queryset()
        .select_related("thread__customer")
        .filter(status=DraftStatus.PENDING, kind=DraftKind.APPROVAL)
        .order_by("created_at")[:APPROVALS_PAGE]
    )
    out = []
    for draft in drafts:
        data = dict(ApprovalDraftSerializer(draft).data)
        data["thread_info"] = thread_ref(draft.thread)
        out.append(data)
    return out


def thread_ref(thread: Thread) -> dict[str, Any]:
    return {
        "id": str(thread.pk),
        "subject": thread.subject,
        "customer": thread.customer.name or thread.customer.email or "Customer",
        "priority": thread.priority,
        "status": thread.status,
        "responder": thread.responder,
    }


def me(user: Any) -> dict[str, Any]:
    return user_ref(user) or {}
