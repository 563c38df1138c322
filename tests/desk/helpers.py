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


def xss(field: str) -> str:
    """Markup that would run if ``field`` were ever rendered as HTML: the alert names the
    field, so a failure tells which one leaked."""
    return f"{field}\"'><script>window.__xss=1</script><img src=x onerror=alert('{field}')>"


def xss_shown(field: str) -> str:
    """What a page shows of ``xss(field)`` when it renders it as text."""
    return f"{field}\"'><script>"


# A valid address (a quoted local part may hold markup) that is markup too.
XSS_EMAIL = "\"email<img/src=x/onerror=alert('email')>\"@example.com"


def xss_world() -> dict[str, Any]:
    """Rows whose every user-controlled field holds ``xss(<field>)``: an agent's names, a
    queue, a customer, a thread with its messages, note, escalation, questions and
    assignment reason, a draft to approve, a rejected draft's review and a knowledge
    article. Through the services, as the API and the AI would write them."""
    import uuid

    from django.contrib.auth import get_user_model

    from escalations.models import Queue
    from supportdesk.agent.models import KnowledgeArticle
    from tests.factories import UserFactory

    agent = UserFactory(
        username=xss("username")[:150],
        first_name=xss("first_name"),
        last_name=xss("last_name"),
        email="mallory@example.com",
    )
    assert isinstance(agent, get_user_model())
    queue = Queue.objects.create(name=xss("queue"), is_default=True, auto_assign=False)
    thread, _ = services.thread_create(
        customer_name=xss("customer_name"),
        customer_email=XSS_EMAIL,
        customer_external_id=xss("external_id"),
        subject=xss("subject"),
    )
    # Escalated and claimed before the customer's message, so that an AI worker running
    # beside the test leaves the thread to the agent (a turn that ran first could open an
    # escalation of its own, which this one would only merge into).
    escalation, created = escalation_services.escalation_open(
        thread=thread,
        source=EscalationSource.TOOL,
        reason=xss("reason"),
        summary=xss("summary"),
        ai_suggestion=xss("ai_suggestion"),
    )
    assert created
    escalation_services.escalation_claim(escalation=escalation, user=agent)
    services.customer_message_create(thread=thread, content=xss("message"))
    services.internal_note_create(thread=thread, user=agent, content=xss("note"))
    services.human_reply_create(thread=thread, user=agent, content=xss("reply"))
    services.thread_assign(
        thread=thread,
        responder="human",
        assignee=agent,
        assigned_by=agent,
        reason=xss("assignment_reason"),
    )
    requests = []
    for call, question in (("call_a", xss("answered_question")), ("call_b", xss("question"))):
        services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content="",
            provider="openai",
            model="gpt-test",
            visibility=Visibility.INTERNAL,
            tool_calls=[{"id": call, "name": "ask_human", "arguments": {"question": question}}],
        )
        requests.append(
            escalation_services.human_request_create(
                thread=thread, turn_id=uuid.uuid4(), question=question, tool_call_id=call
            )
        )
    escalation_services.human_request_answer(request=requests[0], user=agent, answer=xss("answer"))
    drafted, draft = draft_thread(content=xss("draft"), subject="A draft to approve")
    rejected_thread, rejected = draft_thread(content="Wrong answer.", subject="A rejected draft")
    approval_services.approval_reject(
        draft=rejected, user=agent, review=xss("review"), next_action="human"
    )
    article = KnowledgeArticle.objects.create(
        slug="wool-socks",
        title=xss("kb_title"),
        body=f"Wash wool socks cold, inside out, and dry them flat. {xss('kb_body')}",
        tags="wool, socks, washing",
    )
    return {
        "agent": agent,
        "queue": queue,
        "thread": thread,
        "escalation": escalation,
        "drafted": drafted,
        "draft": draft,
        "rejected_thread": rejected_thread,
        "rejected": rejected,
        "request": requests[1],
        "article": article,
    }


def dashboard_history(agent: Any, days: int = 10) -> None:
    """``days`` days of work for the dashboard to chart: AI-answered threads with their
    model calls, handoffs an agent claimed, answered and resolved, drafts approved and
    rejected, SLA breaches. Made through the services today, then moved back in time."""
    from datetime import timedelta
    from decimal import Decimal

    from django.db.models import F
    from django.utils import timezone

    from escalations.models import SLABreach, SLAKind
    from supportdesk.agent.models import AgentTurn, ModelCall
    from threads.models import Message, Thread

    now = timezone.now()
    for back in range(days - 1, -1, -1):
        threads: list[Thread] = []
        for n in range(2 + back % 3):
            thread, _ = make_thread(
                subject=f"Washing down {back}-{n}", message="How do I wash down?"
            )
            services.message_create(
                thread=thread,
                role=Role.ASSISTANT,
                author_kind=AuthorKind.AI,
                content="Gently, at 30 °C, with a down wash.",
                provider="openai",
                model="gpt-4o-mini",
            )
            turn = AgentTurn.objects.filter(thread=thread).first()
            assert turn is not None
            ModelCall.objects.create(
                turn=turn,
                thread=thread,
                provider="openai",
                model="gpt-4o-mini",
                prompt_tokens=1200,
                completion_tokens=150 + 40 * n,
                cost=Decimal("0.004") * (1 + n + back % 4),
            )
            threads.append(thread)
        if back % 2 == 0:
            thread, escalation = escalated_thread(subject=f"Broken pole {back}")
            escalation_services.escalation_claim(escalation=escalation, user=agent)
            services.human_reply_create(thread=thread, user=agent, content="A new pole is coming.")
            Escalation.objects.filter(pk=escalation.pk).update(
                claimed_at=now - timedelta(minutes=20 + 5 * back)
            )
            escalation.refresh_from_db()
            escalation_services.escalation_resolve(escalation=escalation, user=agent)
            if back % 4 == 0:
                SLABreach.objects.create(
                    escalation=escalation,
                    target=SLAKind.FIRST_RESPONSE,
                    priority=escalation.priority,
                    due_at=now - timedelta(minutes=10),
                    breached_at=now,
                )
            threads.append(thread)
        if back % 3 != 1:
            thread, draft = draft_thread(subject=f"Shipping {back}")
            ApprovalDraft.objects.filter(pk=draft.pk).update(
                created_at=now - timedelta(minutes=2 + back % 5)
            )
            approval_services.approval_approve(draft=draft, user=agent)
            threads.append(thread)
        if back % 3 == 0:
            thread, draft = draft_thread(subject=f"Refund {back}")
            approval_services.approval_reject(
                draft=draft, user=agent, review="Say 30 days.", next_action="human"
            )
            threads.append(thread)
        shift = timedelta(days=back)
        ids = [thread.pk for thread in threads]
        Thread.objects.filter(pk__in=ids).update(
            created_at=F("created_at") - shift, updated_at=F("updated_at") - shift
        )
        Message.objects.filter(thread_id__in=ids).update(created_at=F("created_at") - shift)
        ModelCall.objects.filter(thread_id__in=ids).update(created_at=F("created_at") - shift)
        Escalation.objects.filter(thread_id__in=ids).update(
            created_at=F("created_at") - shift,
            claimed_at=F("claimed_at") - shift,
            resolved_at=F("resolved_at") - shift,
        )
        ApprovalDraft.objects.filter(thread_id__in=ids).update(
            created_at=F("created_at") - shift, decided_at=F("decided_at") - shift
        )
        SLABreach.objects.filter(escalation__thread_id__in=ids).update(
            due_at=F("due_at") - shift, breached_at=F("breached_at") - shift
        )
