"""Event-driven auto-assignment: who gets an escalation, and that capacity always holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from escalations import routing, services
from escalations.models import AgentProfile, Escalation, Queue, RoutingRule
from tests.escalations.ops_helpers import escalate, held_by, make_agent, make_queue
from tests.factories import make_thread
from tests.threads.test_concurrency import run_concurrently
from threads import services as thread_services
from threads.models import Assignment, Thread

# Real commits: assignment runs on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def test_it_assigns_a_new_escalation_to_an_online_agent_member() -> None:
    agent = make_agent("ana")
    make_queue(agents=[agent])
    escalation = escalate()
    escalation.refresh_from_db()
    thread = Thread.objects.get(pk=escalation.thread_id)
    assert (escalation.status, escalation.claimed_by) == ("claimed", agent)
    assert escalation.claimed_at is not None
    assert (thread.responder, thread.assignee) == ("human", agent)
    last = Assignment.objects.filter(thread=thread).last()
    assert (last.assignee, last.assigned_by) == (agent, None)
    assert last.reason.startswith("auto-assigned from queue Support")


def test_it_broadcasts_an_auto_assignment(event_log: Any) -> None:
    agent = make_agent("ana")
    make_queue(agents=[agent])
    escalation = escalate()
    updates = [e for e in event_log.events if e.type == "escalation.updated"]
    assert updates[-1].payload == {"escalation_id": str(escalation.pk), "status": "claimed"}
    assert any(
        e.type == "thread.updated" and e.payload == {"reason": "assigned"} for e in event_log.events
    )


def test_it_runs_the_claimed_hooks_for_an_auto_assignment() -> None:
    seen: list[Any] = []
    services.claimed_hooks.append(seen.append)
    try:
        agent = make_agent("ana")
        make_queue(agents=[agent])
        escalation = escalate()
    finally:
        services.claimed_hooks.remove(seen.append)
    assert [(e.pk, e.claimed_by_id) for e in seen] == [(escalation.pk, agent.pk)]


@pytest.mark.parametrize("status", ["offline", "busy"])
def test_it_does_not_assign_to_an_agent_who_is_not_online(status: str) -> None:
    agent = make_agent("ana")
    services.presence_set(user=agent, status=status)
    make_queue(agents=[agent])
    escalation = escalate()
    escalation.refresh_from_db()
    assert escalation.status == "open"


def test_it_does_not_assign_to_an_agent_whose_presence_went_stale() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from escalations.models import AgentPresence

    agent = make_agent("ana")
    AgentPresence.objects.filter(user=agent).update(
        last_seen_at=timezone.now() - timedelta(minutes=10)
    )
    make_queue(agents=[agent])
    escalation = escalate()
    escalation.refresh_from_db()
    assert escalation.status == "open"


def test_it_does_not_assign_to_members_of_other_queues_or_supervisors() -> None:
    outsider = make_agent("out")
    boss = make_agent("boss")
    make_queue("Other", agents=[outsider], is_default=False)
    queue = make_queue()
    routing.queue_member_add(queue=queue, user=boss, role="supervisor")
    escalation = escalate()
    escalation.refresh_from_db()
    assert escalation.status == "open"


def test_it_does_not_assign_to_an_inactive_or_non_agent_user() -> None:
    inactive = make_agent("gone")
    inactive.is_active = False
    inactive.save()
    customer_like = make_agent("plain")
    customer_like.is_staff = False
    customer_like.save()
    make_queue(agents=[inactive, customer_like])
    escalation = escalate()
    escalation.refresh_from_db()
    assert escalation.status == "open"


def test_it_assigns_to_members_of_the_agents_group() -> None:
    from django.contrib.auth.models import Group

    agent = make_agent("grouped")
    agent.is_staff = False
    agent.save()
    agent.groups.add(Group.objects.create(name="agents"))
    make_queue(agents=[agent])
    escalation = escalate()
    escalation.refresh_from_db()
    assert escalation.claimed_by == agent


def test_it_round_robins_fairly_over_many_escalations() -> None:
    agents = [make_agent(name, capacity=50) for name in ("ana", "bo", "cy")]
    make_queue(agents=agents)
    escalations = [escalate() for _ in range(30)]
    order = [Escalation.objects.get(pk=e.pk).claimed_by_id for e in escalations]
    assert Counter(order) == {agent.pk: 10 for agent in agents}
    # A strict rotation: every window of three has each agent once.
    assert all(len(set(order[i : i + 3])) == 3 for i in range(0, 30, 3))


def test_it_shares_a_backlog_round_robin_between_agents() -> None:
    agents = [make_agent(name, capacity=50) for name in ("ana", "bo", "cy")]
    queue = make_queue(agents=agents, auto_assign=False)
    [escalate() for _ in range(9)]
    routing.queue_set_auto_assign(queue=queue, enabled=True)
    routing.assign_queue(queue.pk)
    assert [held_by(agent) for agent in agents] == [3, 3, 3]


def test_it_gives_work_to_the_least_loaded_agent() -> None:
    agents = [make_agent(name, capacity=20) for name in ("ana", "bo", "cy")]
    queue = make_queue(agents=agents, strategy="least_loaded", auto_assign=False)
    for agent, preload in zip(agents, (0, 3, 6), strict=True):
        for _ in range(preload):
            services.escalation_claim(escalation=escalate(), user=agent)
    routing.queue_set_auto_assign(queue=queue, enabled=True)
    for _ in range(12):
        escalate()
    assert [held_by(agent) for agent in agents] == [7, 7, 7]


def test_it_balances_least_loaded_over_many_escalations() -> None:
    agents = [make_agent(name, capacity=100) for name in ("ana", "bo", "cy", "di")]
    make_queue(agents=agents, strategy="least_loaded")
    escalations = [escalate() for _ in range(40)]
    # Two of them finish some work: the next ones go to them first.
    for escalation in escalations[:8]:
        escalation.refresh_from_db()
        if escalation.claimed_by_id in (agents[0].pk, agents[1].pk):
            services.escalation_resolve(escalation=escalation, user=escalation.claimed_by)
    for _ in range(4):
        escalate()
    assert [held_by(agent) for agent in agents] == [10, 10, 10, 10]


def test_it_never_gives_an_agent_more_than_their_capacity() -> None:
    ana = make_agent("ana", capacity=2)
    bo = make_agent("bo", capacity=3)
    make_queue(agents=[ana, bo])
    escalations = [escalate() for _ in range(8)]
    assert (held_by(ana), held_by(bo)) == (2, 3)
    waiting = Escalation.objects.filter(status="open")
    assert sorted(e.pk for e in waiting) == sorted(e.pk for e in escalations[5:])


def test_it_takes_the_default_capacity_from_the_settings(settings: Any) -> None:
    settings.SUPPORTDESK_AGENT_CAPACITY = 3
    agent = make_agent("ana")
    make_queue(agents=[agent])
    for _ in range(5):
        escalate()
    assert held_by(agent) == 3


def test_it_counts_manual_claims_against_the_capacity() -> None:
    agent = make_agent("ana", capacity=2)
    queue = make_queue(agents=[agent], auto_assign=False)
    services.escalation_claim(escalation=escalate(), user=agent)
    routing.queue_set_auto_assign(queue=queue, enabled=True)
    escalate()
    escalate()
    assert held_by(agent) == 2
    assert Escalation.objects.filter(status="open").count() == 1


def test_it_still_lets_an_agent_claim_beyond_capacity_by_hand() -> None:
    agent = make_agent("ana", capacity=1)
    make_queue(agents=[agent])
    escalate()
    extra = escalate()
    services.escalation_claim(escalation=extra, user=agent)
    extra.refresh_from_db()
    assert (extra.status, extra.claimed_by) == ("claimed", agent)
    assert held_by(agent) == 2


def test_it_takes_the_highest_priority_then_the_oldest_first() -> None:
    agent = make_agent("ana", capacity=3, online=False)
    make_queue(agents=[agent])
    old_normal = escalate()
    new_normal = escalate()
    thread, _ = make_thread()
    thread_services.thread_update(thread=thread, priority="urgent")
    urgent = escalate(thread)
    low_thread, _ = make_thread()
    thread_services.thread_update(thread=low_thread, priority="low")
    escalate(low_thread)
    services.presence_set(user=agent, status="online")
    claimed = set(Escalation.objects.filter(claimed_by=agent).values_list("pk", flat=True))
    assert claimed == {urgent.pk, old_normal.pk, new_normal.pk}


def test_it_gives_an_agent_coming_online_the_oldest_waiting_escalation() -> None:
    agent = make_agent("ana", capacity=1, online=False)
    make_queue(agents=[agent])
    oldest, _newer = escalate(), escalate()
    services.presence_set(user=agent, status="online")
    oldest.refresh_from_db()
    assert (oldest.status, oldest.claimed_by) == ("claimed", agent)
    assert held_by(agent) == 1


@pytest.mark.parametrize("how", ["connect", "heartbeat"])
def test_it_assigns_when_the_desk_socket_brings_an_agent_online(how: str) -> None:
    agent = make_agent("ana", online=False)
    make_queue(agents=[agent])
    escalation = escalate()
    if how == "connect":
        services.presence_connect(user=agent)
    else:
        services.presence_set(user=agent, status="offline")
        services.presence_heartbeat(user=agent)
    escalation.refresh_from_db()
    assert escalation.claimed_by == agent


def test_it_gives_freed_capacity_to_the_oldest_waiting_escalation() -> None:
    agent = make_agent("ana", capacity=1)
    make_queue(agents=[agent])
    first = escalate()
    second, third = escalate(), escalate()
    services.escalation_resolve(escalation=Escalation.objects.get(pk=first.pk), user=agent)
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.status, second.claimed_by) == ("claimed", agent)
    assert third.status == "open"


def test_it_gives_freed_capacity_from_any_of_the_agents_queues() -> None:
    agent = make_agent("ana", capacity=1)
    make_queue("General", agents=[agent])
    billing = make_queue("Billing", agents=[agent], is_default=False)
    RoutingRule.objects.create(queue=billing, keywords="refund")
    first = escalate(reason="late")
    refund = escalate(reason="refund")
    services.escalation_resolve(escalation=Escalation.objects.get(pk=first.pk), user=agent)
    refund.refresh_from_db()
    assert refund.claimed_by == agent


def test_it_raises_capacity_and_hands_out_waiting_work() -> None:
    agent = make_agent("ana", capacity=1)
    make_queue(agents=[agent])
    for _ in range(3):
        escalate()
    routing.agent_profile_set_capacity(user=agent, max_open=3)
    assert held_by(agent) == 3
    assert AgentProfile.objects.get(user=agent).max_open == 3


def test_it_does_not_hand_a_thread_a_human_took_over_to_someone_else() -> None:
    ana = make_agent("ana", online=False)
    replier = make_agent("rex", online=False)
    make_queue(agents=[ana])
    escalation = escalate()
    thread = Thread.objects.get(pk=escalation.thread_id)
    thread_services.human_reply_create(thread=thread, user=replier, content="On it")
    services.presence_set(user=ana, status="online")
    escalation.refresh_from_db()
    thread.refresh_from_db()
    assert escalation.status == "open"
    assert thread.assignee == replier


def test_it_does_not_assign_an_escalation_of_a_closed_thread() -> None:
    agent = make_agent("ana", online=False)
    make_queue(agents=[agent])
    escalation = escalate()
    thread = Thread.objects.get(pk=escalation.thread_id)
    thread_services.thread_set_status(thread=thread, status="closed")
    services.presence_set(user=agent, status="online")
    escalation.refresh_from_db()
    assert escalation.status == "open"


def _go_online(user: Any) -> None:
    """Online without the presence hook (so nothing is assigned before we measure)."""
    from django.utils import timezone

    from escalations.models import AgentPresence

    AgentPresence.objects.update_or_create(
        user=user, defaults={"status": "online", "last_seen_at": timezone.now()}
    )


def _queries_of_one_queue_run(agents: int, backlog: int) -> tuple[int, int]:
    people = [make_agent(f"q{agents}-{n}", capacity=backlog, online=False) for n in range(agents)]
    queue = make_queue(f"Q{agents}", agents=people, is_default=False)
    RoutingRule.objects.create(queue=queue, keywords=f"word{agents}")
    for _ in range(backlog):
        escalate(reason=f"word{agents}")
    for person in people:
        _go_online(person)
    # Inside an outer transaction: the broadcasts rendered on commit are not counted.
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        claimed = routing.assign_queue(queue.pk)
    return len(ctx.captured_queries), len(claimed)


def test_it_assigns_a_queue_in_a_constant_number_of_queries(monkeypatch: Any) -> None:
    # The assignment's own queries: other features' claimed hooks cost what they cost.
    monkeypatch.setattr(services, "claimed_hooks", [])
    small, claimed_small = _queries_of_one_queue_run(agents=2, backlog=4)
    large, claimed_large = _queries_of_one_queue_run(agents=12, backlog=60)
    assert (claimed_small, claimed_large) == (4, 60)
    assert small == large


def test_it_fills_an_agent_in_a_constant_number_of_queries(monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "claimed_hooks", [])

    def run(count: int, name: str) -> int:
        agent = make_agent(name, capacity=count, online=False)
        queue = make_queue(name, agents=[agent], is_default=False)
        RoutingRule.objects.create(queue=queue, keywords=name)
        for _ in range(count):
            escalate(reason=name)
        _go_online(agent)
        with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
            assert len(routing.assign_agent(agent.pk)) == count
        return len(ctx.captured_queries)

    assert run(2, "few") == run(40, "many")


def _queries_of_one_opening(name: str, *, agents: int, auto_assign: bool) -> tuple[int, Any]:
    """Queries of one ``escalation_open`` into a queue of ``agents`` online agents, each
    already holding one escalation (the broadcasts rendered on commit not counted)."""
    people = [make_agent(f"{name}{n}", capacity=3) for n in range(agents)]
    queue = make_queue(name, agents=people, is_default=False, auto_assign=auto_assign)
    RoutingRule.objects.create(queue=queue, keywords=name)
    for person in people:
        services.escalation_claim(escalation=escalate(reason=name), user=person)
    thread, _ = make_thread()
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        escalation, _ = services.escalation_open(thread=thread, source="tool", reason=name)
    escalation.refresh_from_db()
    return len(ctx.captured_queries), escalation


def test_it_assigns_a_new_escalation_in_four_queries_inside_its_own_transaction(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(services, "claimed_hooks", [])
    runs: list[Any] = []

    def late_run(*args: Any, **kwargs: Any) -> list[Escalation]:
        runs.append(args)
        return []

    monkeypatch.setattr(routing, "assign_queue", late_run)
    baseline, waiting = _queries_of_one_opening("manual", agents=2, auto_assign=False)
    few, assigned = _queries_of_one_opening("few", agents=2, auto_assign=True)
    many, assigned_too = _queries_of_one_opening("many", agents=12, auto_assign=True)
    assert waiting.status == "open"
    assert (assigned.status, assigned_too.status) == ("claimed", "claimed")
    # The agent, the thread, its Assignment row, the agent's cursor: the claim itself
    # rides on the routing's UPDATE of the escalation. No run after the commit.
    assert few - baseline <= 4
    assert many == few
    assert runs == []


def test_it_leaves_a_new_escalation_to_a_queue_run_when_nobody_has_room() -> None:
    agent = make_agent("ana", capacity=1)
    make_queue(agents=[agent])
    first = escalate()
    second = escalate()
    assert (first.status, second.status) == ("claimed", "open")
    services.escalation_resolve(escalation=first, user=agent)
    second.refresh_from_db()
    assert (second.status, second.claimed_by) == ("claimed", agent)


def test_it_leaves_a_new_escalation_to_the_human_who_took_the_thread_over_meanwhile() -> None:
    ana = make_agent("ana")
    make_queue(agents=[ana])
    replier = make_agent("sam", online=False)
    thread, _ = make_thread()
    services.escalation_resolve(escalation=escalate(thread), user=ana)  # human, unassigned
    Thread.objects.filter(pk=thread.pk).update(assignee=None)
    stale = Thread.objects.select_related("customer").get(pk=thread.pk)
    # Someone replies (and so takes the thread) after the escalating code read the thread.
    thread_services.human_reply_create(thread=thread, user=replier, content="On it.")
    escalation, _ = services.escalation_open(thread=stale, source="tool", reason="again")
    escalation.refresh_from_db()
    assert (escalation.status, escalation.claimed_by) == ("open", None)
    assert escalation.queue is not None
    assert Thread.objects.get(pk=thread.pk).assignee == replier


def test_it_never_assigns_over_capacity_when_escalations_open_concurrently() -> None:
    capacity, workers, each = 2, 6, 2
    agents = [make_agent(f"o{n}", capacity=capacity) for n in range(3)]
    make_queue(agents=agents)
    threads = [make_thread()[0] for _ in range(workers * each)]

    def work(index: int) -> list[str]:
        opened = []
        for thread in threads[index * each : (index + 1) * each]:
            escalation, _ = services.escalation_open(
                thread=thread, source="tool", reason="needs a person"
            )
            opened.append(escalation.status)
        return opened

    results = run_concurrently(workers, work)
    assert all(isinstance(r, list) for r in results), results
    assert [held_by(agent) for agent in agents] == [capacity] * 3
    per_thread = Counter(
        Assignment.objects.filter(reason__startswith="auto-assigned").values_list(
            "thread_id", flat=True
        )
    )
    assert sum(per_thread.values()) == 3 * capacity
    assert max(per_thread.values()) == 1
    claimed = Escalation.objects.filter(status="claimed")
    assert sorted(claimed.values_list("thread_id", flat=True)) == sorted(per_thread)
    assert Escalation.objects.filter(status="open").count() == workers * each - 3 * capacity


def test_it_never_assigns_twice_or_over_capacity_under_concurrency() -> None:
    capacity, backlog = 3, 40
    agents = [make_agent(f"c{n}", capacity=capacity, online=False) for n in range(4)]
    queue = make_queue(agents=agents)
    escalations = [escalate() for _ in range(backlog)]

    def work(index: int) -> int:
        # Each thread: its agent comes online (an assignment run), another run over the
        # whole queue, a manual claim attempt on the oldest waiting, and a resolution
        # that frees capacity (another run) — all racing the other three.
        agent = agents[index]
        services.presence_set(user=agent, status="online")
        routing.assign_queue(queue.pk)
        mine = Escalation.objects.filter(claimed_by=agent, status="claimed").first()
        if mine is not None:
            services.escalation_resolve(escalation=mine, user=agent)
        routing.assign_agent(agent.pk)
        return held_by(agent)

    results = run_concurrently(4, work)
    assert all(isinstance(r, int) for r in results), results
    for agent in agents:
        assert held_by(agent) <= capacity
    assert sum(held_by(agent) for agent in agents) == 4 * capacity
    auto = Assignment.objects.filter(reason__startswith="auto-assigned")
    threads = Counter(auto.values_list("thread_id", flat=True))
    # Each thread was handed out once (a resolved one is never handed out again).
    assert max(threads.values()) == 1
    claimed = Escalation.objects.filter(status__in=["claimed", "resolved"])
    assert claimed.count() == len(threads)
    assert len(escalations) == backlog


def test_it_keeps_capacity_with_concurrent_claims_and_assigners() -> None:
    capacity = 2
    agents = [make_agent(f"m{n}", capacity=capacity) for n in range(4)]
    queue = make_queue(agents=agents, auto_assign=False)
    escalations = [escalate() for _ in range(30)]
    # Switched on without its trigger: the four runs below are the only assigners.
    Queue.objects.filter(pk=queue.pk).update(auto_assign=True)

    def work(index: int) -> list[str]:
        outcomes = []
        for _ in range(3):
            outcomes.append(str(len(routing.assign_queue(queue.pk))))
        return outcomes

    results = run_concurrently(4, work)
    assert all(isinstance(r, list) for r in results), results
    assert [held_by(agent) for agent in agents] == [capacity] * 4
    per_thread = Counter(
        Assignment.objects.filter(reason__startswith="auto-assigned").values_list(
            "thread_id", flat=True
        )
    )
    assert sum(per_thread.values()) == 4 * capacity
    assert max(per_thread.values()) == 1
    assert Escalation.objects.filter(status="open").count() == len(escalations) - 4 * capacity
