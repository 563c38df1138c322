"""AI replies waiting for a human: approval drafts (draft mode) and copilot suggestions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from threads.models import Message, Thread


class DraftKind(models.TextChoices):
    # Draft mode: the AI's reply to the customer, sent only once a human approves it.
    APPROVAL = "approval"
    # Copilot: a reply suggested to the human who owns the thread; they send it or not.
    SUGGESTION = "suggestion"


class DraftStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class RejectNext(models.TextChoices):
    REGENERATE = "regenerate"
    HUMAN = "human"


class ApprovalDraft(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="approval_drafts")
    kind = models.CharField(max_length=12, choices=DraftKind.choices, default=DraftKind.APPROVAL)
    # The stored draft message (visibility draft, later rejected); never public itself.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    # The public message sent on approval (a new message, so customers' seq catch-up holds).
    sent_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    turn_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=DraftStatus.choices, default=DraftStatus.PENDING
    )
    content = models.TextField()
    final_content = models.TextField(null=True, blank=True)
    edited = models.BooleanField(default=False)
    diff = models.TextField(blank=True)
    review = models.TextField(blank=True)
    next_action = models.CharField(max_length=12, choices=RejectNext.choices, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decided_drafts",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # At most one draft waits per thread and kind: a newer one supersedes it.
            models.UniqueConstraint(
                fields=["thread", "kind"],
                condition=Q(status="pending"),
                name="draft_one_pending_per_thread",
            ),
            models.CheckConstraint(
                condition=Q(status__in=DraftStatus.values), name="draft_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["approved", "rejected"]) | Q(decided_at__isnull=False),
                name="draft_decision_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="draft_status_idx"),
            models.Index(fields=["thread", "-created_at"], name="draft_thread_idx"),
            # The desk list counts pending drafts per thread; leading with both equality
            # columns lets SQLite (which has no statistics) pick this over draft_status_idx.
            models.Index(fields=["thread", "status"], name="draft_thread_status_idx"),
            models.Index(fields=["status", "expires_at"], name="draft_expiry_idx"),
            # The admin changelist's ordering, newest first: its page is a range of this.
            models.Index(fields=["-created_at", "-id"], name="draft_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"
