"""Broadcast hooks: the services announce changes here, on commit.

The realtime layer registers a sender at start-up; until then (and in tests that want
to see what was announced) the registry is just a list of callables. Lower layers never
import the consumers: they call :func:`emit`, which schedules every hook after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: str
    thread_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)


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


def emit(event_type: str, *, thread_id: str | None, payload: dict[str, Any] | None = None) -> None:
    """Send ``event_type`` to every hook once the current transaction commits."""
    event = Event(type=event_type, thread_id=thread_id, payload=payload or {})
    transaction.on_commit(lambda: _dispatch(event))
