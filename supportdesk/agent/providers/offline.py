"""The offline responder: answers from the knowledge base, with no network and no API key.

It is the default AI when ``OPENAI_API_KEY`` is unset, so ``make run`` answers real
questions. It never calls tools: each ``complete`` retrieves the best help-centre article
for the customer's latest message and composes a reply from that article's own sentences.
The customer's text is only ever a search query (it cannot instruct anything), and system
messages are never read, so nothing from the prompt can leak into a reply.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from supportdesk.agent import knowledge
from supportdesk.agent.providers.base import (
    Completion,
    DeltaCallback,
    FinalAnswer,
    Usage,
)

NOT_SURE_REPLY = "I'm not sure about that one — let me bring in a member of our team."
CLOSING = "Is there anything else I can help you with?"
LEAD_INS = (
    'Thanks for reaching out! Our help article "{title}" covers this:',
    'Good question. Here\'s what our "{title}" article says:',
    'Happy to help. From our help article "{title}":',
)
# Below the escalation threshold the reply is only a suggestion for the human who takes
# over; above this floor the best article is still worth suggesting, below it it is noise.
SUGGESTION_FLOOR = 0.4
# The confidence of a reply relayed from a colleague's answer to an ask_human question.
HUMAN_ANSWER_CONFIDENCE = 0.9
WORDS_PER_DELTA = 3

# The fast classifier's rules: a request for a person, or a legal threat, goes to a person.
_HUMAN_PATTERNS = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bhumans?\b",
        r"\b(real|live|actual)\s+(person|agent|operator|representative|someone)\b",
        r"\b(talk|speak|chat)\s+(to|with)\s+(a|an|the|your|some)?\s*"
        r"(person|people|agent|representative|rep|manager|supervisor|someone|somebody|staff)\b",
        r"\b(representative|supervisor|manager|operator)\b",
        r"\b(lawyer|attorney|solicitor|lawsuit|legal action|small claims|in court|to court)\b",
        r"\b(sue|suing)\s+(you|your|northwind)\b|\b(will|i'll|going to|gonna)\s+sue\b",
    )
]


def _text_of(content: Any) -> str:
    """The text of an OpenAI-format message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _chars(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += len(_text_of(message.get("content")))
        for call in message.get("tool_calls") or []:
            total += len(str(call.get("function", {}).get("arguments", "")))
    return total


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content")).strip()
    return ""


def _human_answer(messages: list[dict[str, Any]]) -> str | None:
    """A colleague's answer when the last message is the result of an ``ask_human`` call."""
    if not messages or messages[-1].get("role") != "tool":
        return None
    call_id = messages[-1].get("tool_call_id")
    asked = any(
        call.get("id") == call_id and call.get("function", {}).get("name") == "ask_human"
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or []
    )
    if not asked:
        return None
    text = _text_of(messages[-1].get("content")).strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict):
        for key in ("answer", "content", "text", "result"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key]).strip()
    return text


def _chunks(text: str) -> list[str]:
    words = re.findall(r"\S+\s*", text)
    return ["".join(words[i : i + WORDS_PER_DELTA]) for i in range(0, len(words), WORDS_PER_DELTA)]


class OfflineProvider:
    """Knowledge-base retrieval behind the Provider protocol (``providers.base.Provider``)."""

    name = "offline"
    model = "kb-bm25"

    def complete(
        self,
        *,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None = None,
    ) -> Completion:
        started = time.monotonic()
        threshold = float(settings.SUPPORTDESK_ESCALATION_THRESHOLD)
        sources: list[int] = []
        human_answer = _human_answer(messages)
        if human_answer is not None:
            if human_answer:
                reply = (
                    "Thanks for your patience. I checked with our team: "
                    f"{human_answer}\n\n{CLOSING}"
                )
                confidence, requires_human = HUMAN_ANSWER_CONFIDENCE, False
            else:
                reply, confidence, requires_human = NOT_SURE_REPLY, 0.0, True
        else:
            question = _last_user_text(messages)
            answer = knowledge.best_answer(question)
            confidence = answer.confidence
            requires_human = answer.hit is None or confidence < threshold
            if answer.hit is not None and confidence >= min(SUGGESTION_FLOOR, threshold):
                reply = self._compose(answer.hit, question)
                sources = [answer.hit.article_id]
            else:
                reply = NOT_SURE_REPLY
        # Only a reply the customer will see is streamed: the caller escalates anything
        # below the threshold, and streamed text cannot be taken back.
        if on_delta is not None and not requires_human and confidence >= threshold:
            for chunk in _chunks(reply):
                on_delta(chunk)
        text = json.dumps(
            {"confidence": confidence, "requires_human": requires_human, "reply": reply},
            ensure_ascii=False,
        )
        return Completion(
            model=self.model,
            text=text,
            final=FinalAnswer(reply=reply, confidence=confidence, requires_human=requires_human),
            usage=Usage(
                prompt_tokens=_tokens(_chars(messages)), completion_tokens=_tokens(len(reply))
            ),
            latency_ms=int((time.monotonic() - started) * 1000),
            sources=sources,
        )

    def classify(self, *, text: str, topics: Sequence[str] = ()) -> Completion:
        """``human`` when the customer asks for a person or threatens legal action, else
        ``ai``. No topic: the router takes it from the knowledge base."""
        started = time.monotonic()
        label = "human" if any(p.search(text) for p in _HUMAN_PATTERNS) else "ai"
        return Completion(
            model=self.model,
            text=label,
            usage=Usage(prompt_tokens=_tokens(len(text)), completion_tokens=1),
            latency_ms=int((time.monotonic() - started) * 1000),
        )

    def _compose(self, hit: knowledge.Hit, question: str) -> str:
        """A lead-in naming the article, its sentences that answer, and an offer to help."""
        lead_in = LEAD_INS[hit.article_id % len(LEAD_INS)].format(title=hit.title)
        sentences = knowledge.key_sentences(hit, question, limit=4, minimum=3)
        body = " ".join(sentences) or hit.snippet
        return f"{lead_in}\n\n{body}\n\n{CLOSING}"
