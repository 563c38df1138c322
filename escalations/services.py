"""The only writers of escalations and human requests.

Competing transitions (claim, resolve, answer) are conditional updates checked by row
count: one caller wins, the others get a 409. Broadcasts go out on commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from escalations import limits as escalation_limits
from escalations.exceptions import AlreadyClaimed, AlreadyResolved
from escalations.models import (
    ACTIVE_ESCALATION,
    Escalation,
    EscalationStatus,
)
from threads import events
from threads import services as thread_services
from threads.models import Responder, Thread, ThreadStatus

CUSTOMER_NOTICE = "Thanks for your patience. A member of our team will reply here shortly."

# Operations features (queues, SLA clocks, summaries, notifications, auto-assignment)
# plug in here at start-up. Each hook runs inside the service's transaction, after the
# state change; anything that leaves the process must itself wait for the commit.
opened_hooks: list[Callable[[Escalation], object]] = []
claimed_hooks: list[Callable[[Escalation], object]] = []
resolved_hooks: list[Callable[[Escalation], object]] = []

# Routing (escalations.routing) installs how a new escalation's queue is chosen, from
# the thread (its priority, its customer's tier), the source, the reason and the topic:
# ``queue_router(thread, source, reason, topic)``. It is asked before the rate limits,
# so the per-queue limit counts the queue the escalation lands in (keyword, tier and
# topic rules included). None: escalations have no queue.
queue_router: Callable[[Thread, str, str, str], Any] | None = None
# The AI runtime (supportdesk.agent) installs how a new escalation's topic is found when
# the caller does not give one: ``topic_resolver(thread, turn_id)``, the topic the
# router gave the escalating turn, else the thread's latest. None: no topic.
topic_resolver: Callable[[Thread, Any], str] | None = None


def escalation_payload(escalation: Escalation) -> dict[str, Any]:
    return {"escalation_id": str(escalation.pk), "status": escalation.status}


@transaction.atomic
def escalation_open(
    *,
    thread: Thread,
    source: str,
    reason: str = "",
    confidence: float | None = None,
    ai_suggestion: str | None = None,
    summary: str | None = None,
    priority: str | None = None,
    turn_id: Any = None,
    notify_customer: bool = True,
    topic: str | None = None,
) -> tuple[Escalation, bool]:
    """Hand the thread to a person; returns (escalation, created).

    One active escalation per thread (a constraint): a second request while one is open
    or claimed is merged into it. A new escalation makes the thread human-owned
    (unassigned unless someone already holds it), sets ``waiting_on_human``, appends an
    Assignment row and posts a short public notice for the customer. Broadcasts
    ``escalation.created`` (or ``escalation.updated`` on a merge) and ``thread.updated``.
    Over an escalation rate limit (escalations.limits) it is still created, but marked
    ``throttled``: nobody is notified about it. The queue (``queue_router``) is chosen
    first, so the per-queue limit is the one of the queue the escalation joins; its
    ``topic`` (None: ``topic_resolver``'s) is stored and routes too. An opened hook may
    claim it for an agent (auto-assignment); ``claimed_hooks`` then run too.
    """
    existing = Escalation.objects.filter(thread=thread, status__in=ACTIVE_ESCALATION).first()
    if existing is not None:
        return _merge(
            existing, reason=reason, ai_suggestion=ai_suggestion, confidence=confidence
        ), False
    reason = reason[:1000]
    if topic is None:
        topic = topic_resolver(thread, turn_id) if topic_resolver is not None else ""
    queue = queue_router(thread, source, reason, topic) if queue_router is not None else None
    # Only a new escalation takes a token: merges never count against the limits.
    decision = escalation_limits.check(thread=thread, source=source, queue=queue)
    try:
        with transaction.atomic():
            escalation = Escalation.objects.create(
                thread=thread,
                queue=queue,
                source=source,
                reason=reason,
                confidence=confidence,
                ai_suggestion=ai_suggestion,
                summary=summary,
                priority=priority or thread.priority,
                turn_id=turn_id,
                topic=topic,
                throttled=decision.throttled,
                throttle_note=decision.note,
            )
    except IntegrityError:
        # A concurrent escalation of the same thread won the constraint.
        winner = Escalation.objects.get(thread=thread, status__in=ACTIVE_ESCALATION)
        return _merge(
            winner, reason=reason, ai_suggestion=ai_suggestion, confidence=confidence
        ), False
    if thread.responder == Responder.AI:
        # Human-owned from now on, unassigned until someone claims it.
        thread_services.thread_assign(
            thread=thread, responder=Responder.HUMAN, reason=f"escalated ({source}): {reason}"[:500]
        )
    if thread.status != ThreadStatus.CLOSED:
        Thread.objects.filter(pk=thread.pk).update(
            status=ThreadStatus.WAITING_ON_HUMAN, updated_at=timezone.now()
        )
        thread.status = ThreadStatus.WAITING_ON_HUMAN
    if notify_customer:
        thread_services.system_notice_create(thread=thread, content=CUSTOMER_NOTICE)
    for hook in opened_hooks:
        hook(escalation)
    events.emit(
        "escalation.created", thread_id=str(thread.pk), payload=escalation_payload(escalation)
    )
    events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "escalated"})
    if escalation.status == EscalationStatus.CLAIMED:
        # An opened hook (auto-assignment) handed it to an agent in this transaction: the
        # same hooks and broadcast as a claim, once every opened hook (summary, opened
        # notification) has run.
        for hook in claimed_hooks:
            hook(escalation)
        events.emit(
            "escalation.updated", thread_id=str(thread.pk), payload=escalation_payload(escalation)
        )
    return escalation, True


def _merge(
    escalation: Escalation, *, reason: str, ai_suggestion: str | None, confidence: float | None
) -> Escalation:
    fields: dict[str, Any] = {}
    if reason and reason not in escalation.reason:
        fields["reason"] = f"{escalation.reason}\n{reason}".strip()[:1000]
    if ai_suggestion:
        fields["ai_suggestion"] = ai_suggestion
        fields["confidence"] = confidence
    if fields:
        Escalation.objects.filter(pk=escalation.pk).update(**fields)
        for name, value in fields.items():
            setattr(escalation, name, value)
        events.emit(
            "escalation.updated",
            thread_id=str(escalation.thread_id),
            payload=escalation_payload(escalation),
        )
    return escalation


@transaction.atomic
def escalation_claim(*, escalation: Escalation, user: Any) -> Escalation:
    """Claim an open escalation exactly once; the thread goes to the claimer.

    Claiming again by the same user is a no-op. Raises AlreadyClaimed when someone else
    holds it and AlreadyResolved when it is resolved. Broadcasts ``escalation.updated``.
    """
    now = timezone.now()
    won = Escalation.objects.filter(pk=escalation.pk, status=EscalationStatus.OPEN).update(
        status=EscalationStatus.CLAIMED, claimed_by=user, claimed_at=now
    )
    escalation.refresh_from_db()
    if not won:
        if escalation.status == EscalationStatus.RESOLVED:
            raise AlreadyResolved()
        if escalation.claimed_by_id != user.pk:
            raise AlreadyClaimed()
        return escalation
    thread = Thread.objects.select_related("customer").get(pk=escalation.thread_id)
    thread_services.thread_assign(
        thread=thread,
        responder=Responder.HUMAN,
        assignee=user,
        assigned_by=user,
        reason="claimed the escalation",
    )
    for hook in claimed_hooks:
        hook(escalation)
    events.emit(
        "escalation.updated", thread_id=str(thread.pk), payload=escalation_payload(escalation)
    )
    return escalation


@transaction.atomic
def escalation_resolve(
    *, escalation: Escalation, user: Any, note: str = "", responder: str | None = None
) -> Escalation:
    """Resolve an open or claimed escalation exactly once.

    With ``responder="ai"`` the thread goes back to the AI. Raises AlreadyResolved for
    a second resolution. Broadcasts ``escalation.updated``.
    """
    won = Escalation.objects.filter(pk=escalation.pk, status__in=ACTIVE_ESCALATION).update(
        status=EscalationStatus.RESOLVED,
        resolved_at=timezone.now(),
        resolved_by=user,
        resolution_note=note,
    )
    if not won:
        raise AlreadyResolved()
    escalation.refresh_from_db()
    thread = Thread.objects.select_related("customer").get(pk=escalation.thread_id)
    if responder is not None:
        assignee = user if responder == Responder.HUMAN else None
        thread_services.thread_assign(
            thread=thread,
            responder=responder,
            assignee=assignee,
            assigned_by=user,
            reason="escalation resolved",
        )
    if thread.status == ThreadStatus.WAITING_ON_HUMAN:
        Thread.objects.filter(pk=thread.pk).update(
            status=ThreadStatus.OPEN, updated_at=timezone.now()
        )
        events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "status"})
    for hook in resolved_hooks:
        hook(escalation)
    events.emit(
        "escalation.updated", thread_id=str(thread.pk), payload=escalation_payload(escalation)
    )
    return escalation


@transaction.atomic
def human_request_create(
    *, thread: Thread, turn_id: Any, question: str, tool_call_id: str, context: str = ""
) -> Any:
    """Record the AI's ``ask_human`` question; the desk is notified on commit.

    One request per (turn, tool call): a re-run of the same step returns the existing row.
    Broadcasts ``human_request.created``.
    """
    from datetime import timedelta

    from django.conf import settings

    from escalations.models import HumanRequest

    existing = HumanRequest.objects.filter(turn_id=turn_id, tool_call_id=tool_call_id).first()
    if existing is not None:
        return existing
    request = HumanRequest.objects.create(
        thread=thread,
        turn_id=turn_id,
        question=question,
        tool_call_id=tool_call_id,
        context=context,
        expires_at=timezone.now()
        + timedelta(seconds=settings.SUPPORTDESK_HUMAN_REQUEST_TTL_SECONDS),
    )
    events.emit(
        "human_request.created",
        thread_id=str(thread.pk),
        payload={"human_request_id": str(request.pk), "status": request.status},
    )
    return request


# The AI runtime registers what happens when a question is answered or expires (resume
# or escalate its turn); called inside the same transaction.
human_request_resolved_hooks: list[Callable[[Any, Any], object]] = []

NO_ANSWER = "No one from the team answered this question in time."


@transaction.atomic
def human_request_answer(*, request: Any, user: Any, answer: str) -> Any:
    """Answer the AI's question exactly once (AlreadyAnswered otherwise).

    The answer is stored as the ``tool`` message answering the AI's ``ask_human`` call
    (provider ``human``, the exact ``tool_call_id``, visible to staff only) and the
    waiting turn resumes once all its questions are answered. Broadcasts
    ``human_request.updated``.
    """
    from escalations.exceptions import AlreadyAnswered
    from escalations.models import HumanRequest, HumanRequestStatus
    from threads.models import AuthorKind

    won = HumanRequest.objects.filter(pk=request.pk, status=HumanRequestStatus.PENDING).update(
        status=HumanRequestStatus.ANSWERED,
        answer=answer,
        answered_by=user,
        answered_at=timezone.now(),
    )
    if not won:
        raise AlreadyAnswered()
    request.refresh_from_db()
    _tool_result(request, content=answer, author_kind=AuthorKind.HUMAN, user=user)
    return request


def _tool_result(request: Any, *, content: str, author_kind: str, user: Any = None) -> None:
    """Store the ``tool`` message that closes the AI's ``ask_human`` call (staff-only),
    let the AI runtime resume or end the turn, and announce the new state."""
    from threads.models import Role, Visibility

    thread = Thread.objects.select_related("customer").get(pk=request.thread_id)
    message = thread_services.message_create(
        thread=thread,
        role=Role.TOOL,
        author_kind=author_kind,
        author_user=user,
        content=content,
        provider="human" if user is not None else "system",
        visibility=Visibility.INTERNAL,
        tool_call_id=request.tool_call_id,
    )
    for hook in human_request_resolved_hooks:
        hook(request, message)
    events.emit(
        "human_request.updated",
        thread_id=str(thread.pk),
        payload={"human_request_id": str(request.pk), "status": request.status},
    )


def human_request_expire_due(*, now: Any = None) -> int:
    """Expire unanswered questions past ``expires_at``: the AI is told nobody answered
    and its turn ends in an escalation (never a silent thread)."""
    from escalations.models import HumanRequest, HumanRequestStatus
    from threads.models import AuthorKind

    now = now or timezone.now()
    expired = 0
    due = HumanRequest.objects.filter(status=HumanRequestStatus.PENDING, expires_at__lt=now)
    for request in due[:500]:
        with transaction.atomic():
            if not HumanRequest.objects.filter(
                pk=request.pk, status=HumanRequestStatus.PENDING
            ).update(status=HumanRequestStatus.EXPIRED):
                continue
            request.status = HumanRequestStatus.EXPIRED
            expired += 1
            _tool_result(request, content=NO_ANSWER, author_kind=AuthorKind.SYSTEM)
    return expired


# --- Agent presence (kept by the desk websocket) ---------------------------------------


def presence_timeout() -> int:
    """Seconds without a heartbeat after which an agent is offline
    (``SUPPORTDESK_PRESENCE_TIMEOUT_SECONDS``, 60). The desk socket sends one every 25 s,
    so one lost heartbeat is forgiven, two are not; a row not seen for this long belongs
    to a socket that is gone (or a server that died without saying goodbye)."""
    from django.conf import settings

    return int(settings.SUPPORTDESK_PRESENCE_TIMEOUT_SECONDS)


def _presence_row(user: Any) -> Any:
    from escalations.models import AgentPresence

    presence, _ = AgentPresence.objects.get_or_create(
        user=user, defaults={"last_seen_at": timezone.now()}
    )
    return presence


# Routing (auto-assignment when an agent comes online) plugs in here: called inside the
# transaction of every presence status change.
presence_changed_hooks: list[Callable[[Any], object]] = []


def _presence_emit(presence: Any) -> None:
    for hook in presence_changed_hooks:
        hook(presence)
    events.emit(
        "presence.updated",
        thread_id=None,
        payload=events.PresenceUpdatedPayload(user_id=presence.user_id, status=presence.status),
    )


@transaction.atomic
def presence_set(*, user: Any, status: str) -> Any:
    """Set an agent's presence status (``online``, ``busy`` or ``offline``) and mark them
    seen now. Broadcasts ``presence.updated`` when the status changed. Raises ValueError
    for an unknown status."""
    from escalations.models import AgentPresence, PresenceStatus

    if status not in PresenceStatus.values:
        raise ValueError(f"Unknown presence status {status!r}.")
    now = timezone.now()
    presence = _presence_row(user)
    changed = (
        AgentPresence.objects.filter(pk=presence.pk)
        .exclude(status=status)
        .update(status=status, last_seen_at=now)
    )
    if not changed:
        AgentPresence.objects.filter(pk=presence.pk).update(last_seen_at=now)
    presence.refresh_from_db()
    if changed:
        _presence_emit(presence)
    return presence


@transaction.atomic
def presence_connect(*, user: Any) -> Any:
    """One more desk socket for ``user``: online unless they said busy.
    Broadcasts ``presence.updated`` when they were offline."""
    from django.db.models import F

    from escalations.models import AgentPresence, PresenceStatus

    now = timezone.now()
    presence = _presence_row(user)
    rows = AgentPresence.objects.filter(pk=presence.pk)
    rows.update(connections=F("connections") + 1, last_seen_at=now)
    changed = rows.filter(status=PresenceStatus.OFFLINE).update(status=PresenceStatus.ONLINE)
    presence.refresh_from_db()
    if changed:
        _presence_emit(presence)
    return presence


@transaction.atomic
def presence_disconnect(*, user: Any) -> Any:
    """One desk socket fewer; offline when it was the last one.
    Broadcasts ``presence.updated`` when the agent went offline."""
    from django.db.models import F

    from escalations.models import AgentPresence, PresenceStatus

    now = timezone.now()
    presence = _presence_row(user)
    rows = AgentPresence.objects.filter(pk=presence.pk)
    rows.filter(connections__gt=0).update(connections=F("connections") - 1, last_seen_at=now)
    changed = (
        rows.filter(connections=0)
        .exclude(status=PresenceStatus.OFFLINE)
        .update(status=PresenceStatus.OFFLINE)
    )
    presence.refresh_from_db()
    if changed:
        _presence_emit(presence)
    return presence


@transaction.atomic
def presence_heartbeat(*, user: Any) -> Any:
    """The agent's desk socket is alive: mark them seen. An agent written off as offline
    by ``presence_expire_stale`` while their socket lived comes back online (broadcast)."""
    from django.db.models import F
    from django.db.models.functions import Greatest

    from escalations.models import AgentPresence, PresenceStatus

    presence = _presence_row(user)
    rows = AgentPresence.objects.filter(pk=presence.pk)
    rows.update(last_seen_at=timezone.now())
    changed = rows.filter(status=PresenceStatus.OFFLINE).update(
        status=PresenceStatus.ONLINE, connections=Greatest(F("connections"), 1)
    )
    presence.refresh_from_db()
    if changed:
        _presence_emit(presence)
    return presence


def presence_expire_stale(*, now: Any = None) -> int:
    """Mark offline every agent not seen for ``presence_timeout()`` seconds (no heartbeat:
    the socket is gone, or its server died with it open). Returns how many; broadcasts
    ``presence.updated`` each. Run by the worker's sweeper and when a desk socket opens."""
    from datetime import timedelta

    from escalations.models import AgentPresence, PresenceStatus

    cutoff = (now or timezone.now()) - timedelta(seconds=presence_timeout())
    expired = 0
    stale = AgentPresence.objects.filter(last_seen_at__lt=cutoff).exclude(
        status=PresenceStatus.OFFLINE, connections=0
    )
    for presence in stale[:500]:
        with transaction.atomic():
            if not AgentPresence.objects.filter(pk=presence.pk, last_seen_at__lt=cutoff).update(
                status=PresenceStatus.OFFLINE, connections=0
            ):
                continue
            presence.status = PresenceStatus.OFFLINE
            presence.connections = 0
            expired += 1
            _presence_emit(presence)
    return expired
