"""Human in the loop: ask_human round trips, approval drafts, copilot suggestions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import ApprovalDraft
from escalations.models import Escalation, HumanRequest
from supportdesk.agent import runner
from supportdesk.agent.models import AgentTurn
from tests.llm_server import ScriptedLLMServer, final, tool_call, tool_calls
from tests.turns import drain
from threads import services
from threads.models import Message, Thread

pytestmark = pytest.mark.django_db


def post(client: APIClient, thread: Thread, content: str) -> Any:
    return client.post(
        f"/api/v1/threads/{thread.pk}/messages/", {"content": content}, format="json"
    )


def customer_texts(client: APIClient, thread: Thread) -> list[str]:
    return [
        m["content"] for m in client.get(f"/api/v1/threads/{thread.pk}/messages/").json()["results"]
    ]


def answer(client: APIClient, request: HumanRequest, text: str) -> Any:
    return client.post(
        f"/api/v1/desk/human-requests/{request.pk}/answer/", {"answer": text}, format="json"
    )


@pytest.fixture
def draft_thread(thread_and_token: tuple[Thread, str]) -> Thread:
    thread, _ = thread_and_token
    services.thread_update(thread=thread, ai_mode="draft")
    return thread


# --- ask_human ------------------------------------------------------------------------


def test_it_resumes_the_same_turn_with_the_humans_answer(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    thread_and_token: tuple[Thread, str],
    agent: Any,
) -> None:
    thread, _ = thread_and_token
    llm.push(tool_call("ask_human", {"question": "Was order 1234 shipped?"}, id="call_q1"))
    llm.push(final("Good news: order 1234 shipped yesterday.", 0.9))
    post(customer_client, thread, "Where is order 1234?")
    drain()
    request = HumanRequest.objects.get()
    response = answer(staff_client, request, "Yes, it shipped yesterday with DHL")
    assert response.status_code == 200
    assert response.json()["status"] == "answered"
    drain()
    resumed = llm.requests[1].messages
    assert resumed[-2]["tool_calls"][0]["id"] == "call_q1"
    assert resumed[-2]["tool_calls"][0]["function"]["name"] == "ask_human"
    assert resumed[-1] == {
        "role": "tool",
        "tool_call_id": "call_q1",
        "content": "Yes, it shipped yesterday with DHL",
    }
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.status, turn.outcome, turn.attempts) == ("done", "reply", 2)
    tool_message = Message.objects.get(thread=thread, role="tool")
    assert (tool_message.provider, tool_message.author_user, tool_message.tool_call_id) == (
        "human",
        agent,
        "call_q1",
    )
    assert customer_texts(customer_client, thread) == [
        "Where is order 1234?",
        "Good news: order 1234 shipped yesterday.",
    ]


def test_it_waits_for_every_question_of_a_step(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    thread, _ = thread_and_token
    llm.push(
        tool_calls(
            [
                tool_call("ask_human", {"question": "A?"}, id="qa"),
                tool_call("ask_human", {"question": "B?"}, id="qb"),
            ]
        )
    )
    llm.push(final("Both checked.", 0.9))
    post(customer_client, thread, "two things")
    drain()
    first, second = HumanRequest.objects.order_by("tool_call_id")
    answer(staff_client, first, "a")
    assert drain() == []
    assert AgentTurn.objects.get(thread=thread).status == "waiting"
    answer(staff_client, second, "b")
    drain()
    tool_results = [m for m in llm.requests[1].messages if m["role"] == "tool"]
    assert sorted(m["tool_call_id"] for m in tool_results) == ["qa", "qb"]
    assert customer_texts(customer_client, thread)[-1] == "Both checked."


def test_it_accepts_only_the_first_answer(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    thread, _ = thread_and_token
    llm.push(tool_call("ask_human", {"question": "Refund ok?"}, id="q"))
    post(customer_client, thread, "refund?")
    drain()
    request = HumanRequest.objects.get()
    assert answer(staff_client, request, "yes").status_code == 200
    late = answer(staff_client, request, "no")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "already_answered"
    request.refresh_from_db()
    assert request.answer == "yes"
    assert Message.objects.filter(thread=thread, role="tool").count() == 1


def test_it_escalates_when_a_question_expires(
    llm: ScriptedLLMServer, customer_client: APIClient, thread_and_token: tuple[Thread, str]
) -> None:
    thread, _ = thread_and_token
    llm.push(tool_call("ask_human", {"question": "Refund ok?"}, id="q"))
    post(customer_client, thread, "refund?")
    drain()
    HumanRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    runner.turn_sweep()
    request = HumanRequest.objects.get()
    assert request.status == "expired"
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.status, turn.outcome) == ("done", "escalation")
    escalation = Escalation.objects.get(thread=thread)
    assert "Refund ok?" in escalation.reason
    told = Message.objects.get(thread=thread, role="tool")
    assert (told.tool_call_id, told.visibility) == ("q", "internal")
    assert "No one from the team answered" in told.content
    assert customer_texts(customer_client, thread)[-1].startswith("Thanks for your patience")


# --- approval drafts ------------------------------------------------------------------


def test_it_keeps_a_draft_invisible_until_approved(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
) -> None:
    llm.push(final("Your refund is on its way.", 0.9))
    post(customer_client, draft_thread, "refund status?")
    drain()
    draft = ApprovalDraft.objects.get()
    assert (draft.status, draft.kind, draft.message.visibility) == ("pending", "approval", "draft")
    assert customer_texts(customer_client, draft_thread) == ["refund status?"]
    response = staff_client.post(f"/api/v1/desk/approvals/{draft.pk}/approve/", {}, format="json")
    assert response.status_code == 200
    assert customer_texts(customer_client, draft_thread) == [
        "refund status?",
        "Your refund is on its way.",
    ]
    assert AgentTurn.objects.get(thread=draft_thread).outcome == "draft"


def test_it_sends_the_edited_text_and_keeps_the_original(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
    agent: Any,
) -> None:
    llm.push(final("Refunds take 10 days.", 0.9))
    post(customer_client, draft_thread, "how long for a refund?")
    drain()
    draft = ApprovalDraft.objects.get()
    response = staff_client.post(
        f"/api/v1/desk/approvals/{draft.pk}/approve/",
        {"content": "Refunds take 5-10 business days."},
        format="json",
    )
    assert response.status_code == 200
    draft.refresh_from_db()
    assert (draft.content, draft.final_content, draft.edited, draft.decided_by) == (
        "Refunds take 10 days.", "Refunds take 5-10 business days.", True, agent
    )  # fmt: skip
    assert "-Refunds take 10 days." in draft.diff
    assert "+Refunds take 5-10 business days." in draft.diff
    assert customer_texts(customer_client, draft_thread)[-1] == "Refunds take 5-10 business days."
    assert "Refunds take 10 days." not in customer_texts(customer_client, draft_thread)


def test_it_regenerates_a_rejected_draft_with_the_review(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
) -> None:
    llm.push(final("We never refund sale items.", 0.9))
    llm.push(final("Sale items can be returned for store credit.", 0.9))
    post(customer_client, draft_thread, "can I return a sale item?")
    drain()
    draft = ApprovalDraft.objects.get()
    response = staff_client.post(
        f"/api/v1/desk/approvals/{draft.pk}/reject/",
        {"review": "Wrong: sale items get store credit", "next": "regenerate"},
        format="json",
    )
    assert response.status_code == 200
    draft.refresh_from_db()
    assert (draft.status, draft.message.visibility) == ("rejected", "rejected")
    drain()
    assert "Wrong: sale items get store credit" in str(llm.requests[1].messages)
    new_draft = ApprovalDraft.objects.get(status="pending")
    assert new_draft.content == "Sale items can be returned for store credit."
    assert customer_texts(customer_client, draft_thread) == ["can I return a sale item?"]


def test_it_hands_a_rejected_draft_to_a_person(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
) -> None:
    llm.push(final("Sure, 50% off.", 0.9))
    post(customer_client, draft_thread, "discount?")
    drain()
    draft = ApprovalDraft.objects.get()
    staff_client.post(
        f"/api/v1/desk/approvals/{draft.pk}/reject/",
        {"review": "no discounts", "next": "human"},
        format="json",
    )
    escalation = Escalation.objects.get(thread=draft_thread)
    assert (escalation.source, escalation.ai_suggestion) == ("staff", "Sure, 50% off.")
    assert llm.received == 1


def test_it_requires_a_review_to_reject(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
) -> None:
    llm.push(final("Hi.", 0.9))
    post(customer_client, draft_thread, "hello")
    drain()
    draft = ApprovalDraft.objects.get()
    response = staff_client.post(
        f"/api/v1/desk/approvals/{draft.pk}/reject/", {"next": "human"}, format="json"
    )
    assert response.status_code == 400
    draft.refresh_from_db()
    assert draft.status == "pending"


def test_it_decides_a_draft_only_once(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
) -> None:
    llm.push(final("Hi.", 0.9))
    post(customer_client, draft_thread, "hello")
    drain()
    draft = ApprovalDraft.objects.get()
    assert (
        staff_client.post(
            f"/api/v1/desk/approvals/{draft.pk}/approve/", {}, format="json"
        ).status_code
        == 200
    )
    again = staff_client.post(
        f"/api/v1/desk/approvals/{draft.pk}/reject/",
        {"review": "x", "next": "human"},
        format="json",
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_decided"
    assert customer_texts(customer_client, draft_thread).count("Hi.") == 1


def test_it_supersedes_a_pending_draft_on_a_new_message(
    llm: ScriptedLLMServer, customer_client: APIClient, draft_thread: Thread
) -> None:
    llm.push(final("First draft.", 0.9))
    llm.push(final("Second draft, seeing both messages.", 0.9))
    post(customer_client, draft_thread, "hello")
    drain()
    post(customer_client, draft_thread, "also, where is my parcel?")
    drain()
    statuses = dict(ApprovalDraft.objects.values_list("content", "status"))
    assert statuses == {
        "First draft.": "superseded",
        "Second draft, seeing both messages.": "pending",
    }
    assert llm.last_request().messages[-1]["content"] == "also, where is my parcel?"


def test_it_expires_a_forgotten_draft_into_an_escalation(
    llm: ScriptedLLMServer, customer_client: APIClient, draft_thread: Thread
) -> None:
    llm.push(final("Hi.", 0.9))
    post(customer_client, draft_thread, "hello")
    drain()
    ApprovalDraft.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    runner.turn_sweep()
    assert ApprovalDraft.objects.get().status == "expired"
    escalation = Escalation.objects.get(thread=draft_thread)
    assert escalation.ai_suggestion == "Hi."
    assert "Hi." not in customer_texts(customer_client, draft_thread)


def test_it_lists_approvals_in_a_constant_number_of_queries(
    llm: ScriptedLLMServer, staff_client: APIClient, db: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import make_thread

    def add(count: int) -> None:
        for _ in range(count):
            thread, _ = make_thread(ai_mode="draft")
            llm.push(final("Draft.", 0.9))
            services.customer_message_create(thread=thread, content="hi")
        drain()

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert (
                len(staff_client.get("/api/v1/desk/approvals/").json()["results"])
                == ApprovalDraft.objects.count()
            )
        return len(ctx.captured_queries)

    add(2)
    few = queries()
    add(5)
    assert queries() == few


# --- copilot --------------------------------------------------------------------------


def test_it_suggests_a_reply_to_the_human_owner(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    thread_and_token: tuple[Thread, str],
    agent: Any,
) -> None:
    thread, _ = thread_and_token
    services.human_reply_create(thread=thread, user=agent, content="Alex here")
    llm.push(final("Your order ships Monday.", 0.9))
    post(customer_client, thread, "when does it ship?")
    drain()
    suggestion = ApprovalDraft.objects.get()
    assert (suggestion.kind, suggestion.status) == ("suggestion", "pending")
    assert "Your order ships Monday." not in customer_texts(customer_client, thread)
    assert [t["function"]["name"] for t in llm.last_request().tools] == ["search_knowledge"]
    response = staff_client.post(
        f"/api/v1/desk/approvals/{suggestion.pk}/approve/",
        {"content": "Your order ships on Monday!"},
        format="json",
    )
    assert response.status_code == 200
    sent = Message.objects.get(pk=response.json()["sent_message"])
    assert (sent.author_kind, sent.author_user, sent.provider) == ("human", agent, "human")
    assert customer_texts(customer_client, thread)[-1] == "Your order ships on Monday!"


def test_it_discards_a_suggestion_without_a_review(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    thread_and_token: tuple[Thread, str],
    agent: Any,
) -> None:
    thread, _ = thread_and_token
    services.human_reply_create(thread=thread, user=agent, content="Alex here")
    llm.push(final("Meh.", 0.9))
    post(customer_client, thread, "ok")
    drain()
    suggestion = ApprovalDraft.objects.get()
    assert (
        staff_client.post(
            f"/api/v1/desk/approvals/{suggestion.pk}/reject/", {}, format="json"
        ).status_code
        == 200
    )
    suggestion.refresh_from_db()
    assert suggestion.status == "rejected"
    assert not Escalation.objects.exists()
    assert llm.received == 1


def test_it_stays_quiet_when_the_copilot_fails(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    agent: Any,
) -> None:
    thread, _ = thread_and_token
    services.human_reply_create(thread=thread, user=agent, content="Alex here")
    post(customer_client, thread, "ok")  # the scripted server answers 500
    drain()
    turn = AgentTurn.objects.get(thread=thread)
    assert (turn.outcome, turn.status) == ("human", "done")
    assert not Escalation.objects.exists()
    assert not ApprovalDraft.objects.exists()


def test_it_counts_and_filters_pending_approvals_on_staff_threads(
    llm: ScriptedLLMServer,
    customer_client: APIClient,
    staff_client: APIClient,
    draft_thread: Thread,
) -> None:
    from tests.factories import make_thread

    other, _ = make_thread()
    llm.push(final("Draft.", 0.9))
    post(customer_client, draft_thread, "hello")
    drain()
    assert (
        staff_client.get(f"/api/v1/desk/threads/{draft_thread.pk}/").json()["pending_approvals"]
        == 1
    )
    listed = staff_client.get("/api/v1/desk/threads/", {"has_pending_approval": "true"}).json()[
        "results"
    ]
    assert [t["id"] for t in listed] == [str(draft_thread.pk)]
    others = staff_client.get("/api/v1/desk/threads/", {"has_pending_approval": "false"}).json()[
        "results"
    ]
    assert [t["id"] for t in others] == [str(other.pk)]


def test_it_drafts_with_the_offline_responder_too(
    settings: Any, customer_client: APIClient, staff_client: APIClient, draft_thread: Thread
) -> None:
    from supportdesk.agent.kb_data import knowledge_seed

    settings.SUPPORTDESK_LLM = "offline"
    knowledge_seed()
    post(
        customer_client,
        draft_thread,
        "What is your return policy? How many days do I have to send an item back?",
    )
    drain()
    turn = AgentTurn.objects.get(thread=draft_thread)
    assert (turn.outcome, turn.error) == ("draft", "")
    draft = ApprovalDraft.objects.get(thread=draft_thread)
    assert (draft.status, draft.message.provider) == ("pending", "offline")
    assert "30 days" in draft.content
    assert len(customer_texts(customer_client, draft_thread)) == 1
    staff_client.post(f"/api/v1/desk/approvals/{draft.pk}/approve/", {}, format="json")
    assert customer_texts(customer_client, draft_thread)[-1] == draft.content
