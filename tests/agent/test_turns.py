"""The AI turn end to end through the API, with the real openai SDK and a scripted server."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from escalations.models import Escalation, HumanRequest
from supportdesk.agent.models import AgentTurn, ModelCall
from supportdesk.agent.runner import turn_run
from tests.factories import make_thread
from tests.llm_server import (
    ScriptedLLMServer,
    cut_stream,
    delay,
    error,
    final,
    invalid_json,
    text,
    tool_call,
)
from tests.turns import drain
from threads import services
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db

NOTICE_START = "Thanks for your patience"


def post(client: APIClient, thread: Thread, content: str, **extra: Any) -> Any:
    return client.post(
        f"/api/v1/threads/{thread.pk}/messages/", {"content": content}, format="json", **extra
    )


def customer_view(client: APIClient, thread: Thread) -> list[dict[str, Any]]:
    return client.get(f"/api/v1/threads/{thread.pk}/messages/").json()["results"]


def only_turn(thread: Thread) -> AgentTurn:
    return AgentTurn.objects.get(thread=thread)


def test_it_posts_a_confident_reply(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Orders ship within 2 business days.", 0.92))
    post(customer_client, thread, "When will my order ship?")
    drain()
    seen = customer_view(customer_client, thread)
    assert [(m["author"]["kind"], m["content"]) for m in seen] == [
        ("customer", "When will my order ship?"),
        ("ai", "Orders ship within 2 business days."),
    ]
    turn = only_turn(thread)
    assert (turn.status, turn.outcome, turn.decision) == ("done", "reply", "ai")
    assert turn.confidence == 0.92
    reply = Message.objects.get(pk=turn.outcome_message_id)
    assert (reply.provider, reply.model, reply.visibility) == ("openai", "gpt-test", "public")


def test_it_answers_streamed_turns_over_one_kept_alive_connection(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    # A stream left unread after [DONE] would close its connection: a connect per call.
    thread, _ = thread_and_token
    for question in ("When will my order ship?", "And the returns window?"):
        llm.push(final("Within 2 business days; returns within 30 days.", 0.92))
        post(customer_client, thread, question)
        drain()
    assert Message.objects.filter(thread=thread, author_kind="ai").count() == 2
    assert [request.get("stream") for request in llm.requests] == [True, True]
    assert len({request.client_port for request in llm.requests}) == 1


def test_it_writes_the_turn_twice_on_the_way_to_a_reply(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Hello!", 0.9))
    post(customer_client, thread, "hi")
    turn = only_turn(thread)
    with CaptureQueriesContext(connection) as captured:
        turn_run(turn.pk, worker_id="test", refresh=False)
    # The claim, the read right after it, and the end with the reply; the routing
    # decision goes with the end, and nothing looks for newer messages when the trigger
    # is the thread's last one.
    turn_sql = [q["sql"] for q in captured.captured_queries if '"agent_agentturn"' in q["sql"]]
    assert [sql.split()[0] for sql in turn_sql] == ["UPDATE", "SELECT", "UPDATE"]
    # One read of the message window, whose columns are all the prompt needs.
    message_reads = [
        q for q in captured.captured_queries if q["sql"].startswith('SELECT "threads_message"')
    ]
    assert len(message_reads) == 1
    turn.refresh_from_db()
    assert (turn.outcome, turn.decision, turn.decision_step) == ("reply", "ai", "default")


def test_it_asks_for_structured_output_with_tools(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Hello!", 0.9))
    post(customer_client, thread, "hi")
    drain()
    request = llm.last_request()
    assert request.response_format_type == "json_schema"
    assert {tool["function"]["name"] for tool in request.tools} == {
        "escalate",
        "ask_human",
        "search_knowledge",
    }
    assert request.messages[-1] == {"role": "user", "content": "hi"}


def test_it_records_usage_of_each_model_call(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Sure.", 0.9).with_usage(120, 8))
    post(customer_client, thread, "hi")
    drain()
    call = ModelCall.objects.get(thread=thread)
    assert (call.provider, call.model, call.prompt_tokens, call.completion_tokens) == (
        "openai",
        "gpt-test",
        120,
        8,
    )
    assert call.turn == only_turn(thread)
    assert call.latency_ms >= 0


def test_it_escalates_on_the_escalate_tool(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(tool_call("escalate", {"reason": "refund above the limit"}, id="call_1"))
    post(customer_client, thread, "I want a refund of 900 euros")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.reason, escalation.status) == (
        "tool",
        "refund above the limit",
        "open",
    )
    thread.refresh_from_db()
    assert (thread.responder, thread.status) == ("human", "waiting_on_human")
    assert only_turn(thread).outcome == "escalation"
    seen = customer_view(customer_client, thread)
    assert seen[-1]["author"]["kind"] == "system"
    assert seen[-1]["content"].startswith(NOTICE_START)
    call_message = Message.objects.get(
        thread=thread, tool_calls__isnull=False, role="assistant", visibility="internal"
    )
    assert call_message.tool_calls[0]["name"] == "escalate"


def test_it_escalates_a_low_confidence_answer_keeping_the_suggestion(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Maybe try restarting it?", 0.4))
    post(customer_client, thread, "My tent pole snapped")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.ai_suggestion, escalation.confidence) == (
        "low_confidence", "Maybe try restarting it?", 0.4
    )  # fmt: skip
    contents = [m["content"] for m in customer_view(customer_client, thread)]
    assert "Maybe try restarting it?" not in contents
    assert contents[-1].startswith(NOTICE_START)
    assert not Message.objects.filter(thread=thread, content="Maybe try restarting it?").exists()
    assert (only_turn(thread).outcome, only_turn(thread).confidence) == ("escalation", 0.4)


def test_it_escalates_when_the_model_requires_a_human(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("I can offer a refund.", 0.95, requires_human=True))
    post(customer_client, thread, "Please refund me")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.ai_suggestion) == (
        "requires_human",
        "I can offer a refund.",
    )


def test_it_escalates_when_the_classifier_says_human(
    llm: ScriptedLLMServer,
    settings: Any,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    settings.SUPPORTDESK_CLASSIFIER_MODEL = "classifier-mini"
    thread, _ = thread_and_token
    llm.push(text("human"), model="classifier-mini")
    post(customer_client, thread, "This is the third time I write, fix it now")
    drain()
    assert Escalation.objects.get(thread=thread).source == "classifier"
    assert [r.model for r in llm.requests] == ["classifier-mini"]
    turn = only_turn(thread)
    assert (turn.decision, turn.decision_step) == ("escalate", "classifier")
    assert ModelCall.objects.get(thread=thread).purpose == "classifier"


def test_it_lets_the_ai_answer_when_the_classifier_says_ai(
    llm: ScriptedLLMServer,
    settings: Any,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    settings.SUPPORTDESK_CLASSIFIER_MODEL = "classifier-mini"
    thread, _ = thread_and_token
    llm.push(text("ai"), model="classifier-mini")
    llm.push(final("Here you go.", 0.9), model="gpt-test")
    post(customer_client, thread, "What sizes do you have?")
    drain()
    assert only_turn(thread).outcome == "reply"
    assert not Escalation.objects.exists()


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: error(500), id="500"),
        pytest.param(lambda: error(429, headers={"Retry-After": "0"}), id="429"),
        pytest.param(lambda: delay(1.0, then=final("late", 0.9)), id="timeout"),
        pytest.param(invalid_json, id="invalid-json"),
    ],
)
def test_it_retries_then_escalates_an_ai_failure(
    llm: ScriptedLLMServer,
    settings: Any,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    failure: Any,
) -> None:
    settings.SUPPORTDESK_LLM_TIMEOUT = 0.3
    thread, _ = thread_and_token
    llm.push_many([failure() for _ in range(3)])
    post(customer_client, thread, "Hello?")
    drain()
    assert len(llm.requests) == 3  # one call and two retries
    escalation = Escalation.objects.get(thread=thread)
    assert escalation.source == "ai_failure"
    turn = only_turn(thread)
    assert (turn.status, turn.outcome) == ("done", "escalation")
    assert "failed after 3 attempts" in turn.error
    assert customer_view(customer_client, thread)[-1]["content"].startswith(NOTICE_START)


def test_it_recovers_when_a_retry_succeeds(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push_many(
        [error(503), error(429, headers={"Retry-After": "0"}), final("Back online.", 0.9)]
    )
    post(customer_client, thread, "Hello?")
    drain()
    assert only_turn(thread).outcome == "reply"
    assert customer_view(customer_client, thread)[-1]["content"] == "Back online."
    assert not Escalation.objects.exists()


def test_it_retries_a_stream_cut_mid_way(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push_many(
        [cut_stream(after_chunks=3, reply=final("Half an answer", 0.9)), final("Whole.", 0.9)]
    )
    post(customer_client, thread, "Hello?")
    drain()
    assert len(llm.requests) == 2
    turn = only_turn(thread)
    # Retried inside the model call, not by re-running the turn after a crash.
    assert (turn.outcome, turn.attempts, turn.error) == ("reply", 1, "")
    assert customer_view(customer_client, thread)[-1]["content"] == "Whole."


def test_it_retries_invalid_structured_output_once_then_escalates(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push_many([text("Sure thing, happy to help"), text("Still not JSON")])
    post(customer_client, thread, "Hello?")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.ai_suggestion) == ("ai_failure", "Still not JSON")
    assert len(llm.requests) == 2


def test_it_never_answers_while_a_human_owns_the_thread(
    llm: ScriptedLLMServer,
    settings: Any,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    agent: Any,
) -> None:
    settings.SUPPORTDESK_COPILOT = False
    thread, _ = thread_and_token
    services.human_reply_create(thread=thread, user=agent, content="Alex here, I'll help")
    post(customer_client, thread, "Thanks Alex")
    drain()
    assert llm.requests == []
    turn = only_turn(thread)
    assert (turn.decision, turn.outcome) == ("human", "human")
    assert not Message.objects.filter(thread=thread, author_kind="ai").exists()


def test_it_creates_one_turn_for_a_retried_post_with_one_key(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Hi!", 0.9))
    for _ in range(3):
        post(customer_client, thread, "hello", HTTP_IDEMPOTENCY_KEY="retry-1")
    drain()
    assert AgentTurn.objects.filter(thread=thread).count() == 1
    assert Message.objects.filter(thread=thread, author_kind="ai").count() == 1


def test_it_escalates_when_the_customer_asks_for_a_person(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    post(customer_client, thread, "Can I talk to a real person please?")
    drain()
    assert llm.requests == []
    assert Escalation.objects.get(thread=thread).source == "customer_request"
    assert only_turn(thread).decision_step == "rules"


def test_it_escalates_a_blocked_topic(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    post(customer_client, thread, "My lawyer will hear about this")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.reason) == ("requires_human", "blocked topic: lawyer")


def test_it_feeds_a_knowledge_search_back_to_the_model(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(tool_call("search_knowledge", {"query": "return window"}, id="call_kb"))
    llm.push(final("You have 30 days.", 0.9))
    post(customer_client, thread, "How long can I return things?")
    drain()
    second = llm.requests[1].messages
    assert second[-2]["role"] == "assistant"
    assert second[-2]["tool_calls"][0]["id"] == "call_kb"
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "call_kb"
    assert only_turn(thread).outcome == "reply"
    assert [m["content"] for m in customer_view(customer_client, thread)][-1] == "You have 30 days."


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (tool_call("delete_account", {"id": 1}, id="c1"), "unknown tool"),
        (tool_call("search_knowledge", {"q": "x"}, id="c1"), "'query' must be a non-empty string"),
        (tool_call("search_knowledge", "{not json", id="c1"), "must be a JSON object"),
    ],
)
def test_it_returns_bad_tool_calls_to_the_model_as_errors(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    call: Any,
    expected: str,
) -> None:
    thread, _ = thread_and_token
    llm.push_many([call, final("Let me answer directly.", 0.9)])
    post(customer_client, thread, "hello")
    drain()
    tool_result = llm.requests[1].messages[-1]
    assert tool_result["role"] == "tool"
    assert expected in tool_result["content"]
    assert only_turn(thread).outcome == "reply"


def test_it_counts_every_model_call_of_a_turn_as_a_step(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push_many(
        [tool_call("search_knowledge", {"query": "returns"}, id="c1"), final("30 days.", 0.9)]
    )
    post(customer_client, thread, "How long do I have to return a tent?")
    drain()
    turn = only_turn(thread)
    assert (turn.outcome, turn.steps) == ("reply", 2)
    assert ModelCall.objects.filter(turn=turn, purpose="reply").count() == 2


def test_it_escalates_after_max_steps(
    llm: ScriptedLLMServer,
    settings: Any,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    settings.SUPPORTDESK_MAX_STEPS = 3
    thread, _ = thread_and_token
    llm.push_many([tool_call("search_knowledge", {"query": f"q{i}"}, id=f"c{i}") for i in range(3)])
    post(customer_client, thread, "hello")
    drain()
    assert len(llm.requests) == 3
    assert Escalation.objects.get(thread=thread).source == "ai_failure"
    assert only_turn(thread).steps == 3


def test_it_waits_on_an_ask_human_question(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(
        tool_call("ask_human", {"question": "Is order 1234 eligible for a refund?"}, id="call_ask")
    )
    post(customer_client, thread, "Can I get a refund for order 1234?")
    drain()
    request = HumanRequest.objects.get(thread=thread)
    assert (request.status, request.tool_call_id, request.question) == (
        "pending", "call_ask", "Is order 1234 eligible for a refund?"
    )  # fmt: skip
    assert "Can I get a refund for order 1234?" in request.context
    turn = only_turn(thread)
    assert (turn.status, turn.outcome) == ("waiting", "human_request")
    assert [m["author"]["kind"] for m in customer_view(customer_client, thread)] == ["customer"]


def test_it_falls_back_from_json_schema_to_json_object(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.reject_json_schema = True
    llm.push(final("Fine.", 0.9))
    post(customer_client, thread, "hello")
    drain()
    assert [r.response_format_type for r in llm.requests] == ["json_schema", "json_object"]
    assert only_turn(thread).outcome == "reply"


def test_it_parses_a_plain_answer_when_the_server_has_no_response_format(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.reject_response_format = True
    llm.push(
        text(
            'Here is my answer:\n```json\n{"confidence": 0.8, "requires_human": false, "reply": "Yes."}\n```'
        )
    )
    post(customer_client, thread, "hello")
    drain()
    assert [r.response_format_type for r in llm.requests][-1] is None
    assert customer_view(customer_client, thread)[-1]["content"] == "Yes."


def test_it_sends_no_drafts_or_internal_notes_to_the_model(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    agent: Any,
) -> None:
    thread, _ = thread_and_token
    services.internal_note_create(thread=thread, user=agent, content="INTERNAL-CANARY")
    services.message_create(
        thread=thread,
        role="assistant",
        author_kind="ai",
        content="DRAFT-CANARY",
        visibility="draft",
    )
    llm.push(final("ok", 0.9))
    post(customer_client, thread, "hello")
    drain()
    sent = str(llm.last_request().messages)
    assert "INTERNAL-CANARY" not in sent
    assert "DRAFT-CANARY" not in sent


def test_it_keeps_prompt_size_flat_as_the_thread_grows(llm: ScriptedLLMServer, db: Any) -> None:
    prompt_sizes = []
    for history in (10, 500):
        thread, _ = make_thread()
        for index in range(history):
            services.message_create(
                thread=thread,
                role="user" if index % 2 == 0 else "assistant",
                author_kind="customer" if index % 2 == 0 else "ai",
                content=f"message number {index} about my order and its delivery",
            )
        llm.push(final("ok", 0.9))
        services.customer_message_create(thread=thread, content="And now?")
        drain()
        prompt_sizes.append(llm.last_request().prompt_tokens)
    small, large = prompt_sizes
    assert large <= small * 1.2, prompt_sizes


def test_it_supersedes_a_turn_when_a_newer_message_arrived(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    post(customer_client, thread, "hello")
    post(customer_client, thread, "are you there?")
    llm.push(final("Yes, how can I help?", 0.9))
    drain()
    outcomes = list(
        AgentTurn.objects.filter(thread=thread)
        .order_by("created_at")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["superseded", "reply"]
    assert llm.last_request().messages[-2:] == [
        {"role": "user", "content": "hello"},
        {"role": "user", "content": "are you there?"},
    ]
    assert Message.objects.filter(thread=thread, author_kind="ai").count() == 1


def test_it_streams_public_reply_deltas(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    event_log: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Your parcel left our warehouse today.", 0.9))
    post(customer_client, thread, "where is my parcel")
    with django_capture_on_commit_callbacks(execute=True):
        drain()
    deltas = [e.payload["delta"] for e in event_log.events if e.type == "message.delta"]
    assert "".join(deltas) == "Your parcel left our warehouse today."
    reply = AgentTurn.objects.get(thread=thread).outcome_message
    assert {e.payload["message_id"] for e in event_log.events if e.type == "message.delta"} == {
        str(reply.pk)
    }


def test_it_streams_nothing_of_an_uncertain_answer(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    event_log: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    thread, _ = thread_and_token
    llm.push(final("Perhaps it is lost.", 0.3))
    post(customer_client, thread, "where is my parcel")
    with django_capture_on_commit_callbacks(execute=True):
        drain()
    assert [e for e in event_log.events if e.type == "message.delta"] == []


def test_it_streams_a_reply_once_when_its_first_stream_was_cut(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    event_log: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    thread, _ = thread_and_token
    # Longer than the output guard's held-back tail (supportdesk/agent/guard.py), so some
    # text streams before the cut.
    text = (
        "Your parcel left our warehouse this morning and the courier expects to "
        "hand it to you by Friday afternoon at the latest."
    )
    answer = final(text, 0.9)
    llm.push(cut_stream(after_chunks=16, reply=answer))  # cut a dozen words into the reply
    llm.push(answer)
    post(customer_client, thread, "where is my parcel")
    with django_capture_on_commit_callbacks(execute=True):
        drain()
    deltas = [e.payload["delta"] for e in event_log.events if e.type == "message.delta"]
    assert len(deltas) >= 2  # some text went out before the cut, the rest after the retry
    assert "".join(deltas) == text
    assert AgentTurn.objects.get(thread=thread).outcome_message.content == "".join(deltas)


def test_it_stays_silent_on_a_thread_closed_before_the_turn_ran(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    post(customer_client, thread, "hello")
    services.thread_set_status(thread=thread, status="closed")
    drain()
    assert llm.requests == []
    assert not Message.objects.filter(thread=thread, author_kind="ai").exists()
    assert only_turn(thread).outcome == "human"
