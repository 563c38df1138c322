"""The conversation store: customers, threads, messages and the assignment history.

Rows here are written only by ``threads.services``; everything else reads them through
``threads.selectors``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def default_customer_tier() -> str:
    """The first of ``SUPPORTDESK_CUSTOMER_TIERS``: every customer's until staff or a
    signed identity say otherwise."""
    return str(settings.SUPPORTDESK_CUSTOMER_TIERS[0])


class Customer(models.Model):
    """Who wrote a thread. An unverified customer (anything the widget sent) gets a new
    row per thread; a verified one (``external_id`` signed by the embedding site, see
    ``threads.identity``) has one row that all their threads share."""

    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    # A name of SUPPORTDESK_CUSTOMER_TIERS, for routing (RoutingRule.tier). Written only
    # by staff (customer_set_tier) and by a signed identity, never by what a customer sends.
    tier = models.CharField(max_length=30, default=default_customer_tier)
    # external_id was signed by the embedding site's backend.
    verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["email"], name="customer_email_idx"),
            models.Index(fields=["external_id"], name="customer_external_id_idx"),
            # The admin changelist's ordering, newest first: its page is a range of this.
            models.Index(fields=["-created_at", "-id"], name="customer_created_idx"),
        ]
        constraints = [
            # One row per verified identity, so tier and history follow the customer.
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(verified=True),
                name="customer_verified_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(verified=False) | ~Q(external_id=""),
                name="customer_verified_has_external_id",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.external_id or f"Customer {self.pk}"

    @property
    def display_name(self) -> str:
        return self.name or "Customer"


class ThreadStatus(models.TextChoices):
    OPEN = "open"
    WAITING_ON_HUMAN = "waiting_on_human"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Responder(models.TextChoices):
    AI = "ai"
    HUMAN = "human"


class AIMode(models.TextChoices):
    AUTO = "auto"
    DRAFT = "draft"


class Priority(models.TextChoices):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Thread(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="threads")
    # sha256 of the customer's bearer token; the token itself is never stored.
    token_hash = models.CharField(max_length=64, editable=False)
    subject = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=ThreadStatus.choices, default=ThreadStatus.OPEN
    )
    responder = models.CharField(max_length=10, choices=Responder.choices, default=Responder.AI)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_threads",
    )
    ai_mode = models.CharField(max_length=10, choices=AIMode.choices, default=AIMode.AUTO)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    # The per-thread message counter: the seq of the newest message.
    last_seq = models.PositiveIntegerField(default=0)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            # The desk list: newest activity first, optionally filtered by one field.
            models.Index(fields=["-updated_at", "id"], name="thread_updated_idx"),
            models.Index(fields=["-created_at", "id"], name="thread_created_idx"),
            models.Index(fields=["status", "-updated_at"], name="thread_status_updated_idx"),
            models.Index(fields=["responder", "-updated_at"], name="thread_resp_updated_idx"),
            models.Index(fields=["assignee", "-updated_at"], name="thread_assignee_updated_idx"),
            models.Index(fields=["priority", "-updated_at"], name="thread_prio_updated_idx"),
            models.Index(fields=["sla_due_at"], name="thread_sla_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ThreadStatus.values), name="thread_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(responder__in=Responder.values), name="thread_responder_valid"
            ),
            models.CheckConstraint(
                condition=Q(ai_mode__in=AIMode.values), name="thread_ai_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(priority__in=Priority.values), name="thread_priority_valid"
            ),
            # Only a human-owned thread has an assignee.
            models.CheckConstraint(
                condition=Q(responder=Responder.HUMAN) | Q(assignee__isnull=True),
                name="thread_ai_has_no_assignee",
            ),
        ]

    def __str__(self) -> str:
        return self.subject or f"Thread {self.id}"


class Role(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    SYSTEM = "system"


class AuthorKind(models.TextChoices):
    CUSTOMER = "customer"
    AI = "ai"
    HUMAN = "human"
    SYSTEM = "system"


class Visibility(models.TextChoices):
    PUBLIC = "public"
    INTERNAL = "internal"
    DRAFT = "draft"
    REJECTED = "rejected"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    author_kind = models.CharField(max_length=10, choices=AuthorKind.choices)
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="authored_messages",
    )
    author_name = models.CharField(max_length=200)
    content = models.TextField(blank=True)
    # "human" for human agents, the LLM provider for the AI, "system" for notices.
    provider = models.CharField(max_length=50, null=True, blank=True)
    model = models.CharField(max_length=200, null=True, blank=True)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=255, null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["thread", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "seq"], name="message_thread_seq_unique"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="message_seq_positive"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="message_role_valid"),
            models.CheckConstraint(
                condition=Q(author_kind__in=AuthorKind.values), name="message_author_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values), name="message_visibility_valid"
            ),
            # A customer never authors anything but a public user message.
            models.CheckConstraint(
                condition=~Q(author_kind=AuthorKind.CUSTOMER)
                | (Q(role=Role.USER) & Q(visibility=Visibility.PUBLIC)),
                name="message_customer_is_public_user",
            ),
        ]
        indexes = [
            # The customer list reads only public messages after a seq.
            models.Index(
                fields=["thread", "seq"],
                name="message_public_seq_idx",
                condition=Q(visibility=Visibility.PUBLIC),
            ),
            models.Index(fields=["created_at"], name="message_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id}#{self.seq} {self.author_kind}"


class Assignment(models.Model):
    """Append-only history of who responds on a thread; the newest row is current."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="assignments")
    responder = models.CharField(max_length=10, choices=Responder.choices)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assignments",
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assignments_made",
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["thread", "id"]
        indexes = [
            models.Index(fields=["thread", "id"], name="assignment_thread_idx"),
            # The admin's date hierarchy reads the first and last rows' dates from it.
            models.Index(fields=["created_at"], name="assignment_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(responder__in=Responder.values), name="assignment_responder_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id} → {self.responder}"


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, replayed for 24 h."""

    scope = models.CharField(max_length=100)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"
