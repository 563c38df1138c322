"""Queues and auto-assignment: which people get an escalation, and when.

**Routing.** A new escalation goes to the queue of the first active ``RoutingRule`` (by
``position``) whose conditions all match — the thread's priority, the escalation's
source, a keyword of the reason, the customer's tier, the escalation's topic — else to
the default queue, else nowhere (then only a manual claim picks it up). The queue's default priority is a floor for its escalations;
its SLA policy starts the first-response clock (``escalations.sla``).

**Auto-assignment** is event-driven, never on a timer. It runs:

- when an escalation opens in a queue with ``auto_assign`` on: inside the opening
  transaction if an online agent member has room (``_assign_new``), else after the
  commit (``assign_queue``);
- after the commit of an agent coming online, and of an agent's escalation being
  resolved, which frees capacity (``assign_agent``);
- after the commit of a supervisor turning ``auto_assign`` back on, a member joining, a
  capacity raise (``assign_queue``), and ``manage.py assign_backlog``.

Each run hands the waiting escalations — highest priority first, then oldest — to online
agent members of the queue who hold fewer than their capacity of claimed escalations
(``AgentProfile.max_open``, default ``SUPPORTDESK_AGENT_CAPACITY``), round-robin (the
agent assigned least recently goes next) or least-loaded (fewest held, then least
recently assigned). A manual claim stays possible and is not limited.

Why runs happen after the commit: the trigger (a customer's handoff, an agent's
presence heartbeat, a resolution) must not wait on agents' locks because of assignment,
and waiting escalations have to be visible to every assigner before anyone can pick
them. The one exception is the new escalation itself, which nobody else can see yet: the
opening transaction gives it to the next agent with room whose row it can lock without
waiting (``SKIP LOCKED``), and otherwise leaves it to the run after its commit. An
assignment lost to a crash between a commit and its callback is picked up by the next
trigger or ``assign_backlog``.

**Concurrency.** An assignment run locks the candidate agents' ``AgentProfile`` rows (in
primary-key order, so runs never deadlock), counts what each holds *after* taking the
locks (so it sees every committed assignment), takes the waiting escalations with
``FOR UPDATE SKIP LOCKED`` together with their threads (so it never waits on a row that
a reply, a claim or another run holds), and claims them with one conditional update
(``status = 'open'``) checked by row count. On SQLite the ``IMMEDIATE`` transaction
serialises runs instead. Runs that find every agent locked wait for that lock: that is
what keeps a waiting escalation from being missed by two concurrent runs.

**Cost.** One run is a constant number of queries whatever the number of agents and
escalations it handles (no per-row query): agents, their load, the escalations, one
bulk update of escalations, of threads and of agents, one insert of Assignment rows.
A new escalation handed out in its own transaction costs four queries more than one
that waits: the agent, the thread, the Assignment row and the agent's cursor (the claim
is part of the routing's UPDATE of the escalation).
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from escalations import services as escalation_services
from escalations import sla
from escalations.models import (
    AgentPresence,
    AgentProfile,
    AssignStrategy,
    Escalation,
    EscalationStatus,
    PresenceStatus,
    Queue,
    QueueMember,
    QueueRole,
    RoutingRule,
)
from threads import events
from threads import services as thread_services
from threads.models import Thread, ThreadStatus

logger = logging.getLogger(__name__)

# Escalations one run claims in one transaction at most (the rest in the next run).
ASSIGN_BATCH = 500

_NEVER = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


# --- Routing --------------------------------------------------------------------------


def rule_matches(
    rule: RoutingRule,
    *,
    priority: str,
    source: str,
    reason: str,
    tier: str | Callable[[], str] = "",
    topic: str = "",
) -> bool:
    """Every condition the rule sets holds (a rule without conditions matches all).
    ``tier`` may be a callable, asked only when the rule has a tier condition."""
    if rule.priority and rule.priority != priority:
        return False
    if rule.source and rule.source != source:
        return False
    if rule.topic and rule.topic != topic:
        return False
    words = rule.keyword_list()
    if words:
        text = reason.casefold()
        if not any(word in text for word in words):
            return False
    # Last: reading the tier may cost a query.
    return not rule.tier or rule.tier == (tier() if callable(tier) else tier)


def route(
    *,
    priority: str,
    source: str,
    reason: str,
    tier: str | Callable[[], str] = "",
    topic: str = "",
) -> Queue | None:
    """The queue for a new escalation (one or two queries): the first matching active
    rule's, else the default queue, else None."""
    rules = RoutingRule.objects.filter(is_active=True).select_related(
        "queue",
        "queue__business_hours",
        "queue__sla_policy",
        "queue__sla_policy__business_hours",
    )
    for rule in rules.order_by("position", "id"):
        if rule_matches(
            rule, priority=priority, source=source, reason=reason, tier=tier, topic=topic
        ):
            return rule.queue
    return (
        Queue.objects.select_related("business_hours", "sla_policy", "sla_policy__business_hours")
        .filter(is_default=True)
        .first()
    )


def queue_for(thread: Thread, source: str, reason: str, topic: str = "") -> Queue | None:
    """``escalation_services.queue_router``: the queue a new escalation of ``thread``
    joins, chosen before the rate limits (whose per-queue bucket is this queue's) and
    stored on the escalation when it is created. The customer's tier is read only if a
    rule asks for it (callers usually hold the customer already)."""
    return route(
        priority=thread.priority,
        source=source,
        reason=reason,
        tier=lambda: thread.customer.tier,
        topic=topic,
    )


def on_escalation_opened(escalation: Escalation) -> None:
    """``opened_hooks``: the escalation is in its queue (``queue_for``); raise its
    priority to the queue's floor, start its first-response clock (on the escalation and
    the thread) and, if the queue assigns automatically, hand it to an agent.

    The hand-out happens here, in the escalation's own transaction, when an online agent
    member has room (``_assign_new``: four queries, the claim itself folded into the
    routing's UPDATE). When nobody has room, or the candidate changed under us, the
    escalation waits and a queue run after the commit (``assign_queue``) tries again:
    that run locks the agents and so sees every capacity freed meanwhile.
    """
    queue = escalation.queue
    if queue is None:
        return
    thread = escalation.thread
    priority = sla.higher(escalation.priority, queue.default_priority)
    fields: dict[str, Any] = {"priority": priority}
    fields |= sla.first_response_clock(
        queue=queue, priority=priority, started=escalation.created_at
    )
    outcome = ""
    if queue.auto_assign and thread.assignee_id is None and thread.status != ThreadStatus.CLOSED:
        outcome = _assign_new(escalation, queue, fields)
    if not outcome:
        Escalation.objects.filter(pk=escalation.pk).update(**fields)
    for name, value in fields.items():
        setattr(escalation, name, value)
    if fields["sla_due_at"] is not None:
        # The thread's copy for the desk (escalation_open broadcasts thread.updated).
        Thread.objects.filter(pk=thread.pk).update(sla_due_at=fields["sla_due_at"])
        thread.sla_due_at = fields["sla_due_at"]
    if queue.auto_assign and outcome != CLAIMED:
        after_commit(assign_queue, queue.pk)


def _held(user_ref: Any) -> Subquery:
    """How many escalations ``user_ref`` (a user id or an OuterRef to one) holds."""
    return Subquery(
        Escalation.objects.filter(status=EscalationStatus.CLAIMED, claimed_by_id=user_ref)
        .order_by()
        .values("claimed_by_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )


def _pick_new(queue: Queue, now: datetime) -> AgentProfile | None:
    """The online agent member of ``queue`` next in line by its strategy who has room,
    with their profile row locked — ``SKIP LOCKED``: an agent another assigner is
    handing work to right now is passed over, never waited for. One query.

    The load read here is only a preference (on PostgreSQL it is as of the start of the
    statement, not of the lock); the claim re-counts it under the lock."""
    members = QueueMember.objects.filter(
        queue_id=queue.pk, role=QueueRole.AGENT, user_id=OuterRef("user_id")
    )
    cursor = F("last_assigned_at").asc(nulls_first=True)
    order: list[Any] = [cursor, "pk"]
    if queue.strategy == AssignStrategy.LEAST_LOADED:
        order = ["load", cursor, "pk"]
    return (
        eligible_profiles(now)
        .filter(Exists(members))
        .annotate(load=Coalesce(_held(OuterRef("user_id")), 0))
        .filter(load__lt=Coalesce("max_open", Value(settings.SUPPORTDESK_AGENT_CAPACITY)))
        .select_related("user")
        .order_by(*order)
        .select_for_update(skip_locked=True, of=("self",))
        .first()
    )


CLAIMED = "claimed"  # _assign_new: claimed, routing fields written
WRITTEN = "written"  # _assign_new: not claimed, routing fields written


def _assign_new(escalation: Escalation, queue: Queue, fields: dict[str, Any]) -> str:
    """Claim the new escalation for the next agent of ``queue`` in the opening
    transaction, writing the routing ``fields`` with the claim. Returns ``CLAIMED``;
    ``WRITTEN`` when the thread turned out to be someone's already (the fields are
    written, the escalation stays open); "" (nothing written) when nobody can take it
    now.

    Five statements, one of which (the escalation's UPDATE, here with the claim) the
    routing writes anyway: the agent (locked), the escalation, the thread (conditional:
    still unowned), the Assignment row, the agent's round-robin cursor. Capacity holds
    because the claim counts the agent's load in a statement that starts after their
    row is locked, and every assigner holds that lock while it gives them work. Nobody
    else can see, let alone claim, an escalation that is not committed yet. Nothing
    here waits on a lock (the thread's is the opening transaction's already).
    """
    now = timezone.now()
    profile = _pick_new(queue, now)
    if profile is None:
        return ""
    user = profile.user
    claim = {"status": EscalationStatus.CLAIMED, "claimed_by": user, "claimed_at": now}
    won = (
        Escalation.objects.filter(pk=escalation.pk, status=EscalationStatus.OPEN)
        .alias(load=Coalesce(_held(user.pk), 0))
        .filter(load__lt=profile.capacity)
        .update(**fields, **claim)
    )
    if not won:
        return ""
    # The pick takes active agents only (eligible_profiles), as the service requires.
    if not thread_services.thread_assign_unowned(
        thread=escalation.thread, assignee=user, reason=_reason(escalation)
    ):
        # A human took the thread over meanwhile: theirs, and the escalation stays open
        # (with the routing fields, which the claim wrote).
        Escalation.objects.filter(pk=escalation.pk).update(
            status=EscalationStatus.OPEN, claimed_by=None, claimed_at=None
        )
        return WRITTEN
    AgentProfile.objects.filter(pk=profile.pk).update(last_assigned_at=now)
    for name, value in claim.items():
        setattr(escalation, name, value)
    return CLAIMED


def on_escalation_resolved(escalation: Escalation) -> None:
    """``resolved_hooks``: the clock stops; the resolver's freed capacity (if they held
    it) goes to the oldest waiting escalation of their queues, after the commit."""
    sla.on_resolved(escalation)
    if escalation.claimed_by_id is not None and takes_work(escalation.claimed_by_id):
        after_commit(assign_agent, escalation.claimed_by_id)


def on_presence_changed(presence: AgentPresence) -> None:
    """``presence_changed_hooks``: an agent who comes online gets the oldest waiting
    escalations of their queues, up to their capacity, after the commit."""
    if presence.status != PresenceStatus.ONLINE or not takes_work(presence.user_id):
        return
    agent_profile_ensure(presence.user_id)
    after_commit(assign_agent, presence.user_id)


def takes_work(user_id: Any) -> bool:
    """Whether ``user_id`` is an agent member of a queue that assigns automatically (one
    query; spares everyone else an assignment transaction that could not give them
    anything)."""
    return QueueMember.objects.filter(
        user_id=user_id, role=QueueRole.AGENT, queue__auto_assign=True
    ).exists()


def after_commit(run: Callable[[Any], object], arg: Any) -> None:
    def callback() -> None:
        try:
            run(arg)
        except Exception:
            # The trigger committed; a failed assignment waits for the next trigger.
            logger.exception("auto-assignment %s(%r) failed", run.__name__, arg)

    transaction.on_commit(callback)


# --- Configuration services -------------------------------------------------------------


def agent_profile_ensure(user_id: Any) -> AgentProfile:
    """The agent's profile row, created with default settings if missing."""
    profile, _ = AgentProfile.objects.get_or_create(user_id=user_id)
    return profile


@transaction.atomic
def agent_profile_set_capacity(*, user: Any, max_open: int | None) -> AgentProfile:
    """Set how many escalations the assigner gives ``user`` at once (None: the default).
    A raise hands them waiting work after the commit."""
    profile = agent_profile_ensure(user.pk)
    AgentProfile.objects.filter(pk=profile.pk).update(max_open=max_open)
    profile.max_open = max_open
    after_commit(assign_agent, user.pk)
    return profile


@transaction.atomic
def queue_member_add(*, queue: Queue, user: Any, role: str = QueueRole.AGENT) -> QueueMember:
    """Add ``user`` to ``queue`` (or change their role); an agent member may get the
    queue's waiting work at once (after the commit)."""
    member, _ = QueueMember.objects.update_or_create(
        queue=queue, user=user, defaults={"role": role}
    )
    if role == QueueRole.AGENT:
        agent_profile_ensure(user.pk)
        after_commit(assign_agent, user.pk)
    return member


@transaction.atomic
def queue_member_remove(*, queue: Queue, user: Any) -> None:
    """Take ``user`` out of ``queue``; what they already hold stays theirs."""
    QueueMember.objects.filter(queue=queue, user=user).delete()


@transaction.atomic
def queue_set_auto_assign(*, queue: Queue, enabled: bool) -> Queue:
    """Turn a queue's auto-assignment on or off (a supervisor's switch). Turned on, the
    queue's waiting escalations are handed out after the commit; turned off, nothing is
    handed out from it until it is on again (manual claims still work)."""
    Queue.objects.filter(pk=queue.pk).update(auto_assign=enabled)
    queue.auto_assign = enabled
    if enabled:
        after_commit(assign_queue, queue.pk)
    return queue


# --- Assignment -------------------------------------------------------------------------


@dataclass
class _Agent:
    profile: AgentProfile
    load: int

    @property
    def free(self) -> int:
        return self.profile.capacity - self.load

    def rr_key(self) -> tuple[datetime, int]:
        # Never assigned sorts first; then who waited longest; the pk breaks ties.
        return (self.profile.last_assigned_at or _NEVER, self.profile.pk)


def online_cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=escalation_services.presence_timeout())


def eligible_profiles(now: datetime) -> QuerySet[AgentProfile]:
    """Profiles of active agents (staff or the ``agents`` group) who are online now
    (status online and seen within the presence staleness window)."""
    user_model = get_user_model()
    online = AgentPresence.objects.filter(
        user_id=OuterRef("user_id"),
        status=PresenceStatus.ONLINE,
        last_seen_at__gte=online_cutoff(now),
    )
    in_agents_group = user_model.groups.through.objects.filter(  # type: ignore[attr-defined]
        user_id=OuterRef("user_id"), group__name="agents"
    )
    return AgentProfile.objects.filter(Exists(online), user__is_active=True).filter(
        Q(user__is_staff=True) | Exists(in_agents_group)
    )


def _lock_agents(profiles: QuerySet[AgentProfile]) -> list[_Agent]:
    """Lock the candidates' capacity rows (pk order: no deadlock between runs), then
    count what each holds — after the locks, so every committed claim is counted."""
    locked = list(profiles.select_related("user").order_by("pk").select_for_update(of=("self",)))
    if not locked:
        return []
    held = dict(
        Escalation.objects.filter(
            status=EscalationStatus.CLAIMED, claimed_by_id__in=[p.user_id for p in locked]
        )
        .order_by()
        .values("claimed_by_id")
        .annotate(n=Count("pk"))
        .values_list("claimed_by_id", "n")
    )
    return [_Agent(profile, held.get(profile.user_id, 0)) for profile in locked]


def waiting_escalations(queue_ids: Any) -> QuerySet[Escalation]:
    """Open escalations of the queues that nobody holds yet, highest priority then
    oldest first (``escalation_queue_waiting_idx``). A thread a human already took
    over by replying is not handed to someone else."""
    return (
        Escalation.objects.filter(
            queue_id__in=queue_ids,
            status=EscalationStatus.OPEN,
            thread__assignee__isnull=True,
        )
        .exclude(thread__status=ThreadStatus.CLOSED)
        .order_by("priority_rank", "created_at")
    )


def plan(
    strategy: str, agents: list[_Agent], escalations: Iterable[Escalation]
) -> list[tuple[Escalation, _Agent]]:
    """Pair escalations (in the order given) with agents that have room."""
    pairs: list[tuple[Escalation, _Agent]] = []
    if strategy == AssignStrategy.LEAST_LOADED:
        heap = [(a.load, a.rr_key(), i) for i, a in enumerate(agents) if a.free > 0]
        heapq.heapify(heap)
        for escalation in escalations:
            if not heap:
                break
            _, _, index = heapq.heappop(heap)
            agent = agents[index]
            pairs.append((escalation, agent))
            agent.load += 1
            if agent.free > 0:
                # Just assigned: last among equals next time.
                heapq.heappush(heap, (agent.load, (_LAST, len(pairs)), index))
        return pairs
    ring = deque(sorted((a for a in agents if a.free > 0), key=_Agent.rr_key))
    for escalation in escalations:
        if not ring:
            break
        agent = ring.popleft()
        pairs.append((escalation, agent))
        agent.load += 1
        if agent.free > 0:
            ring.append(agent)
    return pairs


def _claim(pairs: list[tuple[Escalation, _Agent]]) -> list[Escalation]:
    """Write a plan: escalations claimed (conditional on still open), threads handed to
    the agents with Assignment rows, round-robin cursors moved; broadcasts and
    ``claimed_hooks`` as for a manual claim. A constant number of queries."""
    if not pairs:
        return []
    now = timezone.now()
    escalations = []
    for index, (escalation, agent) in enumerate(pairs):
        escalation.status = EscalationStatus.CLAIMED
        escalation.claimed_by = agent.profile.user
        escalation.claimed_at = now
        # Distinct, ordered instants: the ring order survives into the next run.
        agent.profile.last_assigned_at = now + timedelta(microseconds=index)
        escalations.append(escalation)
    won = Escalation.objects.filter(status=EscalationStatus.OPEN).bulk_update(
        escalations, ["status", "claimed_by", "claimed_at"]
    )
    if won != len(escalations):
        # Cannot happen while the rows are locked; never claim half a plan.
        raise RuntimeError(f"claimed {won} of {len(escalations)} locked escalations")
    thread_services.thread_assign_many(
        assignments=[
            (escalation.thread, agent.profile.user, _reason(escalation))
            for escalation, agent in pairs
        ]
    )
    profiles = {agent.profile.pk: agent.profile for _, agent in pairs}
    AgentProfile.objects.bulk_update(list(profiles.values()), ["last_assigned_at"])
    for escalation in escalations:
        for hook in escalation_services.claimed_hooks:
            hook(escalation)
        events.emit(
            "escalation.updated",
            thread_id=str(escalation.thread_id),
            payload=escalation_services.escalation_payload(escalation),
        )
    return escalations


def _reason(escalation: Escalation) -> str:
    queue = escalation.queue
    strategy = queue.get_strategy_display().lower() if queue is not None else ""
    return f"auto-assigned from queue {queue} ({strategy})"


def assign_queue(queue_id: int, *, limit: int = ASSIGN_BATCH) -> list[Escalation]:
    """Hand ``queue_id``'s waiting escalations to its online agents with room, by the
    queue's strategy, in one transaction; returns the escalations claimed (at most
    ``limit``). Nothing happens while the queue's ``auto_assign`` is off."""
    with transaction.atomic():
        # The switch is read in the agents' query: off, nobody is a candidate.
        members = QueueMember.objects.filter(
            queue_id=queue_id,
            role=QueueRole.AGENT,
            queue__auto_assign=True,
            user_id=OuterRef("user_id"),
        )
        agents = _lock_agents(eligible_profiles(timezone.now()).filter(Exists(members)))
        room = sum(max(agent.free, 0) for agent in agents)
        if room <= 0:
            return []
        rows = list(
            waiting_escalations([queue_id])
            .select_related("thread", "queue")
            .select_for_update(skip_locked=True, of=("self", "thread"))[: min(room, limit)]
        )
        if not rows:
            return []
        queue = rows[0].queue
        assert queue is not None
        return _claim(plan(queue.strategy, agents, rows))


def assign_agent(user_id: Any, *, limit: int = ASSIGN_BATCH) -> list[Escalation]:
    """Fill ``user_id``'s free capacity with the waiting escalations of their
    auto-assigning queues, highest priority then oldest first; returns those claimed.
    Nothing happens when they are not an online agent."""
    with transaction.atomic():
        agents = _lock_agents(eligible_profiles(timezone.now()).filter(user_id=user_id))
        if not agents or agents[0].free <= 0:
            return []
        queues = QueueMember.objects.filter(
            user_id=user_id, role=QueueRole.AGENT, queue__auto_assign=True
        ).values("queue_id")
        rows = list(
            waiting_escalations(queues)
            .select_related("thread", "queue")
            .select_for_update(skip_locked=True, of=("self", "thread"))[
                : min(agents[0].free, limit)
            ]
        )
        return _claim(plan(AssignStrategy.ROUND_ROBIN, agents, rows))


def assign_backlog(*, queue_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Hand out every queue's waiting work until no agent has room (the operators'
    catch-all, e.g. after a crash lost an on-commit trigger). Creates missing agent
    profiles of queue members first. Returns escalations claimed per queue name;
    queues with auto-assignment off are skipped."""
    queues = Queue.objects.order_by("name")
    if queue_ids is not None:
        queues = queues.filter(pk__in=list(queue_ids))
    AgentProfile.objects.bulk_create(
        [
            AgentProfile(user_id=user_id)
            for user_id in QueueMember.objects.filter(role=QueueRole.AGENT)
            .exclude(user__agent_profile__isnull=False)
            .values_list("user_id", flat=True)
            .distinct()
        ],
        ignore_conflicts=True,
    )
    assigned: dict[str, int] = {}
    for queue in queues:
        if not queue.auto_assign:
            continue
        total = 0
        while batch := assign_queue(queue.pk):
            total += len(batch)
        assigned[queue.name] = total
    return assigned


# --- Reads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStats:
    name: str
    auto_assign: bool
    strategy: str
    open: int
    claimed: int
    breached: int
    online_agents: int
    agents: int
    oldest_waiting: timedelta | None


def queue_stats(*, now: datetime | None = None) -> list[QueueStats]:
    """Per queue (and "(no queue)"): waiting and claimed escalations, active ones that
    breached their SLA, agent members online / in all, age of the oldest waiting.
    Three queries whatever the number of queues."""
    from django.db.models import Min

    now = now or timezone.now()
    active = (
        Escalation.objects.filter(status__in=[EscalationStatus.OPEN, EscalationStatus.CLAIMED])
        .order_by()
        .values("queue_id")
        .annotate(
            open=Count("pk", filter=Q(status=EscalationStatus.OPEN)),
            claimed=Count("pk", filter=Q(status=EscalationStatus.CLAIMED)),
            breached=Count("pk", filter=Q(sla_breached_at__isnull=False)),
            oldest=Min("created_at", filter=Q(status=EscalationStatus.OPEN)),
        )
    )
    by_queue = {row["queue_id"]: row for row in active}
    online = AgentPresence.objects.filter(
        user_id=OuterRef("user_id"),
        status=PresenceStatus.ONLINE,
        last_seen_at__gte=online_cutoff(now),
    )
    members = (
        QueueMember.objects.filter(role=QueueRole.AGENT)
        .order_by()
        .values("queue_id")
        .annotate(
            agents=Count("pk"),
            online=Count("pk", filter=Exists(online)),
        )
    )
    by_members = {row["queue_id"]: row for row in members}
    stats = []
    empty: dict[str, Any] = {"open": 0, "claimed": 0, "breached": 0, "oldest": None}
    for queue in Queue.objects.order_by("name"):
        row = by_queue.get(queue.pk, empty)
        people = by_members.get(queue.pk, {"agents": 0, "online": 0})
        stats.append(
            QueueStats(
                name=queue.name,
                auto_assign=queue.auto_assign,
                strategy=queue.strategy,
                open=row["open"],
                claimed=row["claimed"],
                breached=row["breached"],
                online_agents=people["online"],
                agents=people["agents"],
                oldest_waiting=now - row["oldest"] if row["oldest"] else None,
            )
        )
    if None in by_queue:
        row = by_queue[None]
        stats.append(
            QueueStats(
                name="(no queue)",
                auto_assign=False,
                strategy="-",
                open=row["open"],
                claimed=row["claimed"],
                breached=row["breached"],
                online_agents=0,
                agents=0,
                oldest_waiting=now - row["oldest"] if row["oldest"] else None,
            )
        )
    return stats


def install() -> None:
    """Plug routing, SLA clocks and auto-assignment into the services (apps.ready)."""
    # First among the opened hooks: the queue, priority and SLA due date it sets are what
    # the summary and the notifications (escalations.operations) then report.
    if on_escalation_opened not in escalation_services.opened_hooks:
        escalation_services.opened_hooks.insert(0, on_escalation_opened)
    hooks: list[tuple[list[Any], Callable[..., object]]] = [
        (escalation_services.resolved_hooks, on_escalation_resolved),
        (escalation_services.presence_changed_hooks, on_presence_changed),
        (thread_services.customer_message_hooks, sla.on_customer_message),
        (thread_services.human_reply_hooks, sla.on_human_reply),
    ]
    for registry, hook in hooks:
        if hook not in registry:
            registry.append(hook)
    escalation_services.queue_router = queue_for
