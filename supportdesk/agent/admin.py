"""The supervisors' admin for the AI runtime: the knowledge base, turns and usage.

Knowledge articles are the one thing here that staff edit by hand: they are what the
offline responder and the ``search_knowledge`` tool retrieve, and the index notices a
save (its key is the published count and the latest ``updated_at``) without a restart.
Turns, model calls and heartbeats are written only by the runtime and are view-only.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest

from supportdesk.agent.models import AgentTurn, KnowledgeArticle, ModelCall, WorkerHeartbeat
from threads.admin import ReadOnlyAdminMixin

MODEL_CALL_FIELDS = (
    "created_at",
    "purpose",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "cost",
    "ok",
)


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "category", "is_published", "updated_at")
    list_filter = ("is_published", "category")
    search_fields = ("title", "slug", "tags", "body")
    prepopulated_fields = {"slug": ("title",)}
    fields = ("title", "slug", "body", "tags", "category", "is_published", "updated_at")
    readonly_fields = ("updated_at",)
    ordering = ("title",)


class ModelCallInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The turn's model calls, oldest first."""

    model = ModelCall
    fk_name = "turn"
    ordering = ("created_at", "id")
    fields = MODEL_CALL_FIELDS
    readonly_fields = MODEL_CALL_FIELDS
    extra = 0
    verbose_name_plural = "model calls"


@admin.register(AgentTurn)
class AgentTurnAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "thread",
        "kind",
        "status",
        "decision",
        "decision_step",
        "topic",
        "outcome",
        "confidence",
        "attempts",
        "steps",
        "created_at",
    )
    list_filter = ("status", "kind", "decision", "outcome", "decision_step", "topic")
    search_fields = ("=id", "=thread__id", "thread__subject", "decision_reason", "error")
    list_select_related = ("thread",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fieldsets = (
        (None, {"fields": ("id", "thread", "kind", "status", "trigger_message")}),
        ("Decision", {"fields": ("decision", "decision_step", "decision_reason", "topic")}),
        (
            "Outcome",
            {"fields": ("outcome", "confidence", "outcome_message", "error", "feedback")},
        ),
        (
            "Execution",
            {
                "fields": (
                    "attempts",
                    "max_attempts",
                    "steps",
                    "step_message_ids",
                    "lease_owner",
                    "leased_until",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "updated_at",
                ),
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)
    inlines = (ModelCallInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AgentTurn]:
        # The turn's page shows its thread and both messages: join them there too.
        return (
            super()
            .get_queryset(request)
            .select_related("thread", "trigger_message", "outcome_message")
        )


@admin.register(ModelCall)
class ModelCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("thread", *MODEL_CALL_FIELDS)
    list_filter = ("model", "provider", "purpose", "ok")
    search_fields = ("=thread__id", "=turn__id", "model")
    list_select_related = ("thread",)
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    fields = ("turn", "thread", *MODEL_CALL_FIELDS)
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelCall]:
        return super().get_queryset(request).select_related("thread", "turn")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("worker_id", "last_seen_at", "turns_swept")
    search_fields = ("worker_id",)
    ordering = ("-last_seen_at",)
