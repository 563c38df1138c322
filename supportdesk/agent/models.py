"""The AI runtime's rows: turns, model calls, the knowledge base, rolling summaries."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from threads.models import Message, Thread


class TurnStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    # Waiting on a human: an ask_human question; answering re-queues the same turn.
    WAITING = "waiting"
    DONE = "done"


class TurnKind(models.TextChoices):
    REPLY = "reply"  # a customer message to answer
    REGENERATE = "regenerate"  # a rejected draft to write again


class Outcome(models.TextChoices):
    REPLY = "reply"
    DRAFT = "draft"
    ESCALATION = "escalation"
    HUMAN_REQUEST = "human_request"
    # A human owns the thread: the message is theirs to answer.
    HUMAN = "human"
    # A newer customer message took over before this turn answered.
    SUPERSEDED = "superseded"


class Decision(models.TextChoices):
    AI = "ai"
    HUMAN = "human"
    ESCALATE = "escalate"


class AgentTurn(models.Model):
    """One unit of AI work, created with the customer message it answers.

    Executed by a worker that claims it with a lease; if the worker dies, the sweeper
    re-queues it. State lives in these rows (and in the thread's messages listed in
    ``step_message_ids``), so a re-run continues instead of starting over.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="turns")
    trigger_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="turns"
    )
    kind = models.CharField(max_length=12, choices=TurnKind.choices, default=TurnKind.REPLY)
    status = models.CharField(max_length=10, choices=TurnStatus.choices, default=TurnStatus.QUEUED)
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    decision_step = models.CharField(max_length=50, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True)
    # What the customer's message is about (SUPPORTDESK_TOPICS), as the router saw it:
    # from the classifier model, else the best-matching article's category; "" for none.
    topic = models.CharField(max_length=30, blank=True)
    outcome = models.CharField(max_length=15, choices=Outcome.choices, blank=True)
    # The model's own confidence in its final answer (reply, draft or escalation).
    confidence = models.FloatField(null=True, blank=True)
    outcome_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    steps = models.PositiveSmallIntegerField(default=0)
    # The assistant tool-call messages and tool results of this turn, in order.
    step_message_ids = models.JSONField(default=list, blank=True)
    # Reviewer feedback for a regenerate turn.
    feedback = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # Retries and double posts can never produce two answers to one message.
            models.UniqueConstraint(
                fields=["trigger_message"],
                condition=Q(kind="reply"),
                name="turn_one_reply_per_message",
            ),
            models.CheckConstraint(
                condition=Q(status__in=TurnStatus.values), name="turn_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | ~Q(outcome=""), name="turn_done_has_outcome"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "leased_until"], name="turn_status_lease_idx"),
            models.Index(fields=["thread", "created_at"], name="turn_thread_idx"),
        ]

    def __str__(self) -> str:
        return f"turn {self.id} ({self.status})"


class ModelCall(models.Model):
    """Usage of one model call: tokens, latency and cost, for the usage roll-ups."""

    turn = models.ForeignKey(AgentTurn, on_delete=models.CASCADE, related_name="model_calls")
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="model_calls")
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    purpose = models.CharField(max_length=20, default="reply")  # reply | classifier
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    ok = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], name="modelcall_created_idx"),
            models.Index(fields=["thread", "created_at"], name="modelcall_thread_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.prompt_tokens}+{self.completion_tokens}"


class KnowledgeArticle(models.Model):
    """A help-centre article: what the offline responder and search_knowledge retrieve."""

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    tags = models.CharField(max_length=300, blank=True)
    # A topic of SUPPORTDESK_TOPICS: without a classifier model, the category of the
    # article that best matches a customer's message is that message's topic.
    category = models.CharField(max_length=30, blank=True)
    is_published = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class ThreadSummary(models.Model):
    """A rolling summary of a thread's older history, so prompts stay bounded."""

    thread = models.OneToOneField(Thread, on_delete=models.CASCADE, related_name="ai_summary")
    content = models.TextField(blank=True)
    covered_seq = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"summary of {self.thread_id} up to {self.covered_seq}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of each worker process (``/healthz`` reports stale workers)."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    last_seen_at = models.DateTimeField()
    turns_swept = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.worker_id} @ {self.last_seen_at:%H:%M:%S}"
