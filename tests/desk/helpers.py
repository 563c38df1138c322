"""Rows the desk tests share: threads in every state the desk shows."""

from __future__ import annotations

from typing import Any

from approvals import services as approval_services
from approvals.models import ApprovalDraft, DraftKind
from escalations import services as escalation_services
from escalations.models import Escalation, EscalationSource, HumanRequest
from tests.factories import make_thread
from threads import services
from threads.models import AuthorKind, Role, Thread, Visibility

XSS = '<script>alert("x")</script><img src=x onerror="alert(1)">'


def escalated_thread(subject: str = "Broken tent pole", **kwargs: Any) -> tuple[Thread, Escalation]:
    thread, _ = make_thread(subject=subject, message="My tent pole snapped on day one.", **kwargs)
    escalation, _ = escalation_services.escalation_open(
        thread=thread,
        source=EscalationSource.CUSTOMER_REQUEST,
        reason="the customer asked for a person",
        summary="Customer's tent pole snapped; wants a replacement.",
    )
    thread.refresh_from_db()
    return thread, escalation


def draft_thread(
    content: str = "We can replace the pole for free.",
    kind: str = DraftKind.APPROVAL,
    **kwargs: Any,
) -> tuple[Thread, ApprovalDraft]:
    thread, _ = make_thread(
        subject=kwargs.pop("subject", "Pole replacement"), message="Can you fix it?"
    )
    message = services.message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.AI,
        content=content,
        provider="offline",
        model="kb-bm25",
        visibility=Visibility.DRAFT,
    )
    draft = approval_services.approval_draft_create(
        thread=thread, message=message, kind=kind, confidence=0.8
    )
    return thread, draft


def question_thread(question: str = "Is order 77 paid?") -> tuple[Thread, HumanRequest]:
    import uuid

    thread, _ = make_thread(subject="Payment check", message="Did order 77 go through?")
    services.message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.AI,
        content="",
        provider="openai",
        model="gpt-test",
        visibility=Visibility.INTERNAL,
        tool_calls=[{"id": "call_77", "name": "ask_human", "arguments": {"question": question}}],
    )
    request = escalation_services.human_request_create(
        thread=thread, turn_id=uuid.uuid4(), question=question, tool_call_id="call_77"
    )
    return thread, request
