from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import CustomerFactory, make_thread
from threads import services
from threads.models import AIMode, Assignment, Customer, Message, Responder, Thread, ThreadStatus

pytestmark = pytest.mark.django_db


def _thread_with_history(agent: Any, n: int) -> Thread:
    """A thread with customer, AI, human and internal messages and two assignments."""
    thread, _ = make_thread(subject=f"Order question {n}", message=f"Where is order {n}?")
    services.message_create(
        thread=thread, role="assistant", author_kind="ai", content="It ships today."
    )
    services.human_reply_create(thread=thread, user=agent, content="Checking with the warehouse.")
    services.internal_note_create(thread=thread, user=agent, content="Carrier delay.")
    return thread


def _make_threads(agent: Any, count: int) -> None:
    start = Thread.objects.count()
    for n in range(start, start + count):
        _thread_with_history(agent, n)


def _queries_for(client: Any, url: str) -> int:
    """The number of queries one GET of ``url`` runs (after a warm-up request)."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries)


def _change_form_data(client: Any, url: str, **changes: Any) -> dict[str, Any]:
    """The thread change form as a browser would post it, with ``changes`` applied."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    data: dict[str, Any] = {name: form[name].value() for name in form.fields}
    for inline in response.context["inline_admin_formsets"]:
        for field in inline.formset.management_form:
            data[field.html_name] = field.value()
    data.update(changes)
    return data


def _changelist(model: str) -> str:
    return reverse(f"admin:threads_{model}_changelist")


def _thread_change(thread: Thread) -> str:
    return reverse("admin:threads_thread_change", args=[thread.pk])


def _run_action(client: Any, action: str, *threads: Thread) -> Any:
    return client.post(
        _changelist("thread"),
        {"action": action, "_selected_action": [str(thread.pk) for thread in threads]},
        follow=True,
    )


@pytest.mark.parametrize("model", ["thread", "message", "assignment", "customer"])
def test_it_renders_each_changelist_in_constant_queries(
    admin_client: Any, agent: Any, model: str
) -> None:
    _make_threads(agent, 3)
    with_three = _queries_for(admin_client, _changelist(model))
    _make_threads(agent, 7)
    with_ten = _queries_for(admin_client, _changelist(model))
    assert with_ten == with_three


@pytest.mark.parametrize("model", [Thread, Message, Assignment, Customer])
def test_it_lists_every_row_in_each_changelist(
    admin_client: Any, agent: Any, model: type[Model]
) -> None:
    _make_threads(agent, 4)
    response = admin_client.get(_changelist(model._meta.model_name or ""))
    assert response.status_code == 200
    rows = model._default_manager.count()
    assert rows >= 4
    assert response.context["cl"].result_count == rows
    assert len(response.context["cl"].result_list) == rows


def test_it_counts_threads_per_customer(admin_client: Any, agent: Any) -> None:
    customer = CustomerFactory(name="Quiet Customer")
    _make_threads(agent, 2)
    response = admin_client.get(_changelist("customer"))
    counts = {row.pk: row.thread_total for row in response.context["cl"].result_list}
    assert counts[customer.pk] == 0
    assert sorted(counts.values()) == [0, 1, 1]


def test_it_filters_customers_by_a_configured_tier_without_reading_the_column(
    admin_client: Any,
) -> None:
    vip = CustomerFactory(name="Very Important", tier="vip")
    CustomerFactory(name="Everyone Else")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(_changelist("customer"), {"tier": "vip"})
    assert [row.pk for row in response.context["cl"].result_list] == [vip.pk]
    # The filter's choices come from the settings, not a DISTINCT over every customer.
    assert not [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]


def test_it_searches_threads_by_id(admin_client: Any, agent: Any) -> None:
    wanted = _thread_with_history(agent, 1)
    _thread_with_history(agent, 2)
    response = admin_client.get(_changelist("thread"), {"q": str(wanted.pk)})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [wanted.pk]


def test_it_searches_threads_with_text_that_is_not_an_id(admin_client: Any, agent: Any) -> None:
    _thread_with_history(agent, 7)
    response = admin_client.get(_changelist("thread"), {"q": "Order question 7"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_it_shows_the_transcript_on_the_thread_page(admin_client: Any, agent: Any) -> None:
    thread = _thread_with_history(agent, 1)
    response = admin_client.get(_thread_change(thread))
    assert response.status_code == 200
    transcript = response.context["inline_admin_formsets"][0]
    shown = [form.original.seq for form in transcript]
    assert shown == [1, 2, 3, 4]
    body = response.content.decode()
    assert "Where is order 1?" in body
    assert "Carrier delay." in body


def test_it_escapes_message_content_in_the_transcript(admin_client: Any) -> None:
    thread, _ = make_thread(message="<script>alert('x')</script>")
    response = admin_client.get(_thread_change(thread))
    body = response.content.decode()
    assert "<script>alert(" not in body
    assert "&lt;script&gt;alert(" in body


def test_it_renders_the_thread_page_in_constant_queries(admin_client: Any, agent: Any) -> None:
    thread = _thread_with_history(agent, 1)
    short = _queries_for(admin_client, _thread_change(thread))
    for n in range(6):
        services.human_reply_create(thread=thread, user=agent, content=f"Update {n}")
        services.thread_assign(thread=thread, responder=Responder.AI, reason="back")
    long = _queries_for(admin_client, _thread_change(thread))
    assert long == short


def test_it_hands_a_thread_back_to_the_ai(admin_client: Any, admin_user: Any, agent: Any) -> None:
    thread = _thread_with_history(agent, 1)
    assert thread.responder == Responder.HUMAN
    before = Assignment.objects.filter(thread=thread).count()

    response = _run_action(admin_client, "hand_back_to_ai", thread)

    assert response.status_code == 200
    thread.refresh_from_db()
    assert thread.responder == Responder.AI
    assert thread.assignee is None
    assert Assignment.objects.filter(thread=thread).count() == before + 1
    latest = Assignment.objects.filter(thread=thread).latest("id")
    assert latest.responder == Responder.AI
    assert latest.assigned_by == admin_user
    assert "Handed 1 thread(s) back to the AI." in response.content.decode()


def test_it_assigns_threads_to_the_chosen_agent(
    admin_client: Any, admin_user: Any, agent: Any, other_agent: Any
) -> None:
    ai_thread, _ = make_thread()
    theirs = _thread_with_history(agent, 1)
    response = admin_client.post(
        _changelist("thread"),
        {
            "action": "assign_to_agent",
            "assignee": str(other_agent.pk),
            "_selected_action": [str(ai_thread.pk), str(theirs.pk)],
        },
        follow=True,
    )
    for thread in (ai_thread, theirs):
        thread.refresh_from_db()
        assert (thread.responder, thread.assignee) == (Responder.HUMAN, other_agent)
        latest = Assignment.objects.filter(thread=thread).latest("id")
        assert (latest.assignee, latest.assigned_by) == (other_agent, admin_user)
    assert "Assigned 2 thread(s) to Sam Support." in response.content.decode()


def test_it_asks_for_the_agent_before_assigning(admin_client: Any) -> None:
    thread, _ = make_thread()
    before = Assignment.objects.filter(thread=thread).count()
    for chosen, message in (
        ("", "Choose the agent to assign first."),
        # The admin validates its action form first: no action runs.
        ("999999", "No action selected."),
        ("not-a-user", "No action selected."),
    ):
        response = admin_client.post(
            _changelist("thread"),
            {"action": "assign_to_agent", "assignee": chosen, "_selected_action": [str(thread.pk)]},
            follow=True,
        )
        assert message in response.content.decode()
    thread.refresh_from_db()
    assert thread.responder == Responder.AI
    assert Assignment.objects.filter(thread=thread).count() == before


def test_it_offers_only_agents_to_assign(admin_client: Any, agent: Any) -> None:
    from tests.factories import UserFactory

    make_thread()
    UserFactory(username="customer-ish", first_name="Not", last_name="Staff", is_staff=False)
    UserFactory(username="gone", first_name="Gone", last_name="Away", is_active=False)
    page = admin_client.get(_changelist("thread")).content.decode()
    assert f'<option value="{agent.pk}">Alex Agent</option>' in page
    assert "Not Staff" not in page
    assert "Gone Away" not in page


def test_it_leaves_ai_threads_alone_when_handing_back(admin_client: Any) -> None:
    thread, _ = make_thread()
    before = Assignment.objects.filter(thread=thread).count()
    _run_action(admin_client, "hand_back_to_ai", thread)
    assert Assignment.objects.filter(thread=thread).count() == before


def test_it_marks_threads_resolved(admin_client: Any, agent: Any) -> None:
    first = _thread_with_history(agent, 1)
    second = _thread_with_history(agent, 2)
    response = _run_action(admin_client, "mark_resolved", first, second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ThreadStatus.RESOLVED, ThreadStatus.RESOLVED)
    assert "Marked 2 thread(s) resolved." in response.content.decode()


def test_it_closes_threads(admin_client: Any, agent: Any) -> None:
    thread = _thread_with_history(agent, 1)
    response = _run_action(admin_client, "close", thread)
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.CLOSED
    assert "Closed 1 thread(s)." in response.content.decode()


def test_it_broadcasts_the_status_change_of_an_action(
    admin_client: Any, agent: Any, event_log: Any, django_capture_on_commit_callbacks: Any
) -> None:
    thread = _thread_with_history(agent, 1)
    with django_capture_on_commit_callbacks(execute=True):
        _run_action(admin_client, "close", thread)
    assert event_log.types() == ["thread.updated"]


def test_it_saves_the_thread_form_through_the_service(
    admin_client: Any, agent: Any, event_log: Any, django_capture_on_commit_callbacks: Any
) -> None:
    thread = _thread_with_history(agent, 1)
    url = _thread_change(thread)
    data = _change_form_data(admin_client, url, ai_mode=AIMode.DRAFT)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)

    assert response.status_code == 302, response.context and response.context.get("errors")
    thread.refresh_from_db()
    assert thread.ai_mode == AIMode.DRAFT
    # Only thread_update announces the change; a plain save() would be silent.
    assert event_log.types() == ["thread.updated"]


def test_it_keeps_a_counter_that_moved_while_the_form_was_open(
    admin_client: Any, agent: Any
) -> None:
    thread = _thread_with_history(agent, 1)
    url = _thread_change(thread)
    data = _change_form_data(admin_client, url, priority="urgent")
    services.message_create(thread=thread, role="assistant", author_kind="ai", content="More.")

    admin_client.post(url, data)

    thread.refresh_from_db()
    assert thread.priority == "urgent"
    assert thread.last_seq == 5


def test_it_ignores_posted_system_fields(admin_client: Any, agent: Any) -> None:
    thread = _thread_with_history(agent, 1)
    url = _thread_change(thread)
    data = _change_form_data(admin_client, url, last_seq=99, status=ThreadStatus.CLOSED)

    admin_client.post(url, data)

    thread.refresh_from_db()
    assert thread.last_seq == 4
    assert thread.status == ThreadStatus.OPEN


def test_it_does_not_offer_to_add_threads(admin_client: Any) -> None:
    response = admin_client.get(reverse("admin:threads_thread_add"))
    assert response.status_code == 403
    assert Thread.objects.count() == 0


def test_it_does_not_delete_threads(admin_client: Any) -> None:
    thread, _ = make_thread()
    response = admin_client.post(
        reverse("admin:threads_thread_delete", args=[thread.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Thread.objects.filter(pk=thread.pk).exists()


def test_it_does_not_add_messages(admin_client: Any) -> None:
    make_thread(message="Hello")
    changelist = admin_client.get(_changelist("message"))
    assert changelist.context["has_add_permission"] is False
    response = admin_client.get(reverse("admin:threads_message_add"))
    assert response.status_code == 403
    assert Message.objects.count() == 1


def test_it_does_not_change_messages(admin_client: Any) -> None:
    thread, _ = make_thread(message="Hello")
    message = Message.objects.get(thread=thread)
    url = reverse("admin:threads_message_change", args=[message.pk])
    assert admin_client.get(url).status_code == 200  # view-only page

    response = admin_client.post(url, {"content": "Edited", "seq": 1})

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.content == "Hello"


def test_it_does_not_change_assignments(admin_client: Any) -> None:
    thread, _ = make_thread()
    assignment = Assignment.objects.get(thread=thread)
    url = reverse("admin:threads_assignment_change", args=[assignment.pk])

    response = admin_client.post(url, {"responder": "human", "reason": "edited"})

    assert response.status_code == 403
    assignment.refresh_from_db()
    assert (assignment.responder, assignment.reason) == (Responder.AI, "thread created")
