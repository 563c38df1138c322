"""Human labour beside LLM usage: handle time, active reply time, edited drafts, and the
``usage_report`` command that shares the endpoint's roll-up."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from approvals import services as approval_services
from escalations import services as escalation_services
from escalations.models import Escalation
from supportdesk.agent.selectors import USAGE_FIELDS
from tests.factories import make_thread
from threads import services
from threads.models import AuthorKind, Message, Role, Thread, Visibility

pytestmark = pytest.mark.django_db


def handled_escalation(agent: Any, seconds: int) -> Escalation:
    """An escalation claimed by ``agent`` and resolved ``seconds`` later."""
    thread, _ = make_thread()
    escalation, _ = escalation_services.escalation_open(thread=thread, source="tool", reason="x")
    escalation_services.escalation_claim(escalation=escalation, user=agent)
    escalation_services.escalation_resolve(escalation=escalation, user=agent)
    escalation.refresh_from_db()
    assert escalation.resolved_at is not None
    Escalation.objects.filter(pk=escalation.pk).update(
        claimed_at=escalation.resolved_at - timedelta(seconds=seconds)
    )
    return escalation


def at(message: Message, moment: Any) -> None:
    Message.objects.filter(pk=message.pk).update(created_at=moment)


def rows(client: APIClient, group_by: str) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/desk/usage/", {"group_by": group_by})
    assert response.status_code == 200
    return {row["key"]: row for row in response.json()["results"]}


def test_it_shows_handle_time_per_thread_on_the_usage_endpoint(
    staff_client: APIClient, agent: Any
) -> None:
    first = handled_escalation(agent, 600)
    second = handled_escalation(agent, 90)
    by_thread = rows(staff_client, "thread")
    assert by_thread[str(first.thread_id)]["human_handle_seconds"] == 600
    assert by_thread[str(second.thread_id)]["human_handle_seconds"] == 90
    assert by_thread[str(first.thread_id)]["escalations_handled"] == 1


def test_it_shows_handle_time_per_agent_and_per_day(
    staff_client: APIClient, agent: Any, other_agent: Any
) -> None:
    handled_escalation(agent, 600)
    handled_escalation(agent, 300)
    handled_escalation(other_agent, 60)
    by_agent = rows(staff_client, "agent")
    assert by_agent["alex"]["human_handle_seconds"] == 900
    assert by_agent["alex"]["escalations_handled"] == 2
    assert by_agent["sam"]["human_handle_seconds"] == 60
    today = str(timezone.localdate())
    assert rows(staff_client, "day")[today]["human_handle_seconds"] == 960


def test_it_leaves_unresolved_work_out_of_the_handle_time(
    staff_client: APIClient, agent: Any
) -> None:
    thread, _ = make_thread()
    escalation, _ = escalation_services.escalation_open(thread=thread, source="tool", reason="x")
    escalation_services.escalation_claim(escalation=escalation, user=agent)
    assert str(thread.pk) not in rows(staff_client, "thread")


def test_it_counts_active_reply_time_capped(
    staff_client: APIClient, agent: Any, settings: Any
) -> None:
    settings.SUPPORTDESK_HUMAN_REPLY_CAP_SECONDS = 600
    thread, _ = make_thread()
    t0 = timezone.now() - timedelta(hours=3)
    at(services.customer_message_create(thread=thread, content="Where is my order?"), t0)
    at(
        services.human_reply_create(thread=thread, user=agent, content="Checking."),
        t0 + timedelta(seconds=120),
    )
    at(
        services.customer_message_create(thread=thread, content="Thanks"),
        t0 + timedelta(seconds=1000),
    )
    # Answered the next morning: counts as the cap, not as the night.
    at(
        services.human_reply_create(thread=thread, user=agent, content="Shipped."),
        t0 + timedelta(hours=2),
    )
    row = rows(staff_client, "thread")[str(thread.pk)]
    assert (row["human_messages"], row["human_active_seconds"]) == (2, 120 + 600)
    assert rows(staff_client, "agent")["alex"]["human_active_seconds"] == 720


def test_it_counts_from_when_the_human_got_the_thread(staff_client: APIClient, agent: Any) -> None:
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="Hello?")
    Message.objects.filter(thread=thread).update(created_at=timezone.now() - timedelta(minutes=5))
    services.thread_assign(thread=thread, responder="human", assignee=agent, reason="picked up")
    services.human_reply_create(thread=thread, user=agent, content="Hi!")
    # Waiting in the queue is not work: the clock starts at the assignment.
    assert rows(staff_client, "thread")[str(thread.pk)]["human_active_seconds"] < 60


def test_it_counts_drafts_a_human_edited(staff_client: APIClient, agent: Any) -> None:
    thread, _ = make_thread()
    for content, edit in (("Refunds take 5 days.", "Refunds take 3-5 days."), ("Hi", None)):
        message = services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content=content,
            visibility=Visibility.DRAFT,
        )
        draft = approval_services.approval_draft_create(thread=thread, message=message)
        approval_services.approval_approve(draft=draft, user=agent, content=edit)
    assert rows(staff_client, "thread")[str(thread.pk)]["drafts_edited"] == 1
    assert rows(staff_client, "agent")["alex"]["drafts_edited"] == 1


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("usage_report", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_usage_report_as_csv(agent: Any) -> None:
    escalation = handled_escalation(agent, 600)
    thread = Thread.objects.get(pk=escalation.thread_id)
    services.human_reply_create(thread=thread, user=agent, content="Done.")
    output = report("--group-by", "thread", "--format", "csv", "--since", "2000-01-01")
    parsed = list(csv.DictReader(io.StringIO(output)))
    assert output.splitlines()[0] == ",".join(USAGE_FIELDS)
    assert [(r["key"], r["human_handle_seconds"], r["human_messages"]) for r in parsed] == [
        (str(thread.pk), "600", "1")
    ]
    assert parsed[0]["avg_latency_ms"] == ""


def test_it_prints_the_same_rows_as_the_endpoint(staff_client: APIClient, agent: Any) -> None:
    handled_escalation(agent, 42)
    output = report("--group-by", "agent", "--format", "csv")
    from_command = [dict(r) for r in csv.DictReader(io.StringIO(output))]
    from_api = staff_client.get("/api/v1/desk/usage/", {"group_by": "agent"}).json()["results"]
    assert [r["key"] for r in from_command] == [r["key"] for r in from_api] == ["alex"]
    assert from_command[0]["human_handle_seconds"] == str(from_api[0]["human_handle_seconds"])


def test_it_prints_a_table(agent: Any) -> None:
    handled_escalation(agent, 5)
    lines = report("--group-by", "agent").splitlines()
    assert lines[0].split() == list(USAGE_FIELDS)
    assert lines[2].split()[0] == "alex"
    assert "no usage" in report("--since", "2000-01-01", "--until", "2000-01-02")


def test_it_rejects_a_bad_report_period() -> None:
    with pytest.raises(CommandError, match="--since"):
        report("--since", "yesterday")
    with pytest.raises(CommandError, match="--since"):
        report("--since", "2030-01-03", "--until", "2030-01-01")


# --- group_by=escalation ------------------------------------------------------------------


def model_call(thread: Thread, moment: Any, *, prompt: int, cost: str, turn: Any = None) -> Any:
    from decimal import Decimal

    from supportdesk.agent.models import AgentTurn, ModelCall

    # By default the thread's newest turn (each customer message has its own).
    turn = turn or AgentTurn.objects.filter(thread=thread).order_by("-created_at").first()
    call = ModelCall.objects.create(
        turn=turn, thread=thread, provider="openai", model="gpt-test", prompt_tokens=prompt,
        completion_tokens=1, latency_ms=200, cost=Decimal(cost),
    )  # fmt: skip
    ModelCall.objects.filter(pk=call.pk).update(created_at=moment)
    return call


def test_it_shows_what_each_escalation_cost(staff_client: APIClient, agent: Any) -> None:
    from supportdesk.agent.models import AgentTurn

    thread, _ = make_thread()
    t0 = timezone.now() - timedelta(hours=5)
    at(services.customer_message_create(thread=thread, content="My tent is torn"), t0)
    turn = AgentTurn.objects.get(thread=thread)
    # The turn that escalated: before the escalation, but part of what it cost.
    model_call(thread, t0 + timedelta(seconds=5), prompt=100, cost="0.001", turn=turn)
    first, _ = escalation_services.escalation_open(
        thread=thread, source="tool", reason="torn", turn_id=turn.pk
    )
    escalation_services.escalation_claim(escalation=first, user=agent)
    reply = services.human_reply_create(thread=thread, user=agent, content="Sending a new one.")
    escalation_services.escalation_resolve(escalation=first, user=agent, responder="ai")
    Escalation.objects.filter(pk=first.pk).update(
        created_at=t0 + timedelta(seconds=10),
        claimed_at=t0 + timedelta(seconds=70),
        resolved_at=t0 + timedelta(seconds=900),
    )
    at(reply, t0 + timedelta(seconds=190))  # 190 s after the customer's message
    # Later on the same thread: AI work outside the escalation, then a second one.
    services.customer_message_create(thread=thread, content="Thanks! And the poles?")
    model_call(thread, t0 + timedelta(hours=1), prompt=7, cost="0.5")
    second, _ = escalation_services.escalation_open(thread=thread, source="customer_request")
    escalation_services.escalation_claim(escalation=second, user=agent)
    services.customer_message_create(thread=thread, content="Still there?")
    model_call(thread, timezone.now() - timedelta(seconds=1), prompt=20, cost="0.002")
    escalation_services.escalation_resolve(escalation=second, user=agent)
    Escalation.objects.filter(pk=second.pk).update(created_at=timezone.now() - timedelta(minutes=1))

    by_escalation = rows(staff_client, "escalation")

    assert sorted(by_escalation) == sorted([str(first.pk), str(second.pk)])
    one = by_escalation[str(first.pk)]
    assert (one["human_handle_seconds"], one["escalations_handled"]) == (830, 1)
    assert (one["human_messages"], one["human_active_seconds"]) == (1, 190)
    assert (one["model_calls"], one["prompt_tokens"], one["avg_latency_ms"]) == (1, 100, 200)
    assert float(one["cost"]) == 0.001
    two = by_escalation[str(second.pk)]
    assert (two["model_calls"], two["prompt_tokens"], two["human_messages"]) == (1, 20, 0)


def test_it_leaves_open_escalations_out_of_the_escalation_rows(
    staff_client: APIClient, agent: Any
) -> None:
    done = handled_escalation(agent, 30)
    thread, _ = make_thread()
    escalation_services.escalation_open(thread=thread, source="tool", reason="still open")
    assert list(rows(staff_client, "escalation")) == [str(done.pk)]


def test_it_lists_escalation_rows_in_a_constant_number_of_queries(
    staff_client: APIClient, agent: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = staff_client.get("/api/v1/desk/usage/", {"group_by": "escalation"})
        assert response.status_code == 200
        return len(ctx.captured_queries)

    for seconds in (10, 20):
        escalation = handled_escalation(agent, seconds)
        services.human_reply_create(
            thread=Thread.objects.get(pk=escalation.thread_id), user=agent, content="ok"
        )
    few = queries()
    for seconds in range(30, 100, 10):
        handled_escalation(agent, seconds)
    assert queries() == few


def test_it_prints_escalation_rows_from_the_command(agent: Any) -> None:
    escalation = handled_escalation(agent, 75)
    output = report("--group-by", "escalation", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(output)))
    assert [(r["key"], r["human_handle_seconds"]) for r in parsed] == [(str(escalation.pk), "75")]
