"""Work for people: escalations (a thread needs a human) and ask_human questions."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from threads.models import Priority, Thread


class EscalationSource(models.TextChoices):
    TOOL = "tool", "AI escalated"
    LOW_CONFIDENCE = "low_confidence", "Low confidence"
    REQUIRES_HUMAN = "requires_human", "AI asked for a person"
    CUSTOMER_REQUEST = "customer_request", "Customer asked"
    CLASSIFIER = "classifier", "Classifier"
    AI_FAILURE = "ai_failure", "AI failure"
    STAFF = "staff", "Staff"


class EscalationStatus(models.TextChoices):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


ACTIVE_ESCALATION = [EscalationStatus.OPEN, EscalationStatus.CLAIMED]


class Escalation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="escalations")
    source = models.CharField(max_length=20, choices=EscalationSource.choices)
    reason = models.CharField(max_length=1000, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    # The AI's answer it was not sure of: shown to the human, never to the customer.
    ai_suggestion = models.TextField(null=True, blank=True)
    summary = models.TextField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(
        max_length=10, choices=EscalationStatus.choices, default=EscalationStatus.OPEN
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_escalations",
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="resolved_escalations",
    )
    resolution_note = models.TextField(blank=True)
    # The agent turn that escalated, if any (a plain id: agent sits above this app).
    turn_id = models.UUIDField(null=True, blank=True)
    # Opened beyond an escalation rate limit (escalations.limits): queued like any other,
    # but nobody is notified; the note says which limit.
    throttled = models.BooleanField(default=False)
    throttle_note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    # What the customer's messages were about (SUPPORTDESK_TOPICS) when it opened: the
    # escalating turn's topic, else the thread's latest one; "" for none.
    topic = models.CharField(max_length=30, blank=True)
    # Routing and SLA (escalations.routing, escalations.sla).
    queue = models.ForeignKey(
        "Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="escalations"
    )
    # 0 = urgent … 3 = low: the assigner takes the highest priority, then the oldest,
    # straight from an index.
    priority_rank = models.GeneratedField(
        expression=models.Case(
            models.When(priority=Priority.URGENT, then=models.Value(0)),
            models.When(priority=Priority.HIGH, then=models.Value(1)),
            models.When(priority=Priority.NORMAL, then=models.Value(2)),
            default=models.Value(3),
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )
    # The SLA clock that is running ("" when none is: no policy, or the customer is the
    # one who has to answer). ``sla_due_at`` is its due time, ``sla_check_at`` the next
    # moment the sweeper has to look at the row (the 80 % warning, then the due time).
    sla_target = models.CharField(max_length=20, blank=True, default="")
    sla_started_at = models.DateTimeField(null=True, blank=True)
    sla_check_at = models.DateTimeField(null=True, blank=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(status__in=["open", "claimed"]),
                name="escalation_one_active_per_thread",
            ),
            models.CheckConstraint(
                condition=Q(source__in=EscalationSource.values), name="escalation_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=EscalationStatus.values), name="escalation_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="claimed") | Q(claimed_by__isnull=False),
                name="escalation_claimed_has_claimer",
            ),
            models.CheckConstraint(
                condition=Q(sla_target__in=["", "first_response", "next_response"]),
                name="escalation_sla_target_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="escalation_status_idx"),
            models.Index(fields=["thread", "-created_at"], name="escalation_thread_idx"),
            # The desk list reads each thread's active escalation; leading with both
            # equality columns makes SQLite (no statistics) use this, not the status index.
            models.Index(fields=["thread", "status"], name="escalation_thread_status_idx"),
            models.Index(fields=["source", "-created_at"], name="escalation_source_idx"),
            # The admin changelist's ordering, newest first: its page is a range of this.
            models.Index(fields=["-created_at", "-id"], name="escalation_created_idx"),
            # The assigner: a queue's waiting work, highest priority then oldest first.
            models.Index(
                fields=["queue", "priority_rank", "created_at"],
                name="escalation_queue_waiting_idx",
                condition=Q(status="open"),
            ),
            # The SLA sweeper reads only rows whose check time has come.
            models.Index(
                fields=["sla_check_at"],
                name="escalation_sla_check_idx",
                condition=Q(sla_check_at__isnull=False),
            ),
            # An agent's load: the escalations they hold.
            models.Index(
                fields=["claimed_by"], name="escalation_claimed_idx", condition=Q(status="claimed")
            ),
        ]

    def __str__(self) -> str:
        return f"escalation {self.id} ({self.source}, {self.status})"


class HumanRequestStatus(models.TextChoices):
    PENDING = "pending"
    ANSWERED = "answered"
    EXPIRED = "expired"


class HumanRequest(models.Model):
    """A question the AI asked a human mid-turn (the ``ask_human`` tool)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="human_requests")
    turn_id = models.UUIDField()
    question = models.TextField()
    tool_call_id = models.CharField(max_length=255)
    # What the human needs to answer without opening the thread.
    context = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=HumanRequestStatus.choices, default=HumanRequestStatus.PENDING
    )
    answer = models.TextField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="answered_human_requests",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["turn_id", "tool_call_id"], name="human_request_one_per_tool_call"
            ),
            models.CheckConstraint(
                condition=Q(status__in=HumanRequestStatus.values),
                name="human_request_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="human_request_status_idx"),
            models.Index(fields=["thread", "-created_at"], name="human_request_thread_idx"),
            models.Index(fields=["thread", "status"], name="hr_thread_status_idx"),
            # The admin changelist's ordering, newest first: its page is a range of this.
            models.Index(fields=["-created_at", "-id"], name="human_request_created_idx"),
        ]

    def __str__(self) -> str:
        return f"question {self.id} ({self.status})"


class PresenceStatus(models.TextChoices):
    ONLINE = "online"
    BUSY = "busy"
    OFFLINE = "offline"


class AgentPresence(models.Model):
    """Whether a human agent is at the desk, kept by the desk websocket.

    ``connections`` counts the agent's open desk sockets (several tabs, several servers):
    the agent goes offline when the last one closes. A server that dies cannot decrement
    it, so readers treat a row whose ``last_seen_at`` is older than
    ``SUPPORTDESK_PRESENCE_TIMEOUT_SECONDS`` (60) as offline (``presence_expire_stale``,
    run by the worker's sweeper, writes that down and broadcasts it).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presence"
    )
    status = models.CharField(
        max_length=10, choices=PresenceStatus.choices, default=PresenceStatus.OFFLINE
    )
    connections = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PresenceStatus.values), name="agent_presence_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "last_seen_at"], name="agent_presence_status_idx")
        ]

    def __str__(self) -> str:
        return f"presence of {self.user_id}: {self.status}"


# --- Escalation rate limits (escalations.limits, database backend) --------------------


class RateBucket(models.Model):
    """One token bucket of the escalation rate limits when Redis is not configured.

    Taken with a conditional update on ``version`` (checked by row count), so two
    escalations racing for the last token cannot both win, on SQLite as on PostgreSQL.
    """

    key = models.CharField(max_length=200, unique=True)
    tokens = models.FloatField()
    updated_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=0)
    # When the bucket will be full again: after that the row carries no information.
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="rate_bucket_expires_idx")]

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.2f}"


# --- Notifications: webhook endpoints and the durable outbox ---------------------------


def _webhook_secret() -> str:
    import secrets

    return secrets.token_hex(32)


class WebhookEndpoint(models.Model):
    """A receiver of signed notification webhooks (``escalations.notifications``)."""

    url = models.URLField(max_length=500)
    # HMAC-SHA256 key shared with the receiver; it must be readable to sign with it.
    secret = models.CharField(max_length=128, default=_webhook_secret)
    # Event names it wants (e.g. "escalation.opened"); empty means every event.
    events = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class OutboxKind(models.TextChoices):
    WEBHOOK = "webhook"
    EMAIL = "email"


class OutboxStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(models.Model):
    """A notification to send, written in the transaction of the change it announces.

    ``deliver_due`` sends it later (never inside a request): it claims the row with a
    conditional update that pushes ``next_attempt_at`` one lease ahead, so a worker that
    dies mid-send leaves the row due again. Delivery is at least once; ``id`` is the
    idempotency id receivers see (``X-Supportdesk-Delivery``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=OutboxKind.choices)
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="outbox"
    )
    event = models.CharField(max_length=50)
    # Webhook: the JSON body. Email: {"to": [...], "subject": str, "body": str}.
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    # What it is about, so a refined summary can be put into it before it goes out.
    escalation = models.ForeignKey(
        Escalation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # One notification per (event, subject, recipient), however often a hook fires.
    dedupe_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=OutboxKind.values), name="outbox_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=OutboxStatus.values), name="outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(kind="webhook") | Q(endpoint__isnull=False),
                name="outbox_webhook_has_endpoint",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_due_idx",
                condition=Q(status="pending"),
            ),
            # Pruning (outbox_prune) reads the oldest sent rows only.
            models.Index(fields=["sent_at"], name="outbox_sent_idx", condition=Q(status="sent")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event} ({self.status})"


# --- Queues, capacity and SLA (escalations.routing, escalations.sla) ------------------


class Weekday(models.IntegerChoices):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


class BusinessHours(models.Model):
    """A weekly calendar in one timezone: SLA clocks only run inside its ranges."""

    name = models.CharField(max_length=100, unique=True)
    # An IANA name ("Europe/Paris"); ranges are wall-clock times there, DST included.
    timezone = models.CharField(max_length=64, default="UTC")

    class Meta:
        verbose_name_plural = "business hours"

    def __str__(self) -> str:
        return f"{self.name} ({self.timezone})"

    def clean(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from django.core.exceptions import ValidationError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": "Not a known timezone."}) from None


class BusinessHoursRange(models.Model):
    """One open range of a weekday; ``end`` 00:00 means midnight at the end of the day."""

    hours = models.ForeignKey(BusinessHours, on_delete=models.CASCADE, related_name="ranges")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["hours", "weekday", "start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weekday__gte=0) & Q(weekday__lte=6), name="business_hours_weekday_valid"
            ),
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")) | Q(end=datetime.time(0)),
                name="business_hours_range_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}–{self.end:%H:%M}"


class SLAKind(models.TextChoices):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"


class SLAPolicy(models.Model):
    """Response targets per priority; the clocks run in business hours when set."""

    name = models.CharField(max_length=100, unique=True)
    business_hours = models.ForeignKey(
        BusinessHours, null=True, blank=True, on_delete=models.SET_NULL, related_name="policies"
    )

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return self.name


class SLATarget(models.Model):
    """Seconds (of business time) to the first human reply after an escalation, and to
    the next one after each customer message; empty = no target for that priority."""

    policy = models.ForeignKey(SLAPolicy, on_delete=models.CASCADE, related_name="targets")
    priority = models.CharField(max_length=10, choices=Priority.choices)
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    next_response_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "SLA target"
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "priority"], name="sla_target_one_per_priority"
            ),
            models.CheckConstraint(
                condition=Q(priority__in=Priority.values), name="sla_target_priority_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy} / {self.priority}"


class AssignStrategy(models.TextChoices):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"


class Queue(models.Model):
    """Where escalations wait for people: its members, how work is handed out, its SLA."""

    name = models.CharField(max_length=100, unique=True)
    members: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="QueueMember", related_name="support_queues", blank=True
    )
    # The lowest priority an escalation has in this queue (a VIP queue may say "high").
    default_priority = models.CharField(
        max_length=10, choices=Priority.choices, default=Priority.NORMAL
    )
    # A supervisor turns it off to hand out this queue's work by hand.
    auto_assign = models.BooleanField(default=True)
    strategy = models.CharField(
        max_length=20, choices=AssignStrategy.choices, default=AssignStrategy.ROUND_ROBIN
    )
    sla_policy = models.ForeignKey(
        SLAPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="queues"
    )
    # Overrides the policy's business hours for this queue's clocks.
    business_hours = models.ForeignKey(
        BusinessHours, null=True, blank=True, on_delete=models.SET_NULL, related_name="queues"
    )
    # Where an escalation goes when no routing rule matches.
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="queue_one_default"
            ),
            models.CheckConstraint(
                condition=Q(strategy__in=AssignStrategy.values), name="queue_strategy_valid"
            ),
            models.CheckConstraint(
                condition=Q(default_priority__in=Priority.values),
                name="queue_default_priority_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class QueueRole(models.TextChoices):
    AGENT = "agent"  # gets work from the queue
    SUPERVISOR = "supervisor"  # watches it: told about SLA warnings and breaches


class QueueMember(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_memberships"
    )
    role = models.CharField(max_length=20, choices=QueueRole.choices, default=QueueRole.AGENT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "user"], name="queue_member_unique"),
            models.CheckConstraint(
                condition=Q(role__in=QueueRole.values), name="queue_member_role_valid"
            ),
        ]
        indexes = [models.Index(fields=["user", "role"], name="queue_member_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} in {self.queue} ({self.role})"


class RoutingRule(models.Model):
    """Sends a new escalation to ``queue`` when every condition that is set matches.

    Rules are tried by ``position``; the first match wins, else the default queue.
    """

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    # The thread's priority when it was escalated.
    priority = models.CharField(max_length=10, choices=Priority.choices, blank=True)
    source = models.CharField(max_length=20, choices=EscalationSource.choices, blank=True)
    # Comma-separated words or phrases; any of them in the reason (case-insensitive).
    keywords = models.CharField(max_length=500, blank=True)
    # The customer's tier (SUPPORTDESK_CUSTOMER_TIERS), set by staff or a signed identity.
    tier = models.CharField(max_length=30, blank=True)
    # The topic of the customer's messages (SUPPORTDESK_TOPICS), from the router.
    topic = models.CharField(max_length=30, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["is_active", "position"], name="routing_rule_order_idx")]

    def __str__(self) -> str:
        conditions = [
            f"priority={self.priority}" if self.priority else "",
            f"source={self.source}" if self.source else "",
            f"keywords={self.keywords}" if self.keywords else "",
            f"tier={self.tier}" if self.tier else "",
            f"topic={self.topic}" if self.topic else "",
        ]
        return f"{' & '.join(c for c in conditions if c) or 'anything'} → {self.queue}"

    def keyword_list(self) -> list[str]:
        return [word.strip().casefold() for word in self.keywords.split(",") if word.strip()]


class AgentProfile(models.Model):
    """A human agent's routing settings. Its row is the lock that serialises handing
    work to the agent, so their capacity holds under concurrent assigners."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile"
    )
    # Most escalations the assigner gives them at once; empty: SUPPORTDESK_AGENT_CAPACITY.
    max_open = models.PositiveSmallIntegerField(null=True, blank=True)
    # Round-robin: the agent who waited longest since their last assignment goes next.
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"

    @property
    def capacity(self) -> int:
        if self.max_open is not None:
            return self.max_open
        return int(settings.SUPPORTDESK_AGENT_CAPACITY)


class SLABreach(models.Model):
    """An SLA target missed, recorded once per escalation and target."""

    escalation = models.ForeignKey(
        Escalation, on_delete=models.CASCADE, related_name="sla_breaches"
    )
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="sla_breaches"
    )
    target = models.CharField(max_length=20, choices=SLAKind.choices)
    # The escalation's priority when it was due (before the breach raised it).
    priority = models.CharField(max_length=10, choices=Priority.choices)
    due_at = models.DateTimeField()
    breached_at = models.DateTimeField()

    class Meta:
        verbose_name = "SLA breach"
        verbose_name_plural = "SLA breaches"
        ordering = ["-breached_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["escalation", "target"], name="sla_breach_once_per_target"
            ),
            models.CheckConstraint(
                condition=Q(target__in=SLAKind.values), name="sla_breach_target_valid"
            ),
        ]
        indexes = [models.Index(fields=["-breached_at"], name="sla_breach_recent_idx")]

    def __str__(self) -> str:
        return f"{self.target} breach of {self.escalation_id}"
