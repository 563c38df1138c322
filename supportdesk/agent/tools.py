"""The tools the model may call, with argument validation.

A tool returns a ToolResult: text for the model, and for escalate / ask_human a terminal
effect that the runner applies in the same transaction as the transcript rows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from supportdesk.agent.providers.base import ToolCall

MAX_ARGUMENT_CHARS = 2000


@dataclass(frozen=True)
class ToolResult:
    content: str
    # "escalate" or "ask_human" when the call ends (or pauses) the turn; "" otherwise.
    effect: str = ""
    argument: str = ""
    error: bool = False


def _string_argument(call: ToolCall, name: str) -> str | ToolResult:
    if call.arguments is None:
        return ToolResult(
            f"error: arguments must be a JSON object, got {call.raw_arguments[:200]!r}", error=True
        )
    value: Any = call.arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        return ToolResult(f"error: '{name}' must be a non-empty string", error=True)
    if len(value) > MAX_ARGUMENT_CHARS:
        return ToolResult(
            f"error: '{name}' is longer than {MAX_ARGUMENT_CHARS} characters", error=True
        )
    unknown = set(call.arguments) - {name}
    if unknown:
        return ToolResult(f"error: unknown arguments {sorted(unknown)}", error=True)
    return value.strip()


def run_tool(call: ToolCall, offered: Collection[str] | None = None) -> ToolResult:
    """Validate and run one tool call. Never raises for bad input: errors go back to the model.

    ``offered``: the names of the tools this step offered; a call of any other tool is
    refused like an unknown one (a copilot, offered only the search, cannot escalate)."""
    if offered is not None and call.name not in offered:
        return _unknown(call, offered)
    if call.name == "search_knowledge":
        query = _string_argument(call, "query")
        if isinstance(query, ToolResult):
            return query
        from supportdesk.agent import knowledge

        hits = knowledge.search(query, k=3)
        if not hits:
            return ToolResult("No articles matched.")
        return ToolResult("\n\n".join(f"[{hit.title}]\n{hit.snippet}" for hit in hits))
    if call.name == "escalate":
        reason = _string_argument(call, "reason")
        if isinstance(reason, ToolResult):
            return reason
        return ToolResult(
            "A human agent has been asked to take over.", effect="escalate", argument=reason
        )
    if call.name == "ask_human":
        question = _string_argument(call, "question")
        if isinstance(question, ToolResult):
            return question
        return ToolResult("", effect="ask_human", argument=question)
    return _unknown(call, ("search_knowledge", "ask_human", "escalate"))


def _unknown(call: ToolCall, offered: Collection[str]) -> ToolResult:
    names = ", ".join(sorted(offered)) or "none"
    return ToolResult(f"error: unknown tool {call.name[:100]!r}; use {names}", error=True)
