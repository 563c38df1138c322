"""SLA clocks: due dates in business hours, pauses while the customer owes a reply, and
the sweeper's warnings and breaches (once each)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from escalations import services, sla
from escalations.models import (
    BusinessHours,
    BusinessHoursRange,
    Escalation,
    QueueRole,
    SLABreach,
)
from tests.escalations.ops_helpers import escalate, make_agent, make_policy, make_queue
from tests.factories import UserFactory
from threads import services as thread_services
from threads.models import AuthorKind, Message, Role, Thread

pytestmark = pytest.mark.django_db

HOUR = 3600


def nine_to_five(name: str = "Office", zone: str = "UTC") -> BusinessHours:
    hours = BusinessHours.objects.create(name=name, timezone=zone)
    for weekday in range(5):
        BusinessHoursRange.objects.create(hours=hours, weekday=weekday, start=time(9), end=time(17))
    return hours


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def thread_of(escalation: Escalation) -> Thread:
    return Thread.objects.select_related("customer").get(pk=escalation.thread_id)


@pytest.fixture
def queue() -> Any:
    return make_queue(policy=make_policy(first=HOUR, next=HOUR // 2))


# --- Due dates --------------------------------------------------------------------------


def test_it_sets_the_first_response_due_on_the_escalation_and_the_thread(queue: Any) -> None:
    escalation = escalate()
    due = escalation.created_at + timedelta(hours=1)
    assert (escalation.sla_target, escalation.sla_due_at) == ("first_response", due)
    assert escalation.sla_started_at == escalation.created_at
    assert escalation.sla_check_at == escalation.created_at + timedelta(minutes=48)
    assert thread_of(escalation).sla_due_at == due


def test_it_sets_no_clock_without_a_policy() -> None:
    make_queue()
    escalation = escalate()
    assert (escalation.sla_target, escalation.sla_due_at, escalation.sla_check_at) == (
        "",
        None,
        None,
    )
    assert thread_of(escalation).sla_due_at is None


def test_it_sets_no_clock_for_a_priority_without_a_target() -> None:
    make_queue(policy=make_policy(priorities=("urgent",)))
    escalation = escalate()
    assert escalation.sla_due_at is None


def test_it_uses_the_target_of_the_escalation_priority() -> None:
    policy = make_policy(priorities=())
    policy.targets.create(priority="high", first_response_seconds=600)
    make_queue(policy=policy, default_priority="high")
    escalation = escalate()
    assert escalation.sla_due_at == escalation.created_at + timedelta(minutes=10)


def test_it_counts_only_business_hours() -> None:
    calendar = sla.calendar_of(nine_to_five())
    assert calendar is not None
    friday_four_pm = at("2026-11-27 16:00")
    assert calendar.add(friday_four_pm, 2 * HOUR) == at("2026-11-30 10:00")
    assert calendar.add(at("2026-11-25 10:00"), 2 * HOUR) == at("2026-11-25 12:00")


def test_it_starts_counting_at_the_next_opening() -> None:
    calendar = sla.calendar_of(nine_to_five())
    assert calendar is not None
    saturday_noon = at("2026-11-28 12:00")
    assert calendar.add(saturday_noon, 30 * 60) == at("2026-11-30 09:30")
    assert calendar.add(at("2026-11-25 07:00"), 0) == at("2026-11-25 09:00")


def test_it_counts_business_hours_in_their_timezone_across_a_dst_change() -> None:
    calendar = sla.calendar_of(nine_to_five("Paris", "Europe/Paris"))
    assert calendar is not None
    # Clocks go forward on Sunday 29 March 2026: Friday is UTC+1, Monday UTC+2.
    friday = at("2026-03-27 16:00", "Europe/Paris")
    due = calendar.add(friday, 2 * HOUR)
    assert due == at("2026-03-30 10:00", "Europe/Paris")
    assert due == at("2026-03-30 08:00")


def test_it_supports_a_range_until_midnight() -> None:
    hours = BusinessHours.objects.create(name="Late")
    BusinessHoursRange.objects.create(hours=hours, weekday=2, start=time(20), end=time(0))
    calendar = sla.calendar_of(hours)
    assert calendar is not None
    wednesday_ten_pm = at("2026-11-25 22:00")
    assert calendar.add(wednesday_ten_pm, 3 * HOUR) == at("2026-12-02 21:00")


def test_it_treats_hours_without_ranges_as_around_the_clock() -> None:
    assert sla.calendar_of(BusinessHours.objects.create(name="Empty")) is None


def test_it_uses_the_policy_business_hours_for_the_due_date() -> None:
    policy = make_policy(first=HOUR, business_hours=nine_to_five())
    queue = make_queue(policy=policy)
    start = at("2026-11-27 16:30")  # a Friday afternoon
    fields = sla.first_response_clock(queue=queue, priority="normal", started=start)
    assert fields["sla_due_at"] == at("2026-11-30 09:30")
    # 80 % of an hour is 48 minutes: 30 on Friday, 18 on Monday.
    assert fields["sla_check_at"] == at("2026-11-30 09:18")


def test_it_prefers_the_queue_business_hours_over_the_policy_ones() -> None:
    policy = make_policy(first=HOUR, business_hours=nine_to_five())
    queue = make_queue(policy=policy, business_hours=nine_to_five("NY", "America/New_York"))
    start = at("2026-11-27 16:30")  # 11:30 in New York
    fields = sla.first_response_clock(queue=queue, priority="normal", started=start)
    assert fields["sla_due_at"] == at("2026-11-27 17:30")


# --- Pauses ----------------------------------------------------------------------------


def test_it_stops_the_clock_when_a_human_replies(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="Hi")
    escalation.refresh_from_db()
    assert (escalation.sla_target, escalation.sla_due_at, escalation.sla_check_at) == (
        "",
        None,
        None,
    )
    assert thread_of(escalation).sla_due_at is None


def test_it_starts_the_next_response_clock_on_a_customer_message(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="Hi")
    message = thread_services.customer_message_create(thread=thread_of(escalation), content="?")
    escalation.refresh_from_db()
    due = message.created_at + timedelta(minutes=30)
    assert (escalation.sla_target, escalation.sla_started_at) == (
        "next_response",
        message.created_at,
    )
    assert escalation.sla_due_at == due
    assert thread_of(escalation).sla_due_at == due


def test_it_runs_the_clock_from_the_first_unanswered_customer_message(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="Hi")
    first = thread_services.customer_message_create(thread=thread_of(escalation), content="a")
    thread_services.customer_message_create(thread=thread_of(escalation), content="b")
    escalation.refresh_from_db()
    assert escalation.sla_due_at == first.created_at + timedelta(minutes=30)


def test_it_does_not_count_time_waiting_on_the_customer(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="Hi")
    # The customer takes days to answer: nothing is due, nothing breaches meanwhile.
    assert sla.sla_sweep(now=timezone.now() + timedelta(days=3)) == {
        "warned": 0,
        "breached": 0,
        "met": 0,
    }
    message = thread_services.customer_message_create(thread=thread_of(escalation), content="?")
    escalation.refresh_from_db()
    assert escalation.sla_due_at == message.created_at + timedelta(minutes=30)
    assert not SLABreach.objects.exists()


def test_it_starts_no_clock_on_an_ai_owned_thread(queue: Any) -> None:
    from tests.factories import make_thread

    thread, _ = make_thread()
    with CaptureQueriesContext(connection) as ctx:
        sla.on_customer_message(
            thread_services.message_create(
                thread=thread, role=Role.USER, author_kind=AuthorKind.CUSTOMER, content="hi"
            )
        )
    assert not any("escalations_escalation" in q["sql"] for q in ctx.captured_queries)


def test_it_stops_the_clock_when_the_escalation_is_resolved(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    services.escalation_resolve(escalation=escalation, user=agent)
    escalation.refresh_from_db()
    assert (escalation.sla_due_at, escalation.sla_check_at) == (None, None)
    assert thread_of(escalation).sla_due_at is None
    assert sla.sla_sweep(now=timezone.now() + timedelta(days=1))["breached"] == 0


# --- The sweeper ----------------------------------------------------------------------


@pytest.fixture
def hooks() -> Any:
    calls: dict[str, list[Any]] = {"warning": [], "breach": []}

    def on_warning(escalation: Escalation, warning: sla.SLAWarning) -> None:
        calls["warning"].append((escalation.pk, warning.target, warning.due_at))

    def on_breach(escalation: Escalation, breach: SLABreach) -> None:
        calls["breach"].append((escalation.pk, breach.target))

    sla.sla_warning_hooks.append(on_warning)
    sla.sla_breach_hooks.append(on_breach)
    yield calls
    sla.sla_warning_hooks.remove(on_warning)
    sla.sla_breach_hooks.remove(on_breach)


def test_it_warns_at_80_percent_of_the_target_once(queue: Any, hooks: Any) -> None:
    escalation = escalate()
    assert sla.sla_sweep(now=escalation.created_at + timedelta(minutes=47))["warned"] == 0
    assert sla.sla_sweep(now=escalation.created_at + timedelta(minutes=50))["warned"] == 1
    assert sla.sla_sweep(now=escalation.created_at + timedelta(minutes=55))["warned"] == 0
    escalation.refresh_from_db()
    assert escalation.sla_check_at == escalation.sla_due_at
    assert hooks["warning"] == [(escalation.pk, "first_response", escalation.sla_due_at)]
    assert hooks["breach"] == []


def test_it_records_a_breach_once(queue: Any, hooks: Any) -> None:
    escalation = escalate()
    later = escalation.created_at + timedelta(hours=2)
    assert sla.sla_sweep(now=later) == {"warned": 1, "breached": 1, "met": 0}
    assert sla.sla_sweep(now=later + timedelta(hours=1)) == {
        "warned": 0,
        "breached": 0,
        "met": 0,
    }
    breach = SLABreach.objects.get()
    assert (breach.escalation_id, breach.target, breach.queue) == (
        escalation.pk,
        "first_response",
        queue,
    )
    assert (breach.due_at, breach.breached_at, breach.priority) == (
        escalation.sla_due_at,
        later,
        "normal",
    )
    assert hooks["breach"] == [(escalation.pk, "first_response")]
    escalation.refresh_from_db()
    assert escalation.sla_breached_at == later
    assert escalation.sla_check_at is None


def test_it_raises_the_priority_on_a_breach(queue: Any) -> None:
    escalation = escalate()
    sla.sla_sweep(now=escalation.created_at + timedelta(hours=2))
    escalation.refresh_from_db()
    assert escalation.priority == "high"
    assert thread_of(escalation).priority == "high"


def test_it_broadcasts_a_breach(
    queue: Any, event_log: Any, django_capture_on_commit_callbacks: Any
) -> None:
    escalation = escalate()
    with django_capture_on_commit_callbacks(execute=True):
        sla.sla_sweep(now=escalation.created_at + timedelta(hours=2))
    breached = [e for e in event_log.events if e.type == "sla.breached"]
    assert [e.payload for e in breached] == [
        {
            "escalation_id": str(escalation.pk),
            "target": "first_response",
            "due_at": escalation.sla_due_at.isoformat(),
            "priority": "high",
        }
    ]
    assert breached[0].thread_id == str(escalation.thread_id)
    assert "escalation.updated" in event_log.types()


def test_it_records_a_missed_next_response_as_its_own_breach(queue: Any) -> None:
    escalation = escalate()
    sla.sla_sweep(now=escalation.created_at + timedelta(hours=2))
    agent = UserFactory(username="ana")
    thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="Hi")
    message = thread_services.customer_message_create(thread=thread_of(escalation), content="?")
    assert sla.sla_sweep(now=message.created_at + timedelta(hours=1))["breached"] == 1
    assert sorted(SLABreach.objects.values_list("target", flat=True)) == [
        "first_response",
        "next_response",
    ]
    escalation.refresh_from_db()
    assert escalation.priority == "urgent"


def test_it_records_each_target_once_per_escalation(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    for _ in range(2):
        thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="x")
        message = thread_services.customer_message_create(thread=thread_of(escalation), content="?")
        sla.sla_sweep(now=message.created_at + timedelta(hours=1))
    assert list(SLABreach.objects.values_list("target", flat=True)) == ["next_response"]


def test_it_does_not_breach_a_target_met_in_time(queue: Any, hooks: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.human_reply_create(thread=thread_of(escalation), user=agent, content="Hi")
    assert sla.sla_sweep(now=escalation.created_at + timedelta(hours=5))["breached"] == 0
    assert not SLABreach.objects.exists()
    assert hooks == {"warning": [], "breach": []}


def test_it_notices_a_reply_that_bypassed_the_hook(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.message_create(
        thread=thread_of(escalation),
        role=Role.ASSISTANT,
        author_kind=AuthorKind.HUMAN,
        author_user=agent,
        content="Answered elsewhere",
        provider="human",
    )
    assert sla.sla_sweep(now=escalation.created_at + timedelta(hours=2)) == {
        "warned": 0,
        "breached": 0,
        "met": 1,
    }
    escalation.refresh_from_db()
    assert (escalation.sla_target, escalation.sla_due_at) == ("", None)
    assert not SLABreach.objects.exists()


def test_it_restarts_the_clock_for_a_customer_message_after_a_missed_reply(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread = thread_of(escalation)
    thread_services.message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.HUMAN,
        author_user=agent,
        content="Answered elsewhere",
        provider="human",
    )
    waiting = thread_services.message_create(
        thread=thread, role=Role.USER, author_kind=AuthorKind.CUSTOMER, content="and?"
    )
    sla.sla_sweep(now=escalation.created_at + timedelta(minutes=50))
    escalation.refresh_from_db()
    assert escalation.sla_target == "next_response"
    assert escalation.sla_due_at == waiting.created_at + timedelta(minutes=30)


def test_it_reads_only_due_rows(queue: Any) -> None:
    due = [escalate() for _ in range(2)]
    when = max(e.created_at for e in due) + timedelta(hours=2)

    def sweep_queries() -> int:
        Escalation.objects.filter(pk__in=[e.pk for e in due]).update(
            sla_check_at=when - timedelta(minutes=1), sla_target="first_response"
        )
        SLABreach.objects.all().delete()
        with CaptureQueriesContext(connection) as ctx:
            assert sla.sla_sweep(now=when)["breached"] == 2
        return len(ctx.captured_queries)

    few = sweep_queries()
    later = [escalate() for _ in range(10)]
    Escalation.objects.filter(pk__in=[e.pk for e in later]).update(
        sla_check_at=when + timedelta(minutes=1)
    )
    assert sweep_queries() == few
    for escalation in later:
        escalation.refresh_from_db()
        assert escalation.sla_breached_at is None
        assert escalation.priority == "normal"


def test_it_plans_the_due_rows_query_on_the_sla_index() -> None:
    when = timezone.now()
    sql, params = sla.due_rows(when).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")  # a tiny table: show the index is usable
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(row[0] for row in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "escalation_sla_check_idx" in plan


def test_it_sweeps_beside_every_worker(queue: Any) -> None:
    from supportdesk.agent.worker import sweep_once

    escalation = escalate()
    past = timezone.now() - timedelta(minutes=1)
    Escalation.objects.filter(pk=escalation.pk).update(sla_check_at=past, sla_due_at=past)
    counts = sweep_once("test-worker")
    assert counts["breached"] == 1
    assert SLABreach.objects.filter(escalation=escalation).exists()


def test_it_names_the_supervisors_to_notify() -> None:
    agent = make_agent("ana")
    boss = UserFactory(username="boss")
    queue = make_queue(agents=[agent])
    from escalations import routing

    routing.queue_member_add(queue=queue, user=boss, role=QueueRole.SUPERVISOR)
    assert list(sla.queue_supervisors(queue.pk)) == [boss]


def test_it_raises_priorities_one_step_up_to_urgent() -> None:
    assert [sla.raised(p) for p in ("low", "normal", "high", "urgent")] == [
        "normal",
        "high",
        "urgent",
        "urgent",
    ]


def test_it_keeps_the_clock_of_a_claimed_escalation_running(queue: Any) -> None:
    escalation = escalate()
    services.escalation_claim(escalation=escalation, user=UserFactory(username="ana"))
    assert sla.sla_sweep(now=escalation.created_at + timedelta(hours=2))["breached"] == 1


def test_it_counts_a_public_reply_only(queue: Any) -> None:
    escalation = escalate()
    agent = UserFactory(username="ana")
    thread_services.internal_note_create(thread=thread_of(escalation), user=agent, content="hm")
    escalation.refresh_from_db()
    assert escalation.sla_target == "first_response"
    assert Message.objects.filter(thread_id=escalation.thread_id, visibility="internal").exists()


def test_it_computes_due_dates_with_utc_instants() -> None:
    calendar = sla.calendar_of(nine_to_five())
    assert calendar is not None
    assert calendar.add(at("2026-11-25 10:00"), 60).tzinfo is not None
    assert calendar.add(datetime(2026, 11, 25, 10, tzinfo=UTC), 60) == at("2026-11-25 10:01")
