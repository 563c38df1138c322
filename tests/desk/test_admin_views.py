"""The supervisors' admin pages: a thread's conversation with its reply / approve /
reject / answer forms, and the dashboard."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalDraft, DraftStatus
from escalations import services as escalation_services
from escalations.models import Escalation, HumanRequestStatus
from supportdesk.agent.models import AgentTurn, ModelCall
from tests.desk.helpers import XSS, draft_thread, escalated_thread, question_thread
from tests.factories import UserFactory, make_thread
from threads import services
from threads.models import Message, Responder, Thread, Visibility

pytestmark = pytest.mark.django_db


def conversation_url(thread: Thread) -> str:
    return reverse("admin:threads_thread_conversation", args=[thread.pk])


DASHBOARD = "/admin/threads/thread/dashboard/"


# --- Conversation page ------------------------------------------------------------------


def test_it_shows_the_transcript_with_every_author(admin_client: Client, agent: Any) -> None:
    thread, _ = escalated_thread()
    services.internal_note_create(thread=thread, user=agent, content="Warehouse has poles.")
    services.human_reply_create(thread=thread, user=agent, content="A new pole is on its way.")
    response = admin_client.get(conversation_url(thread))
    assert response.status_code == 200
    html = response.content.decode()
    assert "My tent pole snapped on day one." in html
    assert "Warehouse has poles." in html
    assert "Alex Agent" in html
    assert "Customer&#x27;s tent pole snapped; wants a replacement." in html  # the summary
    assert "Routing:" in html


def test_it_links_the_change_page_and_the_changelist(admin_client: Client) -> None:
    thread, _ = make_thread()
    change = admin_client.get(reverse("admin:threads_thread_change", args=[thread.pk]))
    assert conversation_url(thread) in change.content.decode()
    changelist = admin_client.get(reverse("admin:threads_thread_changelist"))
    assert DASHBOARD in changelist.content.decode()


def test_it_escapes_markup_in_the_conversation(admin_client: Client, agent: Any) -> None:
    thread, _ = make_thread(subject=XSS, message=XSS, customer_name=XSS)
    services.internal_note_create(thread=thread, user=agent, content=XSS)
    html = admin_client.get(conversation_url(thread)).content.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert" in html


def test_it_replies_as_the_supervisor_and_takes_over(admin_client: Client, admin_user: Any) -> None:
    thread, _ = make_thread(message="Hello?")
    response = admin_client.post(
        conversation_url(thread), {"action": "reply", "content": "Hi, I am here."}
    )
    assert response.status_code == 302
    assert response["Location"] == conversation_url(thread)
    reply = Message.objects.get(thread=thread, author_kind="human")
    assert (reply.content, reply.visibility, reply.author_user) == (
        "Hi, I am here.",
        Visibility.PUBLIC,
        admin_user,
    )
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee) == (Responder.HUMAN, admin_user)


def test_it_adds_an_internal_note(admin_client: Client) -> None:
    thread, _ = make_thread()
    admin_client.post(
        conversation_url(thread), {"action": "reply", "content": "Note", "internal": "on"}
    )
    note = Message.objects.get(thread=thread, author_kind="human")
    assert note.visibility == Visibility.INTERNAL
    thread.refresh_from_db()
    assert thread.responder == Responder.AI


def test_it_shows_the_api_error_for_a_blank_reply(admin_client: Client) -> None:
    thread, _ = make_thread()
    response = admin_client.post(
        conversation_url(thread), {"action": "reply", "content": "   "}, follow=True
    )
    assert "content" in response.content.decode()
    assert not Message.objects.filter(thread=thread, author_kind="human").exists()


def test_it_approves_a_draft_with_an_edit(admin_client: Client, admin_user: Any) -> None:
    thread, draft = draft_thread(content="Original\nanswer")
    admin_client.post(
        conversation_url(thread),
        {"action": "approve", "draft": str(draft.pk), "content": "Edited\r\nanswer"},
    )
    draft.refresh_from_db()
    assert (draft.status, draft.final_content, draft.edited, draft.decided_by) == (
        DraftStatus.APPROVED,
        "Edited\nanswer",
        True,
        admin_user,
    )
    sent = Message.objects.get(pk=draft.sent_message_id)
    assert (sent.content, sent.visibility) == ("Edited\nanswer", Visibility.PUBLIC)


def test_it_approves_an_unchanged_draft_as_it_was(admin_client: Client) -> None:
    thread, draft = draft_thread(content="Line one\nline two")
    admin_client.post(
        conversation_url(thread),
        {"action": "approve", "draft": str(draft.pk), "content": "Line one\r\nline two"},
    )
    draft.refresh_from_db()
    assert (draft.status, draft.edited) == (DraftStatus.APPROVED, False)


def test_it_rejects_a_draft_to_a_person(admin_client: Client) -> None:
    thread, draft = draft_thread()
    admin_client.post(
        conversation_url(thread),
        {"action": "reject", "draft": str(draft.pk), "review": "Wrong policy", "next": "human"},
    )
    draft.refresh_from_db()
    assert (draft.status, draft.review, draft.next_action) == (
        DraftStatus.REJECTED,
        "Wrong policy",
        "human",
    )
    assert Escalation.objects.filter(thread=thread, status="open").exists()


def test_it_needs_a_review_to_reject(admin_client: Client) -> None:
    thread, draft = draft_thread()
    response = admin_client.post(
        conversation_url(thread),
        {"action": "reject", "draft": str(draft.pk), "review": "", "next": "regenerate"},
        follow=True,
    )
    draft.refresh_from_db()
    assert draft.status == DraftStatus.PENDING
    assert "review" in response.content.decode()


def test_it_reports_a_draft_decided_elsewhere(admin_client: Client, agent: Any) -> None:
    thread, draft = draft_thread()
    from approvals import services as approval_services

    approval_services.approval_approve(draft=draft, user=agent)
    response = admin_client.post(
        conversation_url(thread), {"action": "approve", "draft": str(draft.pk)}, follow=True
    )
    assert "already been decided" in response.content.decode()


def test_it_answers_the_ais_question(admin_client: Client, admin_user: Any) -> None:
    thread, request = question_thread()
    admin_client.post(
        conversation_url(thread),
        {"action": "answer", "question": str(request.pk), "answer": "Yes, paid."},
    )
    request.refresh_from_db()
    assert (request.status, request.answer, request.answered_by) == (
        HumanRequestStatus.ANSWERED,
        "Yes, paid.",
        admin_user,
    )
    assert Message.objects.filter(thread=thread, role="tool", tool_call_id="call_77").exists()


def test_it_needs_change_permissions_to_act(client: Client) -> None:
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_thread"))
    client.force_login(viewer)
    thread, draft = draft_thread()
    assert client.get(conversation_url(thread)).status_code == 200
    assert "Approve and send" not in client.get(conversation_url(thread)).content.decode()
    response = client.post(conversation_url(thread), {"action": "approve", "draft": str(draft.pk)})
    assert response.status_code == 403
    response = client.post(conversation_url(thread), {"action": "reply", "content": "hi"})
    assert response.status_code == 403
    assert ApprovalDraft.objects.get(pk=draft.pk).status == DraftStatus.PENDING


def test_it_pages_a_long_transcript_back(admin_client: Client, agent: Any) -> None:
    from tests.desk.test_views import _bulk_messages

    thread, _ = make_thread(subject="Long")
    _bulk_messages(thread, 450)
    html = admin_client.get(conversation_url(thread)).content.decode()
    assert 'data-seq="450"' in html and 'data-seq="251"' in html
    assert 'data-seq="250"' not in html
    older = admin_client.get(conversation_url(thread), {"before": 251}).content.decode()
    assert 'data-seq="250"' in older and 'data-seq="51"' in older


def test_it_renders_the_conversation_in_a_constant_number_of_queries(
    admin_client: Client, agent: Any, other_agent: Any
) -> None:
    thread, _ = escalated_thread()

    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(conversation_url(thread)).status_code == 200
        return len(context.captured_queries)

    count()
    few = count()
    for index in range(5):
        services.internal_note_create(
            thread=thread, user=[agent, other_agent][index % 2], content="n"
        )
        services.customer_message_create(thread=thread, content="more")
    assert count() == few


# --- Dashboard ------------------------------------------------------------------------------


def _activity(agent: Any) -> None:
    """A day of work: AI-only and escalated threads, drafts decided, model calls."""
    now = timezone.now()
    ai_thread, _ = make_thread(subject="AI only", message="How do I wash down?")
    services.message_create(
        thread=ai_thread, role="assistant", author_kind="ai", content="Gently.", provider="x"
    )
    thread, escalation = escalated_thread()
    escalation_services.escalation_claim(escalation=escalation, user=agent)
    services.human_reply_create(thread=thread, user=agent, content="A new pole is coming.")
    Escalation.objects.filter(pk=escalation.pk).update(claimed_at=now - timedelta(minutes=30))
    escalation.refresh_from_db()
    escalation_services.escalation_resolve(escalation=escalation, user=agent)
    from approvals import services as approval_services

    _, approved = draft_thread()
    ApprovalDraft.objects.filter(pk=approved.pk).update(created_at=now - timedelta(minutes=4))
    approval_services.approval_approve(draft=approved, user=agent)
    _, rejected = draft_thread()
    approval_services.approval_reject(draft=rejected, user=agent, review="no", next_action="human")
    turn = AgentTurn.objects.filter(thread=ai_thread).first()
    assert turn is not None
    ModelCall.objects.create(
        turn=turn,
        thread=ai_thread,
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens=1000,
        completion_tokens=200,
        cost=Decimal("0.125"),
    )


def test_it_renders_the_dashboard_with_data(admin_client: Client, agent: Any) -> None:
    _activity(agent)
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    board = response.context["board"]
    assert sum(board.messages["human"]) == 1
    assert sum(board.escalations) == 2  # the handoff, and the draft rejected to a person
    assert sum(board.approved) == 1 and sum(board.rejected) == 1
    assert board.approval_rate == 0.5
    assert 200 <= board.median_approve_seconds <= 300
    assert sum(board.cost) == pytest.approx(0.125)
    assert sum(board.handle_minutes) == pytest.approx(30, abs=1)
    assert board.sla_breaches is not None
    html = response.content.decode()
    for chart in ("chart-messages", "chart-escalations", "chart-handled", "chart-approvals",
                  "chart-sla", "chart-cost", "chart-handle", "share-handled"):  # fmt: skip
        assert f'id="{chart}"' in html
    assert "<rect" in html
    assert "Approval rate" in html and "50%" in html
    assert "By source: customer asked 1, staff 1" in html
    assert "$0.12" in html or "$0.13" in html


def test_it_renders_an_empty_dashboard(admin_client: Client) -> None:
    response = admin_client.get(DASHBOARD, {"days": "7"})
    assert response.status_code == 200
    assert len(response.context["board"].days) == 7
    assert "—" in response.content.decode()


def test_it_falls_back_to_the_default_window(admin_client: Client) -> None:
    response = admin_client.get(DASHBOARD, {"days": "100000"})
    assert len(response.context["board"].days) == 14


def test_it_keeps_the_dashboard_from_staff_without_thread_access(client: Client) -> None:
    client.force_login(UserFactory(username="nobody"))
    assert client.get(DASHBOARD).status_code == 403


def test_it_builds_the_dashboard_in_a_constant_number_of_queries(
    admin_client: Client, agent: Any
) -> None:
    _activity(agent)

    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(DASHBOARD, {"days": "30"}).status_code == 200
        return len(context.captured_queries)

    few = count()
    _activity(agent)
    _activity(agent)
    assert count() == few


def test_it_escapes_source_names_and_labels_in_charts() -> None:
    from supportdesk.desk import charts

    svg = charts.bar_chart(
        chart_id="x",
        title=XSS,
        labels=["2025-01-01"],
        series=[charts.Series(XSS, [3], "#000")],
    )
    assert "<script>" not in svg and "<img" not in svg
    share = charts.share_bar(chart_id="y", title=XSS, parts=[(XSS, 1, "#000")])
    assert "<script>" not in share and "<img" not in share
