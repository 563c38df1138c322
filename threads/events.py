"""Broadcast hooks: the services announce changes here, on commit.

The realtime layer registers a sender at start-up; until then (and in tests that want
to see what was announced) the registry is just a list of callables. Lower layers never
import the consumers: they call :func:`emit`, which schedules every hook after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: str
    thread_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)


# --- Payloads: one TypedDict per event type (what each service puts in ``emit``) -------


class ThreadEventPayload(TypedDict, total=False):
    """thread.created / thread.updated; ``reason`` says what changed."""

    reason: str


class MessageCreatedPayload(TypedDict):
    message_id: str
    seq: int
    visibility: str


class MessageDeltaPayload(TypedDict):
    """Streamed public AI text, sent outside any transaction while the model answers.

    ``message_id`` is the id the finished message will have; ``seq`` is a hint (the seq
    it will most likely get)."""

    message_id: str
    seq: int
    delta: str


class EscalationPayload(TypedDict):
    escalation_id: str
    status: str


class HumanRequestPayload(TypedDict):
    human_request_id: str
    status: str


class ApprovalPayload(TypedDict):
    approval_id: str
    status: str
    kind: str


class TurnUpdatedPayload(TypedDict):
    turn_id: str
    status: str
    outcome: str


class SLABreachedPayload(TypedDict):
    escalation_id: str
    target: str  # first_response | next_response
    due_at: str
    priority: str  # the escalation's priority, raised by the breach


class PresenceUpdatedPayload(TypedDict):
    user_id: int
    status: Literal["online", "busy", "offline"]


PAYLOAD_TYPES: dict[str, type] = {
    "thread.created": ThreadEventPayload,
    "thread.updated": ThreadEventPayload,
    "message.created": MessageCreatedPayload,
    "message.delta": MessageDeltaPayload,
    "escalation.created": EscalationPayload,
    "escalation.updated": EscalationPayload,
    "human_request.created": HumanRequestPayload,
    "human_request.updated": HumanRequestPayload,
    "approval.created": ApprovalPayload,
    "approval.updated": ApprovalPayload,
    "turn.updated": TurnUpdatedPayload,
    "presence.updated": PresenceUpdatedPayload,
    "sla.breached": SLABreachedPayload,
}


Hook = Callable[[Event], None]
_hooks: list[Hook] = []


def register(hook: Hook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def unregister(hook: Hook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def _dispatch(event: Event) -> None:
    for hook in list(_hooks):
        try:
            hook(event)
        except Exception:
            # A broadcast is a notification; the committed rows are the truth, so a
            # failing hook must never turn a successful write into an error.
            logger.exception("event hook %r failed for %s", hook, event.type)


def emit(
    event_type: str, *, thread_id: str | None, payload: Mapping[str, Any] | None = None
) -> None:
    """Send ``event_type`` to every hook once the current transaction commits.

    ``payload`` has the shape of ``PAYLOAD_TYPES[event_type]``.
    """
    event = Event(type=event_type, thread_id=thread_id, payload=dict(payload or {}))
    transaction.on_commit(lambda: _dispatch(event))
