"""Work for people: escalations (a thread needs a human) and ask_human questions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from threads.models import Priority, Thread


class EscalationSource(models.TextChoices):
    TOOL = "tool"
    LOW_CONFIDENCE = "low_confidence"
    REQUIRES_HUMAN = "requires_human"
    CUSTOMER_REQUEST = "customer_request"
    CLASSIFIER = "classifier"
    AI_FAILURE = "ai_failure"
    STAFF = "staff"


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
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)

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
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="escalation_status_idx"),
            models.Index(fields=["thread", "-created_at"], name="escalation_thread_idx"),
            models.Index(fields=["source", "-created_at"], name="escalation_source_idx"),
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
        ]

    def __str__(self) -> str:
        return f"question {self.id} ({self.status})"
