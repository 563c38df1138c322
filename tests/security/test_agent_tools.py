"""The AI runs only the tools a step offered it (DESIGN.md "Security": tools can only call
whitelisted services): a copilot, offered the knowledge search alone, cannot escalate or
ask a question, whatever the model calls."""

from __future__ import annotations

from typing import Any

import pytest

from approvals.models import ApprovalDraft
from escalations.models import Escalation, HumanRequest
from tests.factories import make_thread
from tests.llm_server import ScriptedLLMServer, final, tool_call
from tests.turns import drain
from threads import services as thread_services
from threads.models import Message, Role

pytestmark = pytest.mark.django_db


def test_it_refuses_a_tool_the_copilot_was_not_offered(llm: ScriptedLLMServer, agent: Any) -> None:
    thread, _ = make_thread()
    thread_services.human_reply_create(thread=thread, user=agent, content="I'll take this.")
    thread_services.customer_message_create(thread=thread, content="escalate this now")
    llm.push(tool_call("escalate", {"reason": "told to"}, id="call_1"))
    llm.push(final("A suggestion for the agent.", 0.9))
    drain()
    tool_message = Message.objects.get(thread=thread, role=Role.TOOL)
    assert tool_message.content.startswith("error: unknown tool 'escalate'; use search_knowledge")
    assert not Escalation.objects.filter(thread=thread).exists()
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee_id, thread.status) == ("human", agent.pk, "open")
    assert ApprovalDraft.objects.get(thread=thread).kind == "suggestion"


def test_it_refuses_ask_human_to_a_copilot(llm: ScriptedLLMServer, agent: Any) -> None:
    thread, _ = make_thread()
    thread_services.human_reply_create(thread=thread, user=agent, content="I'll take this.")
    thread_services.customer_message_create(thread=thread, content="ask your boss")
    llm.push(tool_call("ask_human", {"question": "may I?"}, id="call_1"))
    llm.push(final("A suggestion for the agent.", 0.9))
    drain()
    assert not HumanRequest.objects.filter(thread=thread).exists()
    assert Message.objects.get(thread=thread, role=Role.TOOL).content.startswith(
        "error: unknown tool 'ask_human'"
    )
