"""Running an AgentTurn: claim with a lease, route, call the model, end in one outcome.

Exactly-once rests on three rules:
- a worker owns a turn only through a conditional update that sets a fresh lease owner;
- every write of the turn (transcript rows, the outcome) happens in a transaction that
  also checks, by row count, that this worker still holds the lease — a worker whose
  lease expired and was taken over can finish nothing;
- the outcome rows and the turn's ``done`` status commit together.
State lives in rows (``step_message_ids``), so a re-run continues where the last one
stopped instead of repeating side effects.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from approvals import services as approval_services
from approvals.models import ApprovalDraft, DraftKind
from escalations import services as escalation_services
from escalations.models import EscalationSource
from supportdesk.agent import context as agent_context
from supportdesk.agent import router, tools
from supportdesk.agent.guard import OutputGuard
from supportdesk.agent.models import (
    AgentTurn,
    Decision,
    ModelCall,
    Outcome,
    TurnKind,
    TurnStatus,
)
from supportdesk.agent.providers import get_provider
from supportdesk.agent.providers.base import Completion, FinalAnswer, Provider, ProviderError
from threads import events
from threads import services as thread_services
from threads.models import AIMode, AuthorKind, Message, Role, Thread, ThreadStatus, Visibility

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns this turn now; stop without writing anything."""


@dataclass
class Lease:
    turn_id: Any
    owner: str
    # Fields of the turn to store with its next lease-checked write (the routing
    # decision): a write of their own right after the claim would only renew the lease
    # the claim has just set.
    pending: dict[str, Any] = field(default_factory=dict)


# --- scheduling ----------------------------------------------------------------------


def turn_enqueue(turn: AgentTurn) -> None:
    """Queue the turn for a worker; with the database backend this is a row in the same
    transaction, so a committed turn always has its task (the outbox comes for free)."""
    from supportdesk.agent.tasks import run_turn

    run_turn.enqueue(str(turn.pk))


def turn_create_for_message(message: Message) -> AgentTurn:
    """The customer-message hook: one turn per customer message (a DB constraint).

    A draft or suggestion still pending answers an older state of the conversation: it
    is superseded, and this turn drafts again with the whole conversation in view.
    """
    approval_services.approval_supersede_pending(thread=message.thread)
    turn = AgentTurn.objects.create(
        thread_id=message.thread_id,
        trigger_message=message,
        kind=TurnKind.REPLY,
        max_attempts=settings.SUPPORTDESK_TURN_MAX_ATTEMPTS,
    )
    turn_enqueue(turn)
    return turn


def turn_create_regeneration(draft: ApprovalDraft) -> AgentTurn:
    """The reject-and-regenerate hook: a new turn that sees the reviewer's feedback."""
    original = AgentTurn.objects.filter(pk=draft.turn_id).first() if draft.turn_id else None
    turn = AgentTurn.objects.create(
        thread_id=draft.thread_id,
        trigger_message=original.trigger_message if original else None,
        kind=TurnKind.REGENERATE,
        decision=Decision.AI,
        decision_step="review",
        decision_reason="a reviewer rejected the draft and asked for a new one",
        feedback=f"Your previous draft was:\n{draft.content}\n\nThe reviewer said:\n{draft.review}",
        max_attempts=settings.SUPPORTDESK_TURN_MAX_ATTEMPTS,
    )
    turn_enqueue(turn)
    return turn


def turn_resume_after_human(request: Any, message: Message) -> None:
    """A question of a waiting turn was answered or expired (called in that transaction).

    The tool message joins the turn's transcript. Once every question of the step is
    answered the same turn is queued again and continues from the stored rows; an expired
    question ends the turn in an escalation.
    """
    from escalations.models import HumanRequest, HumanRequestStatus

    turn = AgentTurn.objects.select_for_update().filter(pk=request.turn_id).first()
    if turn is None:
        return
    AgentTurn.objects.filter(pk=turn.pk).update(
        step_message_ids=[*turn.step_message_ids, str(message.pk)], updated_at=timezone.now()
    )
    if turn.status != TurnStatus.WAITING:
        return
    thread = Thread.objects.select_related("customer").get(pk=turn.thread_id)
    if request.status == HumanRequestStatus.EXPIRED:
        HumanRequest.objects.filter(turn_id=turn.pk, status=HumanRequestStatus.PENDING).update(
            status=HumanRequestStatus.EXPIRED
        )
        if AgentTurn.objects.filter(pk=turn.pk, status=TurnStatus.WAITING).update(
            status=TurnStatus.DONE, outcome=Outcome.ESCALATION, finished_at=timezone.now()
        ):
            escalation_services.escalation_open(
                thread=thread,
                source=EscalationSource.REQUIRES_HUMAN,
                reason=f"nobody answered the AI's question: {request.question}"[:1000],
                turn_id=turn.pk,
            )
        return
    if HumanRequest.objects.filter(turn_id=turn.pk, status=HumanRequestStatus.PENDING).exists():
        return
    if AgentTurn.objects.filter(pk=turn.pk, status=TurnStatus.WAITING).update(
        status=TurnStatus.QUEUED, lease_owner="", updated_at=timezone.now()
    ):
        turn_enqueue(turn)


# --- claiming and leases -------------------------------------------------------------


def _lease_until() -> Any:
    return timezone.now() + timedelta(seconds=settings.SUPPORTDESK_TURN_LEASE_SECONDS)


def turn_claim(turn_id: Any, worker_id: str) -> Lease | None:
    """Claim a queued turn (conditional update); None when it is not queued any more."""
    owner = f"{worker_id[:40]}:{uuid.uuid4().hex[:12]}"
    now = timezone.now()
    claimed = AgentTurn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(
        status=TurnStatus.RUNNING,
        lease_owner=owner,
        leased_until=_lease_until(),
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), now),
        updated_at=now,
    )
    return Lease(turn_id, owner) if claimed else None


def _renew(lease: Lease, **fields: Any) -> None:
    """Extend the lease (and write ``fields`` and the pending ones) or raise LeaseLost."""
    updated = AgentTurn.objects.filter(
        pk=lease.turn_id, status=TurnStatus.RUNNING, lease_owner=lease.owner
    ).update(leased_until=_lease_until(), updated_at=timezone.now(), **lease.pending, **fields)
    if not updated:
        raise LeaseLost(str(lease.turn_id))
    lease.pending = {}


def _finish(
    lease: Lease,
    outcome: str,
    *,
    message: Message | None = None,
    status: str = TurnStatus.DONE,
    error: str = "",
) -> None:
    """Mark the turn finished; must run inside the transaction that wrote the outcome."""
    fields: dict[str, Any] = {
        **lease.pending,
        "status": status,
        "outcome": outcome,
        "outcome_message": message,
        "leased_until": None,
        "updated_at": timezone.now(),
    }
    if status == TurnStatus.DONE:
        fields["finished_at"] = timezone.now()
    if error:
        fields["error"] = error[:5000]
    updated = AgentTurn.objects.filter(
        pk=lease.turn_id, status=TurnStatus.RUNNING, lease_owner=lease.owner
    ).update(**fields)
    if not updated:
        raise LeaseLost(str(lease.turn_id))
    lease.pending = {}
    events.emit(
        "turn.updated",
        thread_id=None,
        payload={"turn_id": str(lease.turn_id), "status": status, "outcome": outcome},
    )


# --- usage ---------------------------------------------------------------------------


def _cost(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    prompt_price, completion_price = settings.SUPPORTDESK_MODEL_PRICES.get(model, (0.0, 0.0))
    total = (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000
    return Decimal(str(round(total, 6)))


def record_call(
    turn: AgentTurn, provider: Provider, completion: Completion, purpose: str, ok: bool
) -> ModelCall:
    """Store one model call's usage. Its own transaction: a call that was paid for is
    recorded even if the turn later rolls back."""
    return ModelCall.objects.create(
        turn=turn,
        thread_id=turn.thread_id,
        provider=provider.name,
        model=completion.model or provider.model,
        purpose=purpose,
        prompt_tokens=completion.usage.prompt_tokens,
        completion_tokens=completion.usage.completion_tokens,
        latency_ms=completion.latency_ms,
        cost=_cost(
            completion.model or provider.model,
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
        ),
        ok=ok,
    )


# --- outcomes ------------------------------------------------------------------------


def _pending_topic(lease: Lease) -> str | None:
    """The router's topic while it waits to be written with the turn's next write (the
    escalation's topic resolver would not see it in the row yet); None: ask the resolver."""
    return lease.pending.get("topic") or None


def _escalate(
    lease: Lease,
    thread: Thread,
    *,
    source: str,
    reason: str,
    suggestion: str | None = None,
    confidence: float | None = None,
    error: str = "",
) -> None:
    with transaction.atomic():
        escalation_services.escalation_open(
            thread=thread,
            source=source,
            reason=reason,
            ai_suggestion=suggestion,
            confidence=confidence,
            turn_id=lease.turn_id,
            topic=_pending_topic(lease),
        )
        _finish(lease, Outcome.ESCALATION, error=error)


def _answer(
    lease: Lease,
    turn: AgentTurn,
    thread: Thread,
    provider: Provider,
    completion: Completion,
    final: FinalAnswer,
    reply_id: uuid.UUID,
    guard: OutputGuard,
) -> None:
    lease.pending["confidence"] = final.confidence  # stored with the outcome, whichever
    if turn.decision == Decision.HUMAN:
        # Copilot: a suggestion for the human who owns the thread, never sent by itself.
        with transaction.atomic():
            message = _ai_message(
                thread, provider, completion, content=final.reply, visibility=Visibility.DRAFT
            )
            approval_services.approval_draft_create(
                thread=thread,
                message=message,
                kind=DraftKind.SUGGESTION,
                turn_id=turn.pk,
                confidence=final.confidence,
            )
            _finish(lease, Outcome.HUMAN, message=message)
        return
    if guard.leaks(final.reply):
        # Talked into repeating its instructions (or the reviewer's feedback): a person
        # answers instead; the reply stays on the escalation for staff to see.
        _escalate(
            lease,
            thread,
            source=EscalationSource.REQUIRES_HUMAN,
            reason="the AI's reply repeated its instructions",
            suggestion=final.reply,
            confidence=final.confidence,
        )
        return
    threshold = settings.SUPPORTDESK_ESCALATION_THRESHOLD
    if final.requires_human or final.confidence < threshold:
        source = (
            EscalationSource.REQUIRES_HUMAN
            if final.requires_human
            else EscalationSource.LOW_CONFIDENCE
        )
        reason = (
            "the AI said a person is needed"
            if final.requires_human
            else f"the AI's confidence {final.confidence:.2f} is below {threshold:.2f}"
        )
        _escalate(
            lease,
            thread,
            source=source,
            reason=reason,
            suggestion=final.reply,
            confidence=final.confidence,
        )
        return
    draft = not _goes_public(turn, thread)
    with transaction.atomic():
        message = _ai_message(
            thread,
            provider,
            completion,
            content=final.reply,
            visibility=Visibility.DRAFT if draft else Visibility.PUBLIC,
            message_id=reply_id,
        )
        if draft:
            approval_services.approval_draft_create(
                thread=thread,
                message=message,
                kind=DraftKind.APPROVAL,
                turn_id=turn.pk,
                confidence=final.confidence,
            )
        _finish(lease, Outcome.DRAFT if draft else Outcome.REPLY, message=message)


def _goes_public(turn: AgentTurn, thread: Thread) -> bool:
    """Whether the AI's answer goes straight to the customer. A regeneration answers a
    reviewer, who asked for a new draft: it stays a draft even if the thread switched to
    auto mode meanwhile (it was written from the rejected draft and the review)."""
    return thread.ai_mode == AIMode.AUTO and turn.kind != TurnKind.REGENERATE


def _ai_message(
    thread: Thread,
    provider: Provider,
    completion: Completion,
    *,
    content: str,
    visibility: str,
    role: str = Role.ASSISTANT,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    message_id: uuid.UUID | None = None,
) -> Message:
    message = thread_services.message_create(
        thread=thread,
        role=role,
        author_kind=AuthorKind.AI,
        content=content,
        provider=provider.name,
        model=completion.model or provider.model,
        visibility=visibility,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        usage={
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
        }
        if role == Role.ASSISTANT
        else None,
        message_id=message_id,
    )
    return message


# --- the turn ------------------------------------------------------------------------


def turn_run(turn_id: Any, *, worker_id: str = "inline", refresh: bool = True) -> AgentTurn | None:
    """Run one queued turn to its outcome (or to a wait on a human). Returns the turn
    (re-read unless ``refresh`` is off), or None when it was not claimable (already
    running elsewhere, or finished)."""
    lease = turn_claim(turn_id, worker_id)
    if lease is None:
        return None
    # The customer is not read on the way to a reply; the rare paths that need it load it.
    turn = AgentTurn.objects.select_related("thread", "trigger_message").get(pk=turn_id)
    try:
        _execute(lease, turn)
    except LeaseLost:
        logger.warning("turn %s: lease lost; another worker owns it", turn_id)
    except Exception as exc:
        logger.exception("turn %s failed", turn_id)
        _after_crash(lease, turn, exc)
    if refresh:
        turn.refresh_from_db()
    return turn


def _after_crash(lease: Lease, turn: AgentTurn, exc: Exception) -> None:
    """An unexpected error: try again later, or escalate once attempts are spent."""
    error = f"{type(exc).__name__}: {exc}"
    try:
        if turn.attempts < turn.max_attempts:
            with transaction.atomic():
                _renew(lease, status=TurnStatus.QUEUED, lease_owner="", error=error[:5000])
                turn_enqueue(turn)
        else:
            thread = Thread.objects.select_related("customer").get(pk=turn.thread_id)
            _escalate(
                lease,
                thread,
                source=EscalationSource.AI_FAILURE,
                reason="the AI failed repeatedly",
                error=error,
            )
    except LeaseLost:
        pass


def _execute(lease: Lease, turn: AgentTurn) -> None:
    thread = turn.thread  # read with the turn, right after the claim
    trigger = turn.trigger_message
    # Nothing was written after the trigger (the usual case): no newer message to look for.
    if trigger is not None and thread.last_seq > trigger.seq and not turn.step_message_ids:
        newer = Message.objects.filter(
            thread=thread, role=Role.USER, seq__gt=trigger.seq, turns__kind=TurnKind.REPLY
        ).exists()
        if newer:
            # The newer message's turn answers with the whole conversation in view.
            with transaction.atomic():
                _finish(lease, Outcome.SUPERSEDED)
            return

    if not turn.decision:
        model_calls: list[bool] = []

        def record(completion: Completion, purpose: str, ok: bool) -> None:
            model_calls.append(ok)
            _record_router_call(turn, completion, purpose, ok)

        routed = router.route(
            router.RouteContext(thread=thread, message=trigger, record_call=record)
        )
        lease.pending = {
            "decision": routed.decision,
            "decision_step": routed.step,
            "decision_reason": routed.reason[:500],
            "topic": routed.topic,
        }
        if model_calls:
            # A classifier call took time: renew now rather than with the next write.
            _renew(lease)
        turn.decision = routed.decision
        turn.topic = routed.topic
        if routed.decision == Decision.HUMAN:
            if settings.SUPPORTDESK_COPILOT:
                _copilot(lease, turn, thread)
                return
            _stand_down(lease)
            return
        if routed.decision == Decision.ESCALATE:
            _escalate(lease, thread, source=routed.source, reason=routed.reason)
            return
    elif turn.decision == Decision.HUMAN:
        _copilot(lease, turn, thread)
        return

    _ai_loop(lease, turn, thread)


def _copilot(lease: Lease, turn: AgentTurn, thread: Thread) -> None:
    """Suggest a reply to the human owner; any failure just leaves them without one."""
    try:
        _ai_loop(lease, turn, thread, copilot=True)
    except LeaseLost:
        raise
    except Exception:
        logger.exception("copilot suggestion failed for turn %s", turn.pk)
        _stand_down(lease)


def _stand_down(lease: Lease, error: str = "") -> None:
    with transaction.atomic():
        _finish(lease, Outcome.HUMAN, error=error)


def _record_router_call(turn: AgentTurn, completion: Completion, purpose: str, ok: bool) -> None:
    provider = get_provider("classifier")
    if provider is not None:
        record_call(turn, provider, completion, purpose, ok)


def _ai_loop(lease: Lease, turn: AgentTurn, thread: Thread, *, copilot: bool = False) -> None:
    """Call the model until it answers, uses a terminal tool, or runs out of steps.

    With ``copilot`` the answer becomes a suggestion for the human owner, the only tool is
    the knowledge search, and failures end quietly (the human answers anyway)."""
    provider = get_provider("reply")
    assert provider is not None
    invalid_answers = 0
    tool_specs = agent_context.COPILOT_TOOLS if copilot else agent_context.TOOLS
    first_step = True
    while turn.steps < settings.SUPPORTDESK_MAX_STEPS:
        if not first_step:
            # The claim just set the lease and read the thread; later steps renew and
            # look again (a human may have taken over while the model was thinking).
            _renew(lease)
            thread.refresh_from_db(
                fields=["responder", "assignee", "status", "ai_mode", "last_seq"]
            )
        first_step = False
        if thread.status == ThreadStatus.CLOSED:
            _stand_down(lease, "the thread was closed")
            return
        if thread.responder != "ai" and not copilot:
            # A human took the thread over while the AI was working: stand down.
            _stand_down(lease)
            return
        messages = agent_context.build_messages(turn, thread)
        reply_id = uuid.uuid4()
        public = _goes_public(turn, thread) and not copilot
        guard = OutputGuard([agent_context.SYSTEM_PROMPT])
        stream = DeltaSender(thread, reply_id, guard) if public else None
        try:
            completion = provider.complete(messages=messages, tools=tool_specs, on_delta=stream)
            if stream is not None and completion.final is not None and not completion.tool_calls:
                stream.flush(final=True)
        except ProviderError as exc:
            if copilot:
                _stand_down(lease, str(exc))
                return
            _escalate(
                lease,
                thread,
                source=EscalationSource.AI_FAILURE,
                reason="the AI model is unavailable",
                error=str(exc),
            )
            return
        record_call(turn, provider, completion, "reply", True)
        turn.steps += 1
        lease.pending["steps"] = turn.steps  # written with the turn's next write
        if completion.tool_calls:
            offered = {spec["function"]["name"] for spec in tool_specs}
            if _tool_step(lease, turn, thread, provider, completion, offered):
                return
            continue
        final = completion.final
        if final is None:
            invalid_answers += 1
            _renew(lease)
            if invalid_answers < 2:
                continue  # invalid structured output: one more try
            if copilot:
                _stand_down(lease, "invalid structured output")
                return
            _escalate(
                lease,
                thread,
                source=EscalationSource.AI_FAILURE,
                reason="the AI's answer could not be read",
                suggestion=completion.text[:5000] or None,
                error="invalid structured output",
            )
            return
        _answer(lease, turn, thread, provider, completion, final, reply_id, guard)
        return
    if copilot:
        _stand_down(lease, "step limit")
        return
    _escalate(
        lease,
        thread,
        source=EscalationSource.AI_FAILURE,
        reason=f"the AI used all {settings.SUPPORTDESK_MAX_STEPS} steps without an answer",
    )


class DeltaSender:
    """Streams the public reply as ``message.delta`` events, a few words at a time.

    Model servers send a token or two per chunk; one event per chunk costs a broadcast
    each, so text is gathered until it is DELTA_MIN_CHARS long or DELTA_MAX_WAIT old.
    With a guard, the last few words are held back until the next ones show they do not
    start a repeat of the instructions, and streaming stops for good once the text
    repeats them (``supportdesk.agent.guard``). ``flush(final=True)`` sends the rest
    once the stream ended in a reply that may be shown.
    """

    DELTA_MIN_CHARS = 24
    DELTA_MAX_WAIT = 0.08

    def __init__(
        self, thread: Thread, message_id: uuid.UUID, guard: OutputGuard | None = None
    ) -> None:
        self.thread_id = str(thread.pk)
        self.message_id = str(message_id)
        self.seq_hint = thread.last_seq + 1
        self.guard = guard
        self.text = ""  # everything streamed so far
        self.sent = 0  # how much of it went out
        self.held = 0  # how much of the rest the guard holds back
        self.stopped = False
        self.since = 0.0

    def __call__(self, delta: str) -> None:
        if self.stopped:
            return
        now = time.monotonic()
        if len(self.text) == self.sent:
            self.since = now
        self.text += delta
        if (
            len(self.text) - self.sent - self.held >= self.DELTA_MIN_CHARS
            or now - self.since >= self.DELTA_MAX_WAIT
        ):
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        if self.stopped:
            return
        end = len(self.text)
        if self.guard is not None:
            safe = self.guard.safe_prefix(self.text)
            if safe is None:
                self.stopped = True
                return
            if not final:
                end = safe
        self.held = len(self.text) - end
        self.since = time.monotonic()
        if end <= self.sent:
            return
        text, self.sent = self.text[self.sent : end], end
        events.emit(
            "message.delta",
            thread_id=self.thread_id,
            payload={"message_id": self.message_id, "seq": self.seq_hint, "delta": text},
        )


def _tool_step(
    lease: Lease,
    turn: AgentTurn,
    thread: Thread,
    provider: Provider,
    completion: Completion,
    offered: set[str],
) -> bool:
    """Store the tool calls and their results; True when the turn ended or now waits.
    Only the ``offered`` tools run: the model may name any other, it gets an error."""
    results = [(call, tools.run_tool(call, offered)) for call in completion.tool_calls]
    escalation = next((r for _, r in results if r.effect == "escalate"), None)
    questions = [(call, r) for call, r in results if r.effect == "ask_human"]
    with transaction.atomic():
        step_ids = list(turn.step_message_ids)
        call_message = _ai_message(
            thread,
            provider,
            completion,
            content=completion.text,
            visibility=Visibility.INTERNAL,
            tool_calls=[
                {
                    "id": call.id,
                    "name": call.name,
                    "arguments": call.arguments
                    if call.arguments is not None
                    else {"_raw": call.raw_arguments[:2000]},
                }
                for call in completion.tool_calls
            ],
        )
        step_ids.append(str(call_message.pk))
        for call, result in results:
            if result.effect == "ask_human":
                continue  # answered later by a human: the tool message is theirs to write
            tool_message = _ai_message(
                thread,
                provider,
                completion,
                role=Role.TOOL,
                content=result.content,
                visibility=Visibility.INTERNAL,
                tool_call_id=call.id,
            )
            step_ids.append(str(tool_message.pk))
        _renew(lease, step_message_ids=step_ids)
        turn.step_message_ids = step_ids
        if escalation is not None:
            escalation_services.escalation_open(
                thread=thread,
                source=EscalationSource.TOOL,
                reason=escalation.argument,
                turn_id=lease.turn_id,
                topic=_pending_topic(lease),
            )
            _finish(lease, Outcome.ESCALATION)
            return True
        if questions:
            context = _question_context(thread)
            for call, result in questions:
                escalation_services.human_request_create(
                    thread=thread,
                    turn_id=lease.turn_id,
                    question=result.argument,
                    tool_call_id=call.id,
                    context=context,
                )
            _finish(lease, Outcome.HUMAN_REQUEST, status=TurnStatus.WAITING)
            return True
    return False


def _question_context(thread: Thread) -> str:
    recent = list(
        Message.objects.filter(thread=thread, visibility=Visibility.PUBLIC).order_by("-seq")[:6]
    )
    return "\n".join(agent_context._line(message) for message in reversed(recent))


# --- the sweeper ---------------------------------------------------------------------


def turn_sweep(*, now: Any = None) -> dict[str, int]:
    """Re-queue turns whose worker stopped renewing its lease; escalate spent ones.

    Each transition is a conditional update on (status=running, leased_until < now), so
    two sweepers (or a sweeper racing a late worker) cannot both act on a turn.
    """
    now = now or timezone.now()
    counts = {
        "requeued": 0,
        "escalated": 0,
        "drafts_expired": approval_services.approval_expire_due(now=now),
        "questions_expired": escalation_services.human_request_expire_due(now=now),
    }
    expired = AgentTurn.objects.filter(status=TurnStatus.RUNNING, leased_until__lt=now)
    for turn in expired.only("pk", "attempts", "max_attempts", "thread_id")[:500]:
        if turn.attempts < turn.max_attempts:
            with transaction.atomic():
                requeued = AgentTurn.objects.filter(
                    pk=turn.pk, status=TurnStatus.RUNNING, leased_until__lt=now
                ).update(
                    status=TurnStatus.QUEUED, lease_owner="", leased_until=None, updated_at=now
                )
                if requeued:
                    turn_enqueue(turn)
                    counts["requeued"] += 1
            continue
        owner = f"sweeper:{uuid.uuid4().hex[:12]}"
        taken = AgentTurn.objects.filter(
            pk=turn.pk, status=TurnStatus.RUNNING, leased_until__lt=now
        ).update(lease_owner=owner, leased_until=_lease_until())
        if taken:
            thread = Thread.objects.select_related("customer").get(pk=turn.thread_id)
            try:
                _escalate(
                    Lease(turn.pk, owner),
                    thread,
                    source=EscalationSource.AI_FAILURE,
                    reason=f"the AI worker stopped {turn.attempts} times on this message",
                    error="lease expired",
                )
                counts["escalated"] += 1
            except LeaseLost:
                pass
    counts["orphans_requeued"] = _requeue_orphans(now)
    return counts


def _requeue_orphans(now: Any) -> int:
    """Queue again the queued turns that no task will run.

    A worker takes the task row, then claims the turn: killed (or cut off from the
    database) in between, it leaves the task taken and the turn queued, with no lease
    for the loop above to see expire. A queued turn untouched for two lease periods
    whose task is no longer waiting is such an orphan (a live worker claims the turn
    within milliseconds of the task); one waiting in a backlog still has its task ready.
    The conditional update on ``updated_at`` lets one sweeper act on each.
    """
    from django_tasks_db.compat import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from supportdesk.agent.tasks import run_turn

    quiet_since = now - timedelta(seconds=2 * settings.SUPPORTDESK_TURN_LEASE_SECONDS)
    stale = dict(
        AgentTurn.objects.filter(status=TurnStatus.QUEUED, updated_at__lt=quiet_since)
        .order_by("updated_at")
        .values_list("pk", "updated_at")[:200]
    )
    if not stale:
        return 0
    waiting = set(
        DBTaskResult.objects.filter(
            status=TaskResultStatus.READY,
            task_path=run_turn.module_path,
            args_kwargs__args__0__in=[str(pk) for pk in stale],
        ).values_list("args_kwargs__args__0", flat=True)
    )
    requeued = 0
    for pk, updated_at in stale.items():
        if str(pk) in waiting:
            continue
        with transaction.atomic():
            taken = AgentTurn.objects.filter(
                pk=pk, status=TurnStatus.QUEUED, updated_at=updated_at
            ).update(updated_at=now)
            if taken:
                turn_enqueue(AgentTurn(pk=pk))
                requeued += 1
    if requeued:
        logger.warning("sweeper: %d queued turns had lost their task; queued again", requeued)
    return requeued
