"""Who responds next: a chain of small steps configured in ``SUPPORTDESK_ROUTER_STEPS``.

Each step looks at the thread and the customer's message and either decides or passes.
The first decision wins; when every step passes, the AI answers. The decision and its
reason are stored on the turn.

The route also names the message's topic (one of ``SUPPORTDESK_TOPICS``, for the queue
rules of an escalation): the classifier model answers it with its ``ai``/``human`` word;
when no classifier answered one (none configured, it failed, or an earlier step decided
first) the category of the best-matching knowledge-base article is the topic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from escalations.models import EscalationSource
from supportdesk.agent import knowledge
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
    topic: str = ""  # one of SUPPORTDESK_TOPICS, or "" for none


@dataclass
class RouteContext:
    thread: Thread
    message: Message | None
    # Called with each model call the router makes, so its usage is recorded on the turn.
    record_call: Callable[[Completion, str, bool], None]
    # The message's topic once a step found it ("" for none); None: nobody said.
    topic: str | None = None


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
        topics = tuple(settings.SUPPORTDESK_TOPICS)
        try:
            completion = provider.classify(text=context.message.content, topics=topics)
        except ProviderError:
            return None
        context.record_call(completion, "classifier", True)
        responder, topic = parse_classification(completion.text, topics)
        if topic is not None:
            context.topic = topic
        if responder == "human":
            return Route(
                Decision.ESCALATE,
                self.name,
                "the classifier chose a human",
                EscalationSource.CLASSIFIER,
            )
        return None


_RESPONDERS = ("ai", "human")
# Words a model may add around its answer ("responder: ai, topic: billing").
_LABELS = frozenset({"responder", "topic", "answer", "who", "is", "the"})


def parse_classification(text: str, topics: Sequence[str]) -> tuple[str | None, str | None]:
    """The classifier's ``(responder, topic)`` from an answer like ``"ai billing"``.

    Tolerant of case, punctuation, labels and plurals. The responder is the first of
    ``ai``/``human`` in the answer (None without one). The topic is None when the
    answer has no second word (a one-word answer: the caller may look elsewhere), ""
    when that word is ``none`` or not one of ``topics``.
    """
    words = re.findall(r"[a-z][a-z0-9_-]*", text.lower())
    responder = next((word for word in words if word in _RESPONDERS), None)
    rest = [word for word in words if word not in _RESPONDERS and word not in _LABELS]
    if not rest:
        return responder, None
    known = set(topics)
    for word in rest:
        for form in (word, word.rstrip("s"), f"{word}s"):
            if form in known:
                return responder, form
    return responder, ""


def knowledge_topic(message: Message | None) -> str:
    """The offline topic: the category of the knowledge-base articles that best match
    the message (no model call)."""
    topics = settings.SUPPORTDESK_TOPICS
    if message is None or not topics:
        return ""
    return knowledge.topic_for(message.content, topics)


@cache
def _steps(paths: tuple[str, ...]) -> list[object]:
    return [import_string(path)() for path in paths]


def route(context: RouteContext) -> Route:
    """The first step's decision (else the AI), with the message's topic."""
    decided = Route(Decision.AI, "default", "no rule applied; the AI answers")
    for step in _steps(tuple(settings.SUPPORTDESK_ROUTER_STEPS)):
        found = step.decide(context)  # type: ignore[attr-defined]
        if found is not None:
            decided = found
            break
    topic = context.topic if context.topic is not None else knowledge_topic(context.message)
    return replace(decided, topic=topic)
