"""The only writers of approval drafts.

Decisions (approve, reject) are conditional updates on ``status='pending'`` checked by
row count: under any number of concurrent deciders exactly one wins, the rest get
AlreadyDecided (409). The approved text goes out as a *new* public message, so a
customer catching up by seq never misses it; the draft message itself never turns
public. Broadcasts ``approval.created`` / ``approval.updated`` on commit.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.exceptions import AlreadyDecided
from approvals.models import ApprovalDraft, DraftKind, DraftStatus, RejectNext
from escalations import services as escalation_services
from escalations.models import EscalationSource
from threads import events
from threads import services as thread_services
from threads.exceptions import ThreadClosed
from threads.models import AuthorKind, Message, Role, Thread, ThreadStatus, Visibility

# The AI runtime registers how to write a draft again (a new turn with the review).
regenerate_hooks: list[Callable[[ApprovalDraft], object]] = []


def _emit(draft: ApprovalDraft, event_type: str) -> None:
    events.emit(
        event_type,
        thread_id=str(draft.thread_id),
        payload={"approval_id": str(draft.pk), "status": draft.status, "kind": draft.kind},
    )


@transaction.atomic
def approval_draft_create(
    *,
    thread: Thread,
    message: Message,
    kind: str = DraftKind.APPROVAL,
    turn_id: Any = None,
    confidence: float | None = None,
) -> ApprovalDraft:
    """Record a draft waiting for a human; an older pending draft of the same kind on the
    thread is superseded. Broadcasts ``approval.created``."""
    approval_supersede_pending(thread=thread, kind=kind)
    draft = ApprovalDraft.objects.create(
        thread=thread,
        kind=kind,
        message=message,
        turn_id=turn_id,
        content=message.content,
        confidence=confidence,
        expires_at=timezone.now() + timedelta(seconds=settings.SUPPORTDESK_DRAFT_TTL_SECONDS),
    )
    _emit(draft, "approval.created")
    return draft


@transaction.atomic(savepoint=False)
def approval_supersede_pending(*, thread: Thread, kind: str | None = None) -> int:
    """Mark the thread's pending drafts superseded (a newer customer message arrived).

    Runs on every customer message, nearly always with nothing pending: one UPDATE, and
    the rows are read back (to announce them) only when it changed some.
    """
    pending = ApprovalDraft.objects.filter(thread=thread, status=DraftStatus.PENDING)
    if kind is not None:
        pending = pending.filter(kind=kind)
    now = timezone.now()
    count = pending.update(status=DraftStatus.SUPERSEDED, superseded_at=now)
    if count:
        for draft in ApprovalDraft.objects.filter(thread=thread, superseded_at=now):
            _emit(draft, "approval.updated")
    return count


def _diff(original: str, edited: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            original.splitlines(), edited.splitlines(), "proposed", "sent", lineterm=""
        )
    )


@transaction.atomic
def approval_approve(
    *, draft: ApprovalDraft, user: Any, content: str | None = None
) -> ApprovalDraft:
    """Send the draft (or the human's edit of it) to the customer, exactly once.

    An approval draft goes out as the AI's reply; a copilot suggestion as the human's own
    reply. Raises AlreadyDecided for any but the first decision, ThreadClosed when the
    thread was closed meanwhile.
    """
    final = draft.content if content is None else content
    edited = final != draft.content
    now = timezone.now()
    won = ApprovalDraft.objects.filter(pk=draft.pk, status=DraftStatus.PENDING).update(
        status=DraftStatus.APPROVED,
        decided_by=user,
        decided_at=now,
        final_content=final,
        edited=edited,
        diff=_diff(draft.content, final) if edited else "",
    )
    if not won:
        raise AlreadyDecided()
    thread = Thread.objects.select_related("customer").get(pk=draft.thread_id)
    if thread.status == ThreadStatus.CLOSED:
        raise ThreadClosed()
    if draft.kind == DraftKind.SUGGESTION:
        sent = thread_services.human_reply_create(thread=thread, user=user, content=final)
    else:
        proposed = draft.message
        sent = thread_services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content=final,
            provider=proposed.provider,
            model=proposed.model,
            usage=proposed.usage,
        )
    ApprovalDraft.objects.filter(pk=draft.pk).update(sent_message=sent)
    draft.refresh_from_db()
    _emit(draft, "approval.updated")
    return draft


@transaction.atomic
def approval_reject(
    *, draft: ApprovalDraft, user: Any, review: str = "", next_action: str = RejectNext.REGENERATE
) -> ApprovalDraft:
    """Reject the draft exactly once; its message becomes ``rejected``.

    ``regenerate`` asks the AI for a new draft with the review as feedback; ``human``
    opens an escalation so a person answers. A copilot suggestion is simply discarded.
    Raises AlreadyDecided for any but the first decision.
    """
    won = ApprovalDraft.objects.filter(pk=draft.pk, status=DraftStatus.PENDING).update(
        status=DraftStatus.REJECTED,
        decided_by=user,
        decided_at=timezone.now(),
        review=review,
        next_action=next_action if draft.kind == DraftKind.APPROVAL else "",
    )
    if not won:
        raise AlreadyDecided()
    Message.objects.filter(pk=draft.message_id).update(visibility=Visibility.REJECTED)
    draft.refresh_from_db()
    if draft.kind == DraftKind.APPROVAL:
        thread = Thread.objects.select_related("customer").get(pk=draft.thread_id)
        if next_action == RejectNext.HUMAN:
            escalation_services.escalation_open(
                thread=thread,
                source=EscalationSource.STAFF,
                reason=f"draft rejected: {review}"[:1000],
                ai_suggestion=draft.content,
                confidence=draft.confidence,
            )
        else:
            for hook in regenerate_hooks:
                hook(draft)
    _emit(draft, "approval.updated")
    return draft


def approval_expire_due(*, now: Any = None) -> int:
    """Expire drafts nobody decided in time; an expired approval draft escalates, so the
    customer is never left waiting on a draft nobody saw."""
    now = now or timezone.now()
    expired = 0
    due = ApprovalDraft.objects.filter(status=DraftStatus.PENDING, expires_at__lt=now)
    for draft in due.select_related("thread")[:500]:
        with transaction.atomic():
            if not ApprovalDraft.objects.filter(pk=draft.pk, status=DraftStatus.PENDING).update(
                status=DraftStatus.EXPIRED
            ):
                continue
            draft.status = DraftStatus.EXPIRED
            expired += 1
            if draft.kind == DraftKind.APPROVAL:
                escalation_services.escalation_open(
                    thread=draft.thread,
                    source=EscalationSource.REQUIRES_HUMAN,
                    reason="an AI draft waited too long for approval",
                    ai_suggestion=draft.content,
                    confidence=draft.confidence,
                )
            _emit(draft, "approval.updated")
    return expired
