from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from escalations import services
from escalations.models import Escalation, EscalationStatus, HumanRequest
from tests.factories import UserFactory, make_thread
from threads.models import Responder, Thread, ThreadStatus

pytestmark = pytest.mark.django_db


def _escalate(n: int) -> Escalation:
    thread, _ = make_thread(subject=f"Broken tent {n}", message=f"My tent {n} arrived torn.")
    escalation, _ = services.escalation_open(
        thread=thread, source="tool", reason=f"needs a person {n}", confidence=0.4
    )
    return escalation


def _ask(n: int) -> HumanRequest:
    thread, _ = make_thread(subject=f"Order question {n}")
    request: HumanRequest = services.human_request_create(
        thread=thread,
        turn_id=uuid.uuid4(),
        question=f"Was order NW{n} shipped?",
        tool_call_id=f"call_{n}",
    )
    return request


def _make_rows(agent: Any, count: int) -> None:
    """``count`` escalations and questions, every other one claimed or answered."""
    start = Escalation.objects.count()
    for n in range(start, start + count):
        escalation = _escalate(n)
        request = _ask(n)
        if n % 2:
            services.escalation_claim(escalation=escalation, user=agent)
            services.human_request_answer(request=request, user=agent, answer="Yes.")


def _queries_for(client: Any, url: str) -> int:
    """The number of queries one GET of ``url`` runs (after a warm-up request)."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries)


def _changelist(model: str) -> str:
    return reverse(f"admin:escalations_{model}_changelist")


def _run_action(client: Any, action: str, *escalations: Escalation) -> Any:
    return client.post(
        _changelist("escalation"),
        {"action": action, "_selected_action": [str(e.pk) for e in escalations]},
        follow=True,
    )


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.parametrize("model", ["escalation", "humanrequest"])
def test_it_renders_each_changelist_in_constant_queries(
    admin_client: Any, agent: Any, model: str
) -> None:
    _make_rows(agent, 3)
    with_three = _queries_for(admin_client, _changelist(model))
    _make_rows(agent, 7)
    with_ten = _queries_for(admin_client, _changelist(model))
    assert with_ten == with_three


@pytest.mark.parametrize("model", [Escalation, HumanRequest])
def test_it_lists_every_row_in_each_changelist(
    admin_client: Any, agent: Any, model: type[Any]
) -> None:
    _make_rows(agent, 4)
    response = admin_client.get(_changelist(model._meta.model_name))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 4


def test_it_searches_escalations_by_thread_id(admin_client: Any) -> None:
    wanted = _escalate(1)
    _escalate(2)
    response = admin_client.get(_changelist("escalation"), {"q": str(wanted.thread_id)})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [wanted.pk]


def test_it_searches_escalations_by_reason(admin_client: Any) -> None:
    _escalate(1)
    wanted = _escalate(2)
    response = admin_client.get(_changelist("escalation"), {"q": "needs a person 2"})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [wanted.pk]


def test_it_shows_an_escalation_read_only(admin_client: Any) -> None:
    escalation = _escalate(1)
    url = reverse("admin:escalations_escalation_change", args=[escalation.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert "needs a person 1" in response.content.decode()


def test_it_claims_escalations_for_the_admin(admin_client: Any, admin_user: Any) -> None:
    first, second = _escalate(1), _escalate(2)

    response = _run_action(admin_client, "claim", first, second)

    assert response.status_code == 200
    for escalation in (first, second):
        escalation.refresh_from_db()
        assert escalation.status == EscalationStatus.CLAIMED
        assert escalation.claimed_by == admin_user
        thread = Thread.objects.get(pk=escalation.thread_id)
        assert (thread.responder, thread.assignee) == (Responder.HUMAN, admin_user)
    assert "Claimed 2 escalation(s)." in _messages(response)


def test_it_reports_an_escalation_someone_else_claimed(
    admin_client: Any, admin_user: Any, agent: Any
) -> None:
    taken, free = _escalate(1), _escalate(2)
    services.escalation_claim(escalation=taken, user=agent)

    response = _run_action(admin_client, "claim", taken, free)

    taken.refresh_from_db()
    free.refresh_from_db()
    assert taken.claimed_by == agent
    assert free.claimed_by == admin_user
    assert Thread.objects.get(pk=taken.thread_id).assignee == agent
    shown = _messages(response)
    assert "Escalation of “Broken tent 1”: Someone else has already claimed this escalation." in (
        shown
    )
    assert "Claimed 1 escalation(s)." in shown


def test_it_resolves_escalations(admin_client: Any, admin_user: Any) -> None:
    escalation = _escalate(1)

    response = _run_action(admin_client, "resolve", escalation)

    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.RESOLVED
    assert escalation.resolved_by == admin_user
    thread = Thread.objects.get(pk=escalation.thread_id)
    assert (thread.status, thread.responder) == (ThreadStatus.OPEN, Responder.HUMAN)
    assert "Resolved 1 escalation(s)." in _messages(response)


def test_it_resolves_and_hands_the_thread_back_to_the_ai(
    admin_client: Any, admin_user: Any
) -> None:
    escalation = _escalate(1)
    services.escalation_claim(escalation=escalation, user=admin_user)

    _run_action(admin_client, "resolve_to_ai", escalation)

    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.RESOLVED
    thread = Thread.objects.get(pk=escalation.thread_id)
    assert (thread.responder, thread.assignee) == (Responder.AI, None)
    assert thread.assignments.latest("id").assigned_by == admin_user


def test_it_reports_an_escalation_that_is_already_resolved(admin_client: Any, agent: Any) -> None:
    done, open_one = _escalate(1), _escalate(2)
    services.escalation_resolve(escalation=done, user=agent)

    response = _run_action(admin_client, "resolve", done, open_one)

    done.refresh_from_db()
    open_one.refresh_from_db()
    assert done.resolved_by == agent
    assert open_one.status == EscalationStatus.RESOLVED
    shown = _messages(response)
    assert "Escalation of “Broken tent 1”: This escalation is already resolved." in shown
    assert "Resolved 1 escalation(s)." in shown


def test_it_broadcasts_a_claim_from_the_admin(
    admin_client: Any, event_log: Any, django_capture_on_commit_callbacks: Any
) -> None:
    escalation = _escalate(1)
    with django_capture_on_commit_callbacks(execute=True):
        _run_action(admin_client, "claim", escalation)
    assert "escalation.updated" in event_log.types()


def test_it_offers_no_actions_without_the_change_permission(agent: Any) -> None:
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_escalation"))
    client = Client()
    client.force_login(viewer)
    escalation = _escalate(1)

    changelist = client.get(_changelist("escalation"))
    assert changelist.status_code == 200
    assert changelist.context["action_form"] is None
    _run_action(client, "claim", escalation)

    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.OPEN


@pytest.mark.parametrize("model", ["escalation", "humanrequest"])
def test_it_does_not_add_rows(admin_client: Any, model: str) -> None:
    response = admin_client.get(reverse(f"admin:escalations_{model}_add"))
    assert response.status_code == 403


def test_it_does_not_change_escalations(admin_client: Any) -> None:
    escalation = _escalate(1)
    url = reverse("admin:escalations_escalation_change", args=[escalation.pk])

    response = admin_client.post(url, {"status": "resolved", "reason": "edited"})

    assert response.status_code == 403
    escalation.refresh_from_db()
    assert (escalation.status, escalation.reason) == (EscalationStatus.OPEN, "needs a person 1")


def test_it_does_not_change_human_requests(admin_client: Any) -> None:
    request = _ask(1)
    url = reverse("admin:escalations_humanrequest_change", args=[request.pk])
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"status": "answered", "answer": "edited"})

    assert response.status_code == 403
    request.refresh_from_db()
    assert (request.status, request.answer) == ("pending", None)


def test_it_does_not_delete_escalations(admin_client: Any) -> None:
    escalation = _escalate(1)
    response = admin_client.post(
        reverse("admin:escalations_escalation_delete", args=[escalation.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Escalation.objects.filter(pk=escalation.pk).exists()
