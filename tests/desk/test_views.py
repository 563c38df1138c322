"""The desk pages (server side): sign-in, access, the embedded first screen, escaping,
the routing-decision JSON, the widget demo page, and query counts."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from supportdesk.agent.models import AgentTurn
from tests.desk.helpers import XSS, draft_thread, escalated_thread, question_thread
from tests.factories import UserFactory, make_thread
from threads import services
from threads.models import AuthorKind, Message, Role, Thread, Visibility

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


@pytest.fixture
def desk_client(agent: Any) -> Client:
    client = Client()
    client.force_login(agent)
    return client


def embedded(response: Any) -> dict[str, Any]:
    """The JSON the page embeds for its script (json_script)."""
    match = re.search(
        r'<script id="desk-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "no embedded desk data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# --- Sign-in and access ------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_desk_login(client: Client) -> None:
    response = client.get("/desk/")
    assert response.status_code == 302
    assert response["Location"] == "/desk/login/?next=/desk/"


def test_it_signs_an_agent_in(client: Client, agent: Any) -> None:
    response = client.post(
        "/desk/login/?next=/desk/approvals/", {"username": "alex", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/desk/approvals/"
    assert client.get("/desk/").status_code == 200


def test_it_refuses_to_sign_in_a_customer_account(client: Client) -> None:
    UserFactory(username="plain", is_staff=False)
    response = client.post("/desk/login/", {"username": "plain", "password": PASSWORD})
    assert response.status_code == 200
    assert "not a support agent account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_lets_members_of_the_agents_group_in(client: Client) -> None:
    member = UserFactory(username="grouped", is_staff=False)
    member.groups.add(Group.objects.create(name="agents"))
    client.force_login(member)
    assert client.get("/desk/").status_code == 200


def test_it_shows_a_signed_in_non_agent_a_forbidden_page(client: Client) -> None:
    client.force_login(UserFactory(username="plain", is_staff=False))
    response = client.get("/desk/")
    assert response.status_code == 403
    assert "not a support agent account" in response.content.decode()


def test_it_rate_limits_sign_in_attempts(client: Client, agent: Any, settings: Any) -> None:
    settings.SUPPORTDESK_RATE_LIMITS = {**settings.SUPPORTDESK_RATE_LIMITS, "login_per_ip": "2/60"}
    for _ in range(2):
        client.post("/desk/login/", {"username": "alex", "password": "wrong"})
    response = client.post("/desk/login/", {"username": "alex", "password": PASSWORD})
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_signs_out_with_a_post(desk_client: Client) -> None:
    response = desk_client.post("/desk/logout/")
    assert response.status_code == 302
    assert desk_client.get("/desk/").status_code == 302


# --- Inbox ---------------------------------------------------------------------------------


def test_it_embeds_the_first_inbox_page(desk_client: Client, agent: Any) -> None:
    escalated, _ = escalated_thread()
    quiet, _ = make_thread(subject="Just a question")
    response = desk_client.get("/desk/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    data = embedded(response)
    assert [t["id"] for t in data["threads"]] == [str(quiet.pk), str(escalated.pk)]
    assert data["threads"][1]["open_escalation"]["status"] == "open"
    assert data["has_more"] is False
    assert data["me"]["username"] == "alex"
    assert "csrftoken" in response.cookies


def test_it_filters_the_inbox_by_assignee_and_responder(
    desk_client: Client, agent: Any, other_agent: Any
) -> None:
    mine, _ = make_thread(subject="Mine")
    services.human_reply_create(thread=mine, user=agent, content="On it.")
    theirs, _ = make_thread(subject="Theirs")
    services.human_reply_create(thread=theirs, user=other_agent, content="On it.")
    make_thread(subject="The AI's")
    data = embedded(desk_client.get("/desk/", {"assignee": "me"}))
    assert [t["subject"] for t in data["threads"]] == ["Mine"]
    assert data["filters"] == {"assignee": "me"}
    data = embedded(desk_client.get("/desk/", {"responder": "ai"}))
    assert [t["subject"] for t in data["threads"]] == ["The AI's"]
    data = embedded(desk_client.get("/desk/", {"has_open_escalation": "true"}))
    assert data["threads"] == []


def test_it_ignores_filters_the_api_would_refuse(desk_client: Client) -> None:
    make_thread(subject="Visible")
    response = desk_client.get("/desk/", {"status": "bogus", "assignee": "x"})
    assert response.status_code == 200
    data = embedded(response)
    assert data["filters"] == {}
    assert [t["subject"] for t in data["threads"]] == ["Visible"]


def test_it_renders_the_inbox_in_a_constant_number_of_queries(
    desk_client: Client, agent: Any
) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            response = desk_client.get("/desk/")
        assert response.status_code == 200
        return len(context.captured_queries)

    def make(n: int) -> None:
        for index in range(n):
            escalated_thread(subject=f"Escalated {index}")
            draft_thread(subject=f"Draft {index}")
            question_thread()
            thread, _ = make_thread(subject=f"Taken {index}")
            services.human_reply_create(thread=thread, user=agent, content="Mine now.")

    make(1)
    few = count()
    make(6)
    assert count() == few


def _bulk_threads(count: int) -> None:
    """``count`` AI threads written straight to the tables (an inbox of a busy desk)."""
    from threads.models import Customer

    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {n}", email=f"c{n}@example.com") for n in range(count)
    )
    Thread.objects.bulk_create(
        Thread(customer=customer, token_hash=f"{n:064x}", subject=f"Bulk {n}")
        for n, customer in enumerate(customers)
    )


def test_it_renders_an_inbox_of_ten_thousand_threads_in_the_queries_of_a_few(
    desk_client: Client, agent: Any
) -> None:
    def count(params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        with CaptureQueriesContext(connection) as context:
            response = desk_client.get("/desk/", params or {})
        assert response.status_code == 200
        return len(context.captured_queries), embedded(response)

    escalated_thread(subject="Escalated")
    draft_thread(subject="Draft")
    question_thread()
    few, _ = count()
    few_filtered, _ = count({"responder": "human", "q": "Escalated"})

    _bulk_threads(10_000)
    for index in range(20):
        escalated_thread(subject=f"Escalated {index}")
        draft_thread(subject=f"Draft {index}")
        question_thread()
    many, data = count()
    assert Thread.objects.count() > 10_000
    assert len(data["threads"]) == 50
    assert data["has_more"] is True
    assert many == few
    filtered, data = count({"responder": "human", "q": "Escalated"})
    assert filtered == few_filtered
    assert len(data["threads"]) == 21


def test_it_filters_the_inbox_by_queue(desk_client: Client) -> None:
    from escalations.models import Queue, RoutingRule

    Queue.objects.create(name="Support", is_default=True, auto_assign=False)
    billing = Queue.objects.create(name="Billing", auto_assign=False)
    RoutingRule.objects.create(queue=billing, keywords="refund")
    thread, _ = make_thread(subject="Refund please")
    from escalations import services as escalation_services

    escalation_services.escalation_open(thread=thread, source="staff", reason="a refund")
    escalated_thread(subject="Pole")
    response = desk_client.get("/desk/", {"queue": str(billing.pk)})
    data = embedded(response)
    assert [t["subject"] for t in data["threads"]] == ["Refund please"]
    assert data["threads"][0]["open_escalation"]["queue"]["name"] == "Billing"
    assert data["filters"] == {"queue": str(billing.pk)}
    assert [q["name"] for q in data["queues"]] == ["Billing", "Support"]
    assert f'<option value="{billing.pk}">Billing</option>' in response.content.decode()


# --- Thread view ---------------------------------------------------------------------------


def _bulk_messages(thread: Thread, count: int) -> None:
    """``count`` messages written straight to the table (test data for a long thread)."""
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            thread=thread,
            seq=thread.last_seq + n,
            role=Role.USER if n % 2 else Role.ASSISTANT,
            author_kind=AuthorKind.CUSTOMER if n % 2 else AuthorKind.AI,
            author_name="Casey" if n % 2 else "AI assistant",
            content=f"message number {thread.last_seq + n}",
            visibility=Visibility.PUBLIC,
            created_at=now,
        )
        for n in range(1, count + 1)
    )
    Thread.objects.filter(pk=thread.pk).update(last_seq=thread.last_seq + count)
    thread.refresh_from_db()


def test_it_opens_a_long_thread_at_its_newest_page(desk_client: Client) -> None:
    thread, _ = make_thread(subject="Long")
    _bulk_messages(thread, 1000)
    data = embedded(desk_client.get(f"/desk/threads/{thread.pk}/"))
    seqs = [m["seq"] for m in data["messages"]]
    assert seqs == list(range(951, 1001))
    assert data["has_older"] is True


def test_it_embeds_what_the_thread_view_shows(desk_client: Client, agent: Any) -> None:
    thread, escalation = escalated_thread()
    services.internal_note_create(thread=thread, user=agent, content="Check the warehouse.")
    data = embedded(desk_client.get(f"/desk/threads/{thread.pk}/"))
    assert data["thread"]["id"] == str(thread.pk)
    visibilities = [m["visibility"] for m in data["messages"]]
    assert "internal" in visibilities
    assert data["escalations"][0]["id"] == str(escalation.pk)
    assert data["escalations"][0]["summary"] == escalation.summary
    assert [a["responder"] for a in data["assignments"]][:1] == ["ai"]
    assert data["turns"][0]["seq"] == 1
    assert data["has_older"] is False


def test_it_embeds_pending_questions_and_drafts(desk_client: Client) -> None:
    thread, request = question_thread()
    data = embedded(desk_client.get(f"/desk/threads/{thread.pk}/"))
    assert [q["id"] for q in data["human_requests"]] == [str(request.pk)]
    thread, draft = draft_thread()
    data = embedded(desk_client.get(f"/desk/threads/{thread.pk}/"))
    assert [d["id"] for d in data["drafts"]] == [str(draft.pk)]


def test_it_escapes_markup_in_the_embedded_data(desk_client: Client) -> None:
    thread, _ = make_thread(subject=XSS, message=XSS, customer_name=XSS)
    for url in ("/desk/", f"/desk/threads/{thread.pk}/"):
        html = desk_client.get(url).content.decode()
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        # The text stays inside the JSON block, as a string; nowhere else.
        outside = re.sub(r'<script id="desk-data".*?</script>', "", html, flags=re.S)
        assert "onerror" not in outside.replace("&lt;img src=x onerror=&quot;", "")
    data = embedded(desk_client.get(f"/desk/threads/{thread.pk}/"))
    assert data["messages"][0]["content"] == XSS


def test_it_answers_404_for_an_unknown_thread(desk_client: Client) -> None:
    response = desk_client.get("/desk/threads/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


def test_it_renders_the_thread_view_in_a_constant_number_of_queries(
    desk_client: Client, agent: Any, other_agent: Any
) -> None:
    thread, _ = escalated_thread()

    def count() -> int:
        with CaptureQueriesContext(connection) as context:
            assert desk_client.get(f"/desk/threads/{thread.pk}/").status_code == 200
        return len(context.captured_queries)

    few = count()
    for index in range(5):
        user = [agent, other_agent][index % 2]
        services.internal_note_create(thread=thread, user=user, content="note")
        services.customer_message_create(thread=thread, content="more")
    assert count() == few


# --- Routing decisions -----------------------------------------------------------------------


def test_it_lists_routing_decisions_as_json(desk_client: Client) -> None:
    thread, _ = make_thread(subject="Routing", message="first")
    services.customer_message_create(thread=thread, content="second")
    AgentTurn.objects.filter(thread=thread, trigger_message__seq=1).update(
        decision="ai",
        decision_step="default",
        decision_reason="no rule applied",
        status="done",
        outcome="reply",
        confidence=0.86,
    )
    body = desk_client.get(f"/desk/threads/{thread.pk}/turns/").json()
    assert [
        (line["seq"], line["decision_reason"], line["outcome"], line["confidence"])
        for line in body["results"]
    ] == [(1, "no rule applied", "reply", 0.86), (2, "", "", None)]
    body = desk_client.get(f"/desk/threads/{thread.pk}/turns/", {"before": 2}).json()
    assert [line["seq"] for line in body["results"]] == [1]
    body = desk_client.get(f"/desk/threads/{thread.pk}/turns/", {"after": 1}).json()
    assert [line["seq"] for line in body["results"]] == [2]


def test_it_refuses_bad_turn_cursors(desk_client: Client) -> None:
    thread, _ = make_thread()
    response = desk_client.get(f"/desk/threads/{thread.pk}/turns/", {"before": "0"})
    assert response.status_code == 400
    assert "before" in response.json()["error"]["fields"]


def test_it_keeps_the_routing_decisions_from_anonymous_visitors(client: Client) -> None:
    thread, _ = make_thread()
    assert client.get(f"/desk/threads/{thread.pk}/turns/").status_code == 302


# --- Approvals and the widget demo -------------------------------------------------------------


def test_it_embeds_pending_approval_drafts_oldest_first(desk_client: Client) -> None:
    first_thread, first = draft_thread(subject="First")
    _, second = draft_thread(subject="Second")
    draft_thread(kind="suggestion", subject="A copilot suggestion")
    data = embedded(desk_client.get("/desk/approvals/"))
    assert [d["id"] for d in data["drafts"]] == [str(first.pk), str(second.pk)]
    assert data["drafts"][0]["thread_info"]["subject"] == "First"
    assert data["drafts"][0]["thread_info"]["id"] == str(first_thread.pk)


def test_it_serves_the_widget_demo_page_with_one_script_tag(client: Client) -> None:
    response = client.get("/widget/demo/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<script") == 1
    assert 'src="/static/widget/widget.js"' in html
