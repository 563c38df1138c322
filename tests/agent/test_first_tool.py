"""SUPPORTDESK_LLM_FIRST_TOOL: the model must call one tool before it answers."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from escalations.models import Escalation
from supportdesk.agent.context import COPILOT_TOOLS, TOOLS
from supportdesk.agent.models import AgentTurn, ModelCall
from supportdesk.agent.providers.openai_provider import OpenAIProvider
from tests.llm_server import ScriptedLLMServer, final, final_json, text, tool_call
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


ESCALATE_PARAMETERS = next(t for t in TOOLS if t["function"]["name"] == "escalate")["function"][
    "parameters"
]


def test_it_asks_for_the_forced_tools_arguments_when_the_server_ignores_tool_choice(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    settings: Any,
) -> None:
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "escalate"
    thread, _ = thread_and_token
    # An answer despite tool_choice "required", as llama.cpp's server may give.
    llm.push(text(final_json("It should arrive in 2 to 3 days.", 0.9)).with_usage(400, 30))
    llm.push(text('{"reason": "the parcel is lost"}').with_usage(410, 8))
    post(customer_client, thread, "My parcel never arrived.")
    drain()
    ignored, asked = llm.requests
    assert ignored.get("tool_choice") == "required"
    assert "tools" not in asked and "tool_choice" not in asked
    assert asked.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "escalate", "schema": ESCALATE_PARAMETERS, "strict": True},
    }
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.status, turn.outcome) == ("done", "escalation")
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.reason) == ("tool", "the parcel is lost")
    # The ignored call's answer reached no one; both requests are one model call's usage.
    assert not Message.objects.filter(thread=thread, role="assistant", visibility="public")
    [call] = ModelCall.objects.filter(turn=turn)
    assert (call.prompt_tokens, call.completion_tokens) == (810, 38)


def test_it_asks_a_server_that_ignored_tool_choice_for_arguments_at_once(
    llm: ScriptedLLMServer, settings: Any
) -> None:
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "search_knowledge"
    provider = OpenAIProvider(model="gpt-test", stream=False)
    messages = [{"role": "user", "content": "Which size?"}]
    llm.push(final("Medium.", 0.9))
    llm.push(text('{"query": "size guide"}'))
    provider.complete(messages=messages, tools=TOOLS)
    llm.push(text('{"query": "returns"}'))
    completion = provider.complete(messages=messages, tools=TOOLS)
    assert len(llm.requests) == 3
    assert llm.last_request().response_format_type == "json_schema"
    [call] = completion.tool_calls
    assert (call.name, call.arguments) == ("search_knowledge", {"query": "returns"})


def test_it_escalates_when_the_forced_tool_is_never_called(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    settings: Any,
) -> None:
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "search_knowledge"
    thread, _ = thread_and_token
    llm.push(final("Medium.", 0.9))
    llm.push(text("I think medium fits."))
    post(customer_client, thread, "Which size?")
    drain()
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.status, turn.outcome) == ("done", "escalation")
    assert Escalation.objects.get(thread=thread).source == "ai_failure"
    assert not Message.objects.filter(thread=thread, role="assistant", visibility="public")


def test_it_streams_nothing_of_an_answer_given_in_place_of_the_forced_tool(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    settings: Any,
    event_log: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "escalate"
    thread, _ = thread_and_token
    answer = "Parcels usually arrive within two to three days. " * 4
    llm.push(final(answer, 0.95))
    llm.push(text('{"reason": "the parcel is lost"}'))
    post(customer_client, thread, "My parcel never arrived.")
    with django_capture_on_commit_callbacks(execute=True):
        drain()
    assert llm.requests[0].stream
    assert AgentTurn.objects.get(thread=thread).outcome == "escalation"
    assert [e for e in event_log.events if e.type == "message.delta"] == []
