"""SUPPORTDESK_LLM_FIRST_TOOL: the model must call one tool before it answers."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from supportdesk.agent.context import COPILOT_TOOLS
from supportdesk.agent.models import AgentTurn, ModelCall
from supportdesk.agent.providers.openai_provider import OpenAIProvider
from tests.llm_server import ScriptedLLMServer, final, tool_call
from tests.turns import drain
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


def post(client: APIClient, thread: Thread, content: str) -> Any:
    return client.post(
        f"/api/v1/threads/{thread.pk}/messages/", {"content": content}, format="json"
    )


def tool_names(request: Any) -> list[str]:
    return [tool["function"]["name"] for tool in request.tools]


def test_it_requires_the_first_tool_on_the_first_call_only(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    settings: Any,
) -> None:
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "search_knowledge"
    thread, _ = thread_and_token
    llm.push(tool_call("search_knowledge", {"query": "shipping times"}, id="call_kb"))
    llm.push(final("Orders ship within 2 business days.", 0.9))
    post(customer_client, thread, "When will my order ship?")
    drain()
    first, second = llm.requests
    assert (tool_names(first), first.get("tool_choice"), first.response_format) == (
        ["search_knowledge"],
        "required",
        None,
    )
    assert set(tool_names(second)) == {"escalate", "ask_human", "search_knowledge"}
    assert "tool_choice" not in second
    assert second.response_format_type == "json_schema"
    turn = AgentTurn.objects.get(thread=thread)
    assert turn.outcome == "reply"
    assert ModelCall.objects.filter(turn=turn).count() == 2
    assert Message.objects.filter(thread=thread, role="tool", tool_call_id="call_kb").exists()


def test_it_leaves_the_choice_to_the_model_by_default(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Hello!", 0.9))
    post(customer_client, thread, "hi")
    drain()
    request = llm.last_request()
    assert "tool_choice" not in request
    assert len(request.tools) == 3


def test_it_forces_no_tool_that_the_call_does_not_offer(
    llm: ScriptedLLMServer, settings: Any
) -> None:
    # The copilot offers only search_knowledge; a first tool of escalate cannot apply.
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "escalate"
    llm.push(final("Try the size guide.", 0.9))
    provider = OpenAIProvider(model="gpt-test", stream=False)
    completion = provider.complete(
        messages=[{"role": "user", "content": "Which size?"}], tools=COPILOT_TOOLS
    )
    request = llm.last_request()
    assert "tool_choice" not in request
    assert tool_names(request) == ["search_knowledge"]
    assert completion.final is not None
