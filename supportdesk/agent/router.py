"""Who responds next: a chain of small steps configured in ``SUPPORTDESK_ROUTER_STEPS``.

Each step looks at the thread and the customer's message and either decides or passes.
The first decision wins; when every step passes, the AI answers. The decision and its
reason are stored on the turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from escalations.models import EscalationSource
from supportdesk.agent.models import Decision
from supportdesk.agent.providers import get_provider
from supportdesk.agent.providers.base import Completion, ProviderError
from threads.models import Message, Responder, Thread


@dataclass(frozen=True)
class Route:
    decision: str
    step: str
    reason: str
    source: str = ""  # the escalation source when decision is "escalate"


@dataclass
class RouteContext:
    thread: Thread
    message: Message | None
    # Called with each model call the router makes, so its usage is recorded on the turn.
    record_call: Callable[[Completion, str, bool], None]


class AssignmentStep:
    """A human owns the thread: the message is theirs (the AI never posts to the customer)."""

    name = "assignment"

    def decide(self, context: RouteContext) -> Route | None:
        if context.thread.responder == Responder.HUMAN:
            who = "an unassigned agent" if context.thread.assignee_id is None else "the assignee"
            return Route(Decision.HUMAN, self.name, f"a human owns this thread ({who})")
        return None


_ASKS_FOR_PERSON = re.compile(
    r"\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s*one|somebody|your\s+)?"
    r"(?:real\s+|live\s+|actual\s+)?(?:human|person|agent|representative|rep|manager|someone|somebody|staff)"
    r"|(?:real|live|actual)\s+(?:human|person|agent)"
    r"|human\s+(?:agent|being|please)"
    r"|(?:get|connect|transfer)\s+me\s+(?:to\s+)?(?:a\s+|an\s+)?(?:human|person|agent|representative|manager)"
    r"|customer\s+service\s+(?:rep|representative|agent))\b",
    re.IGNORECASE,
)


def asks_for_a_person(text: str) -> bool:
    return bool(_ASKS_FOR_PERSON.search(text))


class RulesStep:
    """The customer asked for a person, or the message touches a blocked topic."""

    name = "rules"

    def decide(self, context: RouteContext) -> Route | None:
        if context.message is None:
            return None
        text = context.message.content
        if asks_for_a_person(text):
            return Route(
                Decision.ESCALATE,
                self.name,
                "the customer asked for a person",
                EscalationSource.CUSTOMER_REQUEST,
            )
        lowered = text.lower()
        for topic in settings.SUPPORTDESK_BLOCKED_TOPICS:
            if topic and re.search(rf"\b{re.escape(topic.lower())}\b", lowered):
                return Route(
                    Decision.ESCALATE,
                    self.name,
                    f"blocked topic: {topic}",
                    EscalationSource.REQUIRES_HUMAN,
                )
        return None


class ClassifierStep:
    """An optional fast model (``SUPPORTDESK_CLASSIFIER_MODEL``) answers ``ai`` or ``human``.

    A failing classifier never blocks the customer: the AI answers (and may still escalate).
    """

    name = "classifier"

    def decide(self, context: RouteContext) -> Route | None:
        if context.message is None:
            return None
        provider = get_provider("classifier")
        if provider is None:
            return None
        try:
            completion = provider.classify(text=context.message.content)
        except ProviderError:
            return None
        context.record_call(completion, "classifier", True)
        words = re.findall(r"[a-z]+", completion.text.lower())
        if words and words[0] == "human":
            return Route(
                Decision.ESCALATE,
                self.name,
                "the classifier chose a human",
                EscalationSource.CLASSIFIER,
            )
        return None


@cache
def _steps(paths: tuple[str, ...]) -> list[object]:
    return [import_string(path)() for path in paths]


def route(context: RouteContext) -> Route:
    for step in _steps(tuple(settings.SUPPORTDESK_ROUTER_STEPS)):
        decided = step.decide(context)  # type: ignore[attr-defined]
        if decided is not None:
            return decided
    return Route(Decision.AI, "default", "no rule applied; the AI answers")
