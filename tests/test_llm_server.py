"""The scripted OpenAI-compatible server, exercised through the real ``openai`` SDK."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.llm_server import (
    MAX_BODY_BYTES,
    Faults,
    ScriptedLLMServer,
    cut_stream,
    delay,
    error,
    estimate_tokens,
    final,
    invalid_json,
    text,
    tool_call,
    tool_calls,
)

MODEL = "gpt-test"
SCHEMA_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "final_answer",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"reply": {"type": "string"}},
            "required": ["reply"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as running:
        yield running


@pytest.fixture
def client(server: ScriptedLLMServer) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=5)
    yield sdk
    sdk.close()


def ask(client: openai.OpenAI, content: str = "Hello", **kwargs: Any) -> Any:
    messages = kwargs.pop("messages", [{"role": "user", "content": content}])
    return client.chat.completions.create(
        model=kwargs.pop("model", MODEL), messages=messages, **kwargs
    )


def test_it_answers_a_scripted_text_reply(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(final("Refunds take five days.", confidence=0.8))

    response = ask(client, "How long do refunds take?")

    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.tool_calls is None
    assert choice.message.content == (
        '{"confidence": 0.8, "requires_human": false, "reply": "Refunds take five days."}'
    )
    assert json.loads(choice.message.content) == {
        "confidence": 0.8,
        "requires_human": False,
        "reply": "Refunds take five days.",
    }
    assert response.object == "chat.completion"
    assert response.model == MODEL
    assert response.usage is not None
    assert response.usage.prompt_tokens == estimate_tokens("How long do refunds take?")
    assert response.usage.completion_tokens == estimate_tokens(choice.message.content)
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )


def test_it_echoes_when_the_queue_is_empty(client: openai.OpenAI) -> None:
    content = ask(client, "Where is my order?").choices[0].message.content

    assert json.loads(content) == {
        "confidence": 0.9,
        "requires_human": False,
        "reply": "You said: Where is my order?",
    }


def test_it_answers_500_when_empty_in_error_mode(
    client: openai.OpenAI, server: ScriptedLLMServer
) -> None:
    server.mode = "error"

    with pytest.raises(openai.InternalServerError):
        ask(client)


def test_it_returns_a_tool_call(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(tool_call("search_kb", {"query": "refund policy", "limit": 3}, id="call_kb1"))

    response = ask(client, "refund?", tools=[_tool("search_kb")])

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id == "call_kb1"
    assert call.type == "function"
    assert call.function.name == "search_kb"
    assert json.loads(call.function.arguments) == {"query": "refund policy", "limit": 3}


def test_it_returns_two_tool_calls_in_one_message(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.push(
        tool_calls(
            [tool_call("search_kb", {"query": "refund"}), tool_call("lookup_order", {"id": 42})]
        )
    )

    calls = ask(client).choices[0].message.tool_calls

    assert [call.function.name for call in calls] == ["search_kb", "lookup_order"]
    assert [json.loads(call.function.arguments) for call in calls] == [
        {"query": "refund"},
        {"id": 42},
    ]
    assert calls[0].id != calls[1].id
    assert all(call.id.startswith("call_") for call in calls)


def test_it_streams_text_with_usage_when_asked(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    content = final("Your parcel left the warehouse this morning and arrives tomorrow.")
    server.push(content)

    stream = ask(client, "Where is it?", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 3
    assert "".join(pieces) == content.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == estimate_tokens("Where is it?")
    assert chunks[-1].usage.completion_tokens == estimate_tokens(content.content)


def test_it_streams_without_usage_unless_asked(client: openai.OpenAI) -> None:
    chunks = list(ask(client, "hi", stream=True))

    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_it_streams_tool_call_deltas_that_reassemble(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    arguments = [{"query": "how do I reset my password on the mobile app"}, {"order_id": "A-1001"}]
    server.push(
        tool_calls([tool_call("search_kb", arguments[0]), tool_call("lookup_order", arguments[1])]),
    )

    calls: dict[int, dict[str, str]] = {}
    finish_reasons = []
    for chunk in ask(client, stream=True, stream_options={"include_usage": True}):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish_reasons.append(choice.finish_reason)
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""

    assert [calls[i]["name"] for i in sorted(calls)] == ["search_kb", "lookup_order"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == arguments
    assert all(call["id"].startswith("call_") for call in calls.values())
    assert finish_reasons[-1] == "tool_calls"
    assert sum(1 for r in finish_reasons if r) == 1


def test_it_raises_internal_server_error_on_500(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.push(error(500))

    with pytest.raises(openai.InternalServerError) as raised:
        ask(client)

    assert raised.value.status_code == 500
    assert raised.value.type == "server_error"


def test_it_raises_rate_limit_error_with_retry_after(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.push(error(429, headers={"Retry-After": "7"}))

    with pytest.raises(openai.RateLimitError) as raised:
        ask(client)

    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"


def test_it_sends_an_openai_style_400_body(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.push(error(400, message="bad tools", param="tools", code="invalid_value"))

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client)

    assert raised.value.body == {
        "message": "bad tools",
        "type": "invalid_request_error",
        "param": "tools",
        "code": "invalid_value",
    }
    assert raised.value.param == "tools"


def test_it_times_the_client_out_on_a_long_delay(server: ScriptedLLMServer) -> None:
    server.push(delay(3.0, then=text("too late")))
    impatient = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.3)

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(impatient)

    assert time.monotonic() - started < 2.0
    impatient.close()


def test_it_answers_after_a_short_delay(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(delay(0.2, then="after a pause"))

    started = time.monotonic()
    content = ask(client).choices[0].message.content

    assert content == "after a pause"
    assert time.monotonic() - started >= 0.2


def test_it_cuts_a_stream_mid_way(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(cut_stream(after_chunks=3, reply=text("one two three four five six seven")))

    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in ask(client, stream=True):
            received.append(chunk.choices[0].delta.content or "")

    assert "".join(received) == "one two "  # the role chunk, then two pieces


def test_it_cuts_a_non_streamed_body(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(cut_stream())

    with pytest.raises(openai.APIConnectionError):
        ask(client)


def test_it_sends_invalid_json(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(invalid_json())

    with pytest.raises((ValueError, openai.APIError)):
        ask(client)


def test_it_sends_invalid_json_in_a_stream(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.push(invalid_json("not json at all"))

    with pytest.raises((ValueError, openai.APIError)):
        list(ask(client, stream=True))


def test_it_routes_replies_by_model(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(final("main answer"))
    server.push(text("human"), model="classifier-mini")

    classified = ask(client, "I will sue you", model="classifier-mini")
    answered = ask(client, "I will sue you")

    assert classified.choices[0].message.content == "human"
    assert json.loads(answered.choices[0].message.content)["reply"] == "main answer"
    assert server.pending() == []
    assert [r.model for r in server.requests_for("classifier-mini")] == ["classifier-mini"]
    assert len(server.requests_for(MODEL)) == 1


def test_it_routes_replies_by_predicate(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(text("ai"), when=lambda request: request.get("max_tokens") == 3)

    main = ask(client, "first")
    routed = ask(client, "second", max_tokens=3)

    assert json.loads(main.choices[0].message.content)["reply"] == "You said: first"
    assert routed.choices[0].message.content == "ai"


def test_it_records_requests_in_order(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.push(tool_call("search_kb", {"query": "refund"}, id="call_1"))
    first = ask(client, "refund?", tools=[_tool("search_kb")])
    call = first.choices[0].message.tool_calls[0]
    ask(
        client,
        messages=[
            {"role": "user", "content": "refund?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "Refunds take 5 days."},
        ],
        response_format=SCHEMA_FORMAT,
    )

    requests = server.requests
    assert len(requests) == 2
    assert requests[0]["tools"][0]["function"]["name"] == "search_kb"
    assert requests[0].headers["authorization"] == "Bearer test"
    last = server.last_request()
    assert last is requests[1]
    assert [m["role"] for m in last.messages] == ["user", "assistant", "tool"]
    assert last.messages[1]["tool_calls"][0]["id"] == "call_1"
    assert last.messages[2]["tool_call_id"] == "call_1"
    assert last.response_format_type == "json_schema"
    assert last.prompt_tokens > requests[0].prompt_tokens


def test_it_counts_prompt_tokens_from_the_request(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    short = ask(client, "x" * 40).usage
    long = ask(client, "x" * 400).usage
    server.push(text("fixed", usage=(1234, 56)))
    overridden = ask(client).usage

    assert (short.prompt_tokens, long.prompt_tokens) == (10, 100)
    assert (overridden.prompt_tokens, overridden.completion_tokens) == (1234, 56)
    assert overridden.total_tokens == 1290


def test_it_rejects_json_schema_without_consuming_the_reply(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.reject_json_schema = True
    server.push(final("plain answer"))

    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, response_format=SCHEMA_FORMAT)
    fallback = ask(client, response_format={"type": "json_object"})

    assert raised.value.param == "response_format"
    assert json.loads(fallback.choices[0].message.content)["reply"] == "plain answer"


def test_it_rejects_any_response_format_when_told(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    server.reject_response_format = True

    with pytest.raises(openai.BadRequestError):
        ask(client, response_format={"type": "json_object"})
    assert ask(client).choices[0].finish_reason == "stop"


def test_it_refuses_bodies_over_the_cap(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        ask(client, "x" * (MAX_BODY_BYTES + 1))

    assert raised.value.status_code == 413
    assert server.requests == []


def test_it_checks_the_api_key_when_given(server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    server.api_key = "right-key"

    with pytest.raises(openai.AuthenticationError):
        ask(client)


def test_it_lists_models(client: openai.OpenAI) -> None:
    assert MODEL in [model.id for model in client.models.list()]


def test_it_serves_many_concurrent_requests(server: ScriptedLLMServer) -> None:
    server.delay = 0.3
    sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=10)
    started = time.monotonic()

    with ThreadPoolExecutor(max_workers=100) as pool:
        replies = list(pool.map(lambda n: ask(sdk, f"message {n}"), range(100)))

    assert time.monotonic() - started < 3.0
    assert [json.loads(r.choices[0].message.content)["reply"] for r in replies] == [
        f"You said: message {n}" for n in range(100)
    ]
    assert server.received == 100
    sdk.close()


def test_it_waits_for_requests_from_other_threads(
    server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    worker = threading.Thread(target=ask, args=(client, "background"))
    worker.start()

    [request] = server.wait_for_requests(1, timeout=5)
    worker.join(timeout=5)

    assert request.last_user_message() == "background"


def test_it_fails_calls_at_random_without_consuming_the_script() -> None:
    with ScriptedLLMServer(faults=Faults(rate=1.0, kinds=("429",))) as server:
        server.push(final("kept for the retry"))
        sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=5)
        with pytest.raises(openai.RateLimitError):
            ask(sdk)
        server.faults = None
        content = ask(sdk).choices[0].message.content
        sdk.close()
    assert json.loads(content)["reply"] == "kept for the retry"
    assert server.faulted == {"429": 1}
    assert [request.fault for request in server.requests] == ["429", None]


def _fault_sequence(seed: int) -> list[str | None]:
    with ScriptedLLMServer(faults=Faults(rate=0.5, seed=seed, stall=0.3)) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.2)
        for _ in range(12):
            with contextlib.suppress(openai.APIError, ValueError):
                list(ask(sdk, stream=True))
        sdk.close()
        return [request.fault for request in server.requests]


def test_it_draws_the_same_faults_from_the_same_seed() -> None:
    first = _fault_sequence(3)
    assert first == _fault_sequence(3)
    assert any(first) and not all(first)
    assert first != _fault_sequence(4)


def test_it_cuts_the_stream_of_the_reply_the_request_would_have_got() -> None:
    faults = Faults(rate=1.0, kinds=("cut",), max_cut_chunks=1)
    with ScriptedLLMServer(faults=faults) as server:
        server.push(text("the scripted words"))
        sdk = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=5)
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in ask(sdk, stream=True):
                received.append(chunk.choices[0].delta.content or "")
        server.faults = None
        content = ask(sdk).choices[0].message.content
        sdk.close()
    assert received == [""]  # the role chunk, then the cut
    assert content == "the scripted words"


def test_it_runs_as_a_process_and_echoes() -> None:
    script = Path(__file__).with_name("llm_server.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--delay", "0.1", "--mode", "echo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        sdk = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=5)
        content = ask(sdk, "ping").choices[0].message.content
        sdk.close()
        assert json.loads(content)["reply"] == "You said: ping"
    finally:
        process.terminate()
        process.wait(timeout=5)
    assert process.returncode == 0


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": True},
        },
    }
