"""Whole conversations against a real model: llama.cpp's server running Gemma 3 270M.

The model is tiny, so its wording means nothing; what is checked is the structure the
server guarantees (grammar-constrained output, a required tool call) and what our code
stores: the turn's one outcome, the transcript rows, the confidence, the usage rows.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from approvals.models import ApprovalDraft
from escalations.models import Escalation
from supportdesk.agent.context import SYSTEM_PROMPT, TOOLS
from supportdesk.agent.kb_data import knowledge_seed
from supportdesk.agent.models import AgentTurn, ModelCall
from supportdesk.agent.providers import get_provider
from supportdesk.agent.providers.openai_provider import OpenAIProvider
from tests.llm_real.llama import MODEL_ALIAS, LlamaServer
from tests.turns import drain
from threads.models import Message, Thread

pytestmark = [pytest.mark.llm_real, pytest.mark.django_db]


def open_thread(client: APIClient, message: str) -> tuple[Thread, str]:
    response = client.post(
        "/api/v1/threads/",
        {"customer": {"name": "Ann", "email": "ann@example.com"}, "message": message},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    return Thread.objects.get(pk=body["thread"]["id"]), body["token"]


def post(client: APIClient, thread: Thread, token: str, content: str) -> None:
    response = client.post(
        f"/api/v1/threads/{thread.pk}/messages/",
        {"content": content},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content


def customer_view(client: APIClient, thread: Thread, token: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/threads/{thread.pk}/messages/", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    return list(response.json()["results"])


def assert_usage(turn: AgentTurn, calls: int) -> None:
    rows = list(ModelCall.objects.filter(turn=turn).order_by("created_at"))
    assert len(rows) == calls
    for row in rows:
        assert (row.provider, row.model, row.purpose, row.ok) == (
            "openai",
            MODEL_ALIAS,
            "reply",
            True,
        )
        assert row.prompt_tokens > 0
        assert row.completion_tokens > 0
        assert row.latency_ms > 0


def test_it_answers_a_conversation_with_the_real_model(
    real_llm: LlamaServer, anon_client: APIClient, settings: Any
) -> None:
    # Any confidence may be published: the outcome is the model's own requires_human,
    # not an accident of a tiny model's self-assessment.
    settings.SUPPORTDESK_ESCALATION_THRESHOLD = 0.0
    thread, token = open_thread(anon_client, "Hello! Do you ship to Canada?")
    drain()
    first = AgentTurn.objects.get(thread=thread)
    assert (first.status, first.decision) == ("done", "ai")
    assert_usage(first, 1)
    if first.outcome == "reply":
        reply = Message.objects.get(pk=first.outcome_message_id)
        assert (reply.author_kind, reply.visibility, reply.provider, reply.model) == (
            "ai",
            "public",
            "openai",
            MODEL_ALIAS,
        )
        assert reply.content.strip()
        assert reply.usage is not None and reply.usage["completion_tokens"] > 0
    else:
        # The model asked for a person: its answer is kept for them, with its confidence.
        assert first.outcome == "escalation"
        escalation = Escalation.objects.get(thread=thread)
        assert escalation.source == "requires_human"
        assert escalation.ai_suggestion
        assert escalation.confidence is not None and 0.0 <= escalation.confidence <= 1.0

    post(anon_client, thread, token, "And how long does delivery take?")
    drain()
    second = AgentTurn.objects.filter(thread=thread).exclude(pk=first.pk).get()
    assert second.status == "done"
    # After a reply the AI answers again; after an escalation it drafts for the human.
    expected = ("reply", "escalation") if first.outcome == "reply" else ("human",)
    assert second.outcome in expected
    assert_usage(second, 1)
    # The second call carried the conversation so far: a longer prompt than the first.
    assert (
        ModelCall.objects.get(turn=second).prompt_tokens
        > ModelCall.objects.get(turn=first).prompt_tokens
    )
    kinds = [m["author"]["kind"] for m in customer_view(anon_client, thread, token)]
    assert kinds[0] == "customer" and kinds.count("customer") == 2


def test_it_stores_a_draft_with_the_models_confidence(
    real_llm: LlamaServer, anon_client: APIClient, settings: Any
) -> None:
    settings.SUPPORTDESK_AI_MODE = "draft"
    settings.SUPPORTDESK_ESCALATION_THRESHOLD = 0.0
    thread, token = open_thread(anon_client, "Can I return boots I bought last week?")
    drain()
    turn = AgentTurn.objects.get(thread=thread)
    assert turn.status == "done"
    assert_usage(turn, 1)
    if turn.outcome == "escalation":
        confidence = Escalation.objects.get(thread=thread).confidence
    else:
        assert turn.outcome == "draft"
        draft = ApprovalDraft.objects.get(thread=thread)
        assert (draft.status, draft.kind, draft.message_id) == (
            "pending",
            "approval",
            turn.outcome_message_id,
        )
        confidence = draft.confidence
        # A draft is not the customer's to see until a human approves it.
        assert [m["author"]["kind"] for m in customer_view(anon_client, thread, token)] == [
            "customer"
        ]
    assert confidence is not None and 0.0 <= confidence <= 1.0


def test_it_calls_a_tool_on_the_real_model(
    real_llm: LlamaServer, anon_client: APIClient, settings: Any
) -> None:
    knowledge_seed()
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "search_knowledge"
    settings.SUPPORTDESK_ESCALATION_THRESHOLD = 0.0
    thread, _ = open_thread(anon_client, "How long do I have to send back boots I don't like?")
    drain()
    turn = AgentTurn.objects.get(thread=thread)
    assert turn.status == "done"
    call_message = Message.objects.get(thread=thread, role="assistant", visibility="internal")
    [call] = call_message.tool_calls
    assert call["name"] == "search_knowledge"
    assert isinstance(call["arguments"].get("query"), str)
    result = Message.objects.get(thread=thread, role="tool")
    assert (result.tool_call_id, result.visibility) == (call["id"], "internal")
    assert result.content
    # The tool result went back to the model, which then answered (or escalated) freely.
    assert turn.outcome in ("reply", "escalation")
    assert_usage(turn, ModelCall.objects.filter(turn=turn).count())
    assert ModelCall.objects.filter(turn=turn).count() >= 2


def test_it_escalates_through_the_escalate_tool(
    real_llm: LlamaServer, anon_client: APIClient, settings: Any
) -> None:
    settings.SUPPORTDESK_LLM_FIRST_TOOL = "escalate"
    thread, _ = open_thread(anon_client, "My parcel never arrived and I am very upset.")
    drain()
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.status, turn.outcome) == ("done", "escalation")
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.status, escalation.turn_id) == ("tool", "open", turn.pk)
    assert escalation.reason.strip()
    thread.refresh_from_db()
    assert thread.responder == "human"
    assert_usage(turn, 1)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_it_gets_structured_output_with_a_confidence(real_llm: LlamaServer, stream: bool) -> None:
    provider = get_provider("reply")
    assert isinstance(provider, OpenAIProvider)
    provider.stream = stream
    deltas: list[str] = []
    completion = provider.complete(
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Hi, what are your customer service hours?"},
        ],
        tools=TOOLS,
        on_delta=deltas.append,
    )
    # The server took json_schema (no fallback) and its grammar shaped the answer.
    assert provider.format_level == 0
    assert completion.tool_calls == []
    assert set(json.loads(completion.text)) == {"confidence", "requires_human", "reply"}
    final = completion.final
    assert final is not None, completion.text
    assert 0.0 <= final.confidence <= 1.0
    assert isinstance(final.requires_human, bool)
    assert final.reply
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.model == MODEL_ALIAS
    if stream and final.confidence >= 0.7 and not final.requires_human:
        assert "".join(deltas).strip() == final.reply
