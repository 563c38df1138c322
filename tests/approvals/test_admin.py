from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals import services
from approvals.models import ApprovalDraft, DraftKind, DraftStatus, RejectNext
from escalations.models import Escalation, EscalationSource, EscalationStatus
from tests.factories import make_thread
from threads import services as thread_services
from threads.models import AuthorKind, Message, Role, ThreadStatus, Visibility

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:approvals_approvaldraft_changelist"


def _draft(n: int, content: str | None = None) -> ApprovalDraft:
    """A pending approval draft, as the AI in draft mode leaves it."""
    thread, _ = make_thread(subject=f"Tent question {n}", ai_mode="draft")
    message = thread_services.message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.AI,
        content=content or f"Tents can be returned within 30 days ({n}).",
        provider="offline",
        model="kb-bm25",
        visibility=Visibility.DRAFT,
    )
    return services.approval_draft_create(thread=thread, message=message, confidence=0.55)


def _make_rows(agent: Any, count: int) -> None:
    """``count`` drafts, every other one approved by ``agent``."""
    start = ApprovalDraft.objects.count()
    for n in range(start, start + count):
        draft = _draft(n)
        if n % 2:
            services.approval_approve(draft=draft, user=agent)


def _queries_for(client: Any, url: str) -> int:
    """The number of queries one GET of ``url`` runs (after a warm-up request)."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries)


def _run_action(client: Any, action: str, *drafts: ApprovalDraft) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(draft.pk) for draft in drafts]},
        follow=True,
    )


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_it_renders_the_changelist_in_constant_queries(admin_client: Any, agent: Any) -> None:
    _make_rows(agent, 3)
    with_three = _queries_for(admin_client, reverse(CHANGELIST))
    _make_rows(agent, 7)
    with_ten = _queries_for(admin_client, reverse(CHANGELIST))
    assert with_ten == with_three


def test_it_lists_every_draft(admin_client: Any, agent: Any) -> None:
    _make_rows(agent, 4)
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 4


def test_it_filters_drafts_by_status(admin_client: Any, agent: Any) -> None:
    _make_rows(agent, 4)
    response = admin_client.get(reverse(CHANGELIST), {"status__exact": "pending"})
    assert response.context["cl"].result_count == 2


def test_it_escapes_draft_content_in_the_changelist(admin_client: Any) -> None:
    _draft(1, content="<script>alert('x')</script>")
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "<script>alert(" not in body
    assert "&lt;script&gt;alert(" in body


def test_it_approves_a_draft_and_sends_it(admin_client: Any, admin_user: Any) -> None:
    draft = _draft(1)

    response = _run_action(admin_client, "approve", draft)

    draft.refresh_from_db()
    assert draft.status == DraftStatus.APPROVED
    assert draft.decided_by == admin_user
    sent = Message.objects.get(pk=draft.sent_message_id)
    assert (sent.visibility, sent.role, sent.author_kind) == (
        Visibility.PUBLIC,
        Role.ASSISTANT,
        AuthorKind.AI,
    )
    assert sent.content == draft.content
    assert "Approved and sent 1 draft(s)." in _messages(response)


def test_it_reports_a_draft_that_is_already_decided(
    admin_client: Any, admin_user: Any, agent: Any
) -> None:
    decided, pending = _draft(1), _draft(2)
    services.approval_approve(draft=decided, user=agent)

    response = _run_action(admin_client, "approve", decided, pending)

    decided.refresh_from_db()
    pending.refresh_from_db()
    assert decided.decided_by == agent
    assert pending.decided_by == admin_user
    # The first decision's message only: a second approval never sends twice.
    assert (
        Message.objects.filter(
            thread=decided.thread, visibility=Visibility.PUBLIC, role=Role.ASSISTANT
        ).count()
        == 1
    )
    shown = _messages(response)
    assert "Draft on “Tent question 1”: This draft has already been decided." in shown
    assert "Approved and sent 1 draft(s)." in shown


def test_it_leaves_a_draft_pending_when_its_thread_closed(admin_client: Any) -> None:
    draft = _draft(1)
    thread_services.thread_set_status(thread=draft.thread, status=ThreadStatus.CLOSED)

    response = _run_action(admin_client, "approve", draft)

    draft.refresh_from_db()
    assert draft.status == DraftStatus.PENDING
    assert draft.sent_message_id is None
    assert "Draft on “Tent question 1”: This thread is closed." in _messages(response)


def test_it_rejects_a_draft_and_hands_the_thread_to_a_person(
    admin_client: Any, admin_user: Any
) -> None:
    draft = _draft(1)

    response = _run_action(admin_client, "reject_to_human", draft)

    draft.refresh_from_db()
    assert draft.status == DraftStatus.REJECTED
    assert draft.decided_by == admin_user
    assert draft.next_action == RejectNext.HUMAN
    assert draft.review == "Rejected in the admin by admin"
    assert Message.objects.get(pk=draft.message_id).visibility == Visibility.REJECTED
    escalation = Escalation.objects.get(thread=draft.thread)
    assert (escalation.status, escalation.source) == (EscalationStatus.OPEN, EscalationSource.STAFF)
    assert escalation.ai_suggestion == draft.content
    assert "Rejected 1 draft(s)." in _messages(response)


def test_it_discards_a_rejected_copilot_suggestion(admin_client: Any) -> None:
    thread, _ = make_thread(subject="Copilot")
    message = thread_services.message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.AI,
        content="Try the size guide.",
        visibility=Visibility.DRAFT,
    )
    suggestion = services.approval_draft_create(
        thread=thread, message=message, kind=DraftKind.SUGGESTION
    )

    _run_action(admin_client, "reject_to_human", suggestion)

    suggestion.refresh_from_db()
    assert suggestion.status == DraftStatus.REJECTED
    assert not Escalation.objects.filter(thread=thread).exists()


def test_it_does_not_add_drafts(admin_client: Any) -> None:
    response = admin_client.get(reverse("admin:approvals_approvaldraft_add"))
    assert response.status_code == 403


def test_it_does_not_change_drafts(admin_client: Any) -> None:
    draft = _draft(1)
    url = reverse("admin:approvals_approvaldraft_change", args=[draft.pk])
    assert admin_client.get(url).status_code == 200  # view-only page

    response = admin_client.post(url, {"status": "approved", "content": "Edited"})

    assert response.status_code == 403
    draft.refresh_from_db()
    assert (draft.status, draft.content) == (
        DraftStatus.PENDING,
        "Tents can be returned within 30 days (1).",
    )


def test_it_does_not_delete_drafts(admin_client: Any) -> None:
    draft = _draft(1)
    response = admin_client.post(
        reverse("admin:approvals_approvaldraft_delete", args=[draft.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert ApprovalDraft.objects.filter(pk=draft.pk).exists()
