"""The provider interface: every model backend returns these dataclasses, never SDK objects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    # Parsed JSON arguments; None when the model sent something that is not a JSON object
    # (the raw text is kept so the tool error can quote it back to the model).
    arguments: dict[str, Any] | None
    raw_arguments: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class FinalAnswer:
    reply: str
    confidence: float
    requires_human: bool


@dataclass
class Completion:
    """One model call's result: either tool calls, or text (the final answer)."""

    model: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    # The structured final answer when the text parsed as one, else None.
    final: FinalAnswer | None = None
    # Knowledge article ids the provider used (offline provider), for the transcript.
    sources: list[int] = field(default_factory=list)


class ProviderError(Exception):
    """The model could not be reached or answered unusably after the allowed retries."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


DeltaCallback = Callable[[str], None]


class Provider(Protocol):
    name: str
    model: str

    def complete(
        self,
        *,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None = None,
    ) -> Completion:
        """Run one chat step. ``on_delta`` receives the public reply text as it streams."""
        ...

    def classify(self, *, text: str, topics: Sequence[str] = ()) -> Completion:
        """Answer ``ai`` or ``human`` for a customer message (the fast classifier), then,
        when ``topics`` are given, the one the message is about (or ``none``)."""
        ...
