"""Handoff summaries: extracted offline in the escalation's transaction, refined by the
model (the real openai SDK against the scripted server) after the commit."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from escalations import services, summaries
from escalations.models import Escalation, OutboxMessage
from escalations.tasks import refine_summary
from supportdesk.agent.models import ModelCall
from tests.factories import make_thread
from tests.llm_server import ScriptedLLMServer, final, tool_call
from tests.turns import drain
from threads import services as thread_services
from threads.models import AuthorKind, Role, Thread, Visibility

pytestmark = pytest.mark.django_db

TASK_PATH = "escalations.tasks.refine_summary"


def ai_message(thread: Thread, content: str, **kwargs: Any) -> None:
    thread_services.message_create(
        thread=thread,
        role=kwargs.pop("role", Role.ASSISTANT),
        author_kind=AuthorKind.AI,
        content=content,
        provider="offline",
        **kwargs,
    )


def conversation() -> Thread:
    thread, _ = make_thread(subject="Refund for a broken tent")
    thread_services.customer_message_create(
        thread=thread, content="My tent pole snapped on the first night. I want a refund."
    )
    ai_message(
        thread,
        "",
        visibility=Visibility.INTERNAL,
        tool_calls=[{"id": "c1", "name": "search_knowledge", "arguments": {"query": "refund"}}],
    )
    ai_message(
        thread,
        "Refunds take 5 days.",
        role=Role.TOOL,
        visibility=Visibility.INTERNAL,
        tool_call_id="c1",
    )
    ai_message(thread, "Sorry about that! Could you send a photo of the pole?")
    thread_services.customer_message_create(thread=thread, content="Photo sent. Refund please.")
    return Thread.objects.select_related("customer").get(pk=thread.pk)


def run_refinements() -> list[str]:
    """Run the enqueued summary tasks as the worker would."""
    results = []
    for row in DBTaskResult.objects.filter(task_path=TASK_PATH):
        results.append(refine_summary.call(*row.args_kwargs["args"]))
    return results


def test_it_extracts_a_summary_offline(staff_client: APIClient) -> None:
    thread = conversation()
    escalation, _ = services.escalation_open(
        thread=thread,
        source="low_confidence",
        reason="the AI's confidence 0.40 is below 0.70",
        ai_suggestion="Offer a replacement pole or a full refund.",
        confidence=0.4,
    )
    escalation.refresh_from_db()
    assert escalation.summary == "\n".join(
        [
            "Subject: Refund for a broken tent",
            "Customer's problem: My tent pole snapped on the first night. I want a refund.",
            "Latest from the customer: Photo sent. Refund please.",
            'What the AI tried: 1 reply, the last: "Sorry about that! Could you send a photo '
            'of the pole?"; searched the knowledge base for "refund"',
            "Tools used: search_knowledge ×1",
            "AI suggestion (confidence 0.40): Offer a replacement pole or a full refund.",
            "Why escalated: the AI was not confident enough — the AI's confidence 0.40 is "
            "below 0.70",
        ]
    )
    assert not DBTaskResult.objects.filter(task_path=TASK_PATH).exists()
    listed = staff_client.get("/api/v1/desk/escalations/").json()["results"]
    assert listed[0]["summary"] == escalation.summary


def test_it_summarizes_a_thread_with_no_ai_work() -> None:
    thread, _ = make_thread()
    escalation, _ = services.escalation_open(thread=thread, source="staff", reason="VIP")
    escalation.refresh_from_db()
    assert escalation.summary == "\n".join(
        [
            "Customer's problem: (no customer message yet)",
            "What the AI tried: nothing yet",
            "Tools used: none",
            "AI suggestion: none",
            "Why escalated: a staff member escalated it — VIP",
        ]
    )


def test_it_does_not_repeat_a_reason_that_restates_the_source() -> None:
    thread, _ = make_thread()
    escalation, _ = services.escalation_open(
        thread=thread, source="customer_request", reason="The customer asked for a person."
    )
    escalation.refresh_from_db()
    assert escalation.summary is not None
    assert escalation.summary.splitlines()[-1] == "Why escalated: the customer asked for a person"


def test_it_keeps_a_summary_given_by_the_caller() -> None:
    thread = conversation()
    escalation, _ = services.escalation_open(
        thread=thread, source="tool", reason="x", summary="Written by hand."
    )
    escalation.refresh_from_db()
    assert escalation.summary == "Written by hand."


def test_it_refines_the_summary_with_the_model_after_the_commit(
    llm: ScriptedLLMServer, settings: Any
) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    thread, _ = make_thread(subject="Refund")
    llm.push(tool_call("escalate", {"reason": "refund above the AI's limit"}))
    thread_services.customer_message_create(thread=thread, content="Refund my broken tent now.")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert escalation.summary is not None
    assert escalation.summary.startswith(
        "Subject: Refund\nCustomer's problem: Refund my broken tent now."
    )
    held = OutboxMessage.objects.get(escalation=escalation, kind="email")
    assert held.next_attempt_at > escalation.created_at  # waiting for the model's summary

    llm.push(final("Customer wants a refund for a broken tent; the AI escalated at once.", 0.8))
    assert run_refinements() == ["refined"]

    escalation.refresh_from_db()
    assert escalation.summary == "\n".join(
        [
            "Summary: Customer wants a refund for a broken tent; the AI escalated at once.",
            "Tools used: escalate ×1",
            "AI suggestion: none",
            "Why escalated: the AI called escalate — refund above the AI's limit",
        ]
    )
    request = llm.last_request()
    assert request.messages[0]["content"] == summaries.SYSTEM_PROMPT
    assert "customer: Refund my broken tent now." in request.messages[1]["content"]
    call = ModelCall.objects.get(purpose="summary")
    assert (call.turn_id, call.thread_id, call.model) == (escalation.turn_id, thread.pk, "gpt-test")
    assert call.prompt_tokens > 0 and call.completion_tokens > 0
    held.refresh_from_db()
    assert held.next_attempt_at <= timezone.now()  # released
    assert "Summary: Customer wants a refund" in held.payload["body"]


def test_it_keeps_the_extracted_summary_when_the_model_fails(
    llm: ScriptedLLMServer, settings: Any
) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    thread = conversation()
    escalation, _ = services.escalation_open(thread=thread, source="tool", reason="stuck")
    escalation.refresh_from_db()
    extracted = escalation.summary
    assert run_refinements() == ["failed"]  # the scripted server answers 500 when unscripted
    escalation.refresh_from_db()
    assert escalation.summary == extracted
    assert not ModelCall.objects.filter(purpose="summary").exists()
    email = OutboxMessage.objects.get(escalation=escalation, kind="email")
    assert email.next_attempt_at <= timezone.now()  # released, with the extracted summary
    assert extracted is not None and extracted in email.payload["body"]


def test_it_skips_the_model_for_a_throttled_escalation(
    llm: ScriptedLLMServer, settings: Any, agent: Any
) -> None:
    settings.SUPPORTDESK_ESCALATION_LIMITS_BACKEND = "db"
    settings.SUPPORTDESK_ESCALATION_LIMITS = {
        "per_thread": "1/3600",
        "per_customer": "off",
        "per_queue": "off",
    }
    thread = conversation()
    first, _ = services.escalation_open(thread=thread, source="tool", reason="a")
    services.escalation_resolve(escalation=first, user=agent)
    second, _ = services.escalation_open(thread=thread, source="tool", reason="b")
    second.refresh_from_db()
    assert second.throttled and second.summary
    tasks = DBTaskResult.objects.filter(task_path=TASK_PATH)
    assert [row.args_kwargs["args"] for row in tasks] == [[str(first.pk)]]


@pytest.mark.parametrize(
    ("answer", "note"),
    [
        ("  The customer wants a refund.  ", "The customer wants a refund."),
        ('{"reply": "Wants a refund."}', "Wants a refund."),
        ('{"summary": "Wants a refund."}', "Wants a refund."),
        ('{"confidence": 0.3}', ""),
        ("", ""),
        (None, ""),
    ],
)
def test_it_reads_the_models_note(answer: str | None, note: str) -> None:
    assert summaries.narrative_from(answer) == note
