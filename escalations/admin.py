"""The supervisors' admin for escalations and the AI's questions to people.

Both are view-only: every change goes through ``escalations.services``. The escalation
changelist's actions call ``escalation_claim`` / ``escalation_resolve`` row by row, so a
claim assigns the thread and every transition is broadcast, exactly as from the desk.
They need the model's change permission (the ``work`` action permission below), even
though the rows themselves are never edited in a form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_permission_codename
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from escalations import services
from escalations.models import Escalation, HumanRequest
from supportdesk.changelists import LargeTableAdmin, RecentValuesFilter
from threads.admin import CONTENT_PREVIEW_CHARS, ReadOnlyAdminMixin
from threads.exceptions import DomainError
from threads.models import Responder


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdminMixin, LargeTableAdmin, admin.ModelAdmin):
    list_display = (
        "thread",
        "source",
        "status",
        "priority",
        "topic",
        "claimed_by",
        "created_at",
        "confidence",
    )
    list_filter = ("status", "source", "priority", ("topic", RecentValuesFilter))
    search_fields = ("=thread__id", "reason")
    list_select_related = ("thread", "claimed_by")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")  # escalation_created_idx
    fieldsets = (
        (None, {"fields": ("id", "thread", "source", "status", "priority", "topic", "reason")}),
        ("What the AI had", {"fields": ("confidence", "ai_suggestion", "summary", "turn_id")}),
        (
            "Handling",
            {
                "fields": (
                    "claimed_by",
                    "claimed_at",
                    "resolved_by",
                    "resolved_at",
                    "resolution_note",
                    "created_at",
                    "sla_due_at",
                ),
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)
    actions = ("claim", "resolve", "resolve_to_ai")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Escalation]:
        return super().get_queryset(request).select_related("thread", "claimed_by", "resolved_by")

    def has_work_permission(self, request: HttpRequest) -> bool:
        # The rows are view-only, but working them is a change: it needs that permission.
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description="Claim for me", permissions=["work"])
    def claim(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> None:
        done = self._apply(
            request,
            queryset,
            lambda escalation: services.escalation_claim(escalation=escalation, user=request.user),
        )
        self._report(request, f"Claimed {done} escalation(s).", done)

    @admin.action(description="Resolve", permissions=["work"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> None:
        done = self._apply(
            request,
            queryset,
            lambda escalation: services.escalation_resolve(
                escalation=escalation, user=request.user, note="Resolved in the admin."
            ),
        )
        self._report(request, f"Resolved {done} escalation(s).", done)

    @admin.action(description="Resolve and hand back to AI", permissions=["work"])
    def resolve_to_ai(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> None:
        done = self._apply(
            request,
            queryset,
            lambda escalation: services.escalation_resolve(
                escalation=escalation,
                user=request.user,
                note="Resolved in the admin and handed back to the AI.",
                responder=Responder.AI,
            ),
        )
        self._report(
            request, f"Resolved {done} escalation(s) and handed the thread(s) to the AI.", done
        )

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[Escalation],
        change: Callable[[Escalation], object],
    ) -> int:
        """Run ``change`` on each escalation; one refused row does not stop the others."""
        done = 0
        for escalation in queryset.select_related("thread").order_by("created_at"):
            try:
                change(escalation)
            except DomainError as error:  # AlreadyClaimed, AlreadyResolved, …
                self.message_user(
                    request, f"Escalation of “{escalation.thread}”: {error.message}", messages.ERROR
                )
            else:
                done += 1
        return done

    def _report(self, request: HttpRequest, text: str, done: int) -> None:
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)


@admin.register(HumanRequest)
class HumanRequestAdmin(ReadOnlyAdminMixin, LargeTableAdmin, admin.ModelAdmin):
    list_display = (
        "thread",
        "question_preview",
        "status",
        "answered_by",
        "created_at",
        "expires_at",
    )
    list_filter = ("status",)
    search_fields = ("=thread__id", "question", "answer")
    list_select_related = ("thread", "answered_by")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")  # human_request_created_idx
    fields = (
        "id",
        "thread",
        "status",
        "question",
        "context",
        "answer",
        "answered_by",
        "created_at",
        "answered_at",
        "expires_at",
        "turn_id",
        "tool_call_id",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[HumanRequest]:
        return super().get_queryset(request).select_related("thread", "answered_by")

    @admin.display(description="question")
    def question_preview(self, obj: HumanRequest) -> str:
        return Truncator(obj.question).chars(CONTENT_PREVIEW_CHARS)


# --- Queues, routing, capacity and SLA (escalations.routing, escalations.sla) -----------
# Configuration rows, edited here by supervisors; switches that hand out work (auto-assign,
# members, capacity) go through the routing services so waiting escalations move at once.

from escalations import routing  # noqa: E402
from escalations.models import (  # noqa: E402
    AgentProfile,
    BusinessHours,
    BusinessHoursRange,
    Queue,
    QueueMember,
    QueueRole,
    RoutingRule,
    SLABreach,
    SLAPolicy,
    SLATarget,
)


class BusinessHoursRangeInline(admin.TabularInline):
    model = BusinessHoursRange
    extra = 0


@admin.register(BusinessHours)
class BusinessHoursAdmin(admin.ModelAdmin):
    list_display = ("name", "timezone")
    search_fields = ("name",)
    inlines = (BusinessHoursRangeInline,)


class SLATargetInline(admin.TabularInline):
    model = SLATarget
    extra = 0


@admin.register(SLAPolicy)
class SLAPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "business_hours")
    list_select_related = ("business_hours",)
    search_fields = ("name",)
    inlines = (SLATargetInline,)


class QueueMemberInline(admin.TabularInline):
    model = QueueMember
    extra = 0
    raw_id_fields = ("user",)


def _named_choices(names: list[str], current: str) -> list[tuple[str, str]]:
    """Blank ("any"), the configured names, and ``current`` if it is no longer one (so
    a form still shows what is stored)."""
    choices = [("", "any"), *((name, name) for name in names)]
    if current and current not in names:
        choices.append((current, f"{current} (not configured)"))
    return choices


class RoutingRuleForm(forms.ModelForm):
    """Tier and topic are picked from SUPPORTDESK_CUSTOMER_TIERS and SUPPORTDESK_TOPICS."""

    tier = forms.ChoiceField(required=False, help_text="The customer's tier; blank: any.")
    topic = forms.ChoiceField(
        required=False, help_text="The topic of the customer's messages; blank: any."
    )

    class Meta:
        model = RoutingRule
        fields = (
            "queue",
            "position",
            "priority",
            "source",
            "keywords",
            "tier",
            "topic",
            "is_active",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        tier_field = self.fields["tier"]
        topic_field = self.fields["topic"]
        assert isinstance(tier_field, forms.ChoiceField)
        assert isinstance(topic_field, forms.ChoiceField)
        tier_field.choices = _named_choices(settings.SUPPORTDESK_CUSTOMER_TIERS, instance.tier)
        topic_field.choices = _named_choices(settings.SUPPORTDESK_TOPICS, instance.topic)


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    form = RoutingRuleForm
    extra = 0
    ordering = ("position", "id")


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "is_default",
        "auto_assign",
        "strategy",
        "default_priority",
        "sla_policy",
        "business_hours",
    )
    list_filter = ("auto_assign", "strategy")
    list_select_related = ("sla_policy", "business_hours")
    search_fields = ("name",)
    inlines = (QueueMemberInline, RoutingRuleInline)
    actions = ("turn_auto_assign_on", "turn_auto_assign_off")

    def save_related(
        self, request: HttpRequest, form: object, formsets: object, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)  # type: ignore[arg-type]
        queue = form.instance  # type: ignore[attr-defined]
        for user_id in queue.memberships.filter(role=QueueRole.AGENT).values_list(
            "user_id", flat=True
        ):
            routing.agent_profile_ensure(user_id)
        # Through the service: turned on (or new members), the waiting work moves now.
        routing.queue_set_auto_assign(queue=queue, enabled=queue.auto_assign)

    @admin.action(description="Turn auto-assignment on", permissions=["change"])
    def turn_auto_assign_on(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        for queue in queryset:
            routing.queue_set_auto_assign(queue=queue, enabled=True)
        self.message_user(request, f"Auto-assignment is on for {len(queryset)} queue(s).")

    @admin.action(description="Turn auto-assignment off", permissions=["change"])
    def turn_auto_assign_off(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        for queue in queryset:
            routing.queue_set_auto_assign(queue=queue, enabled=False)
        self.message_user(request, f"Auto-assignment is off for {len(queryset)} queue(s).")


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    form = RoutingRuleForm
    list_display = (
        "__str__",
        "queue",
        "position",
        "priority",
        "source",
        "tier",
        "topic",
        "is_active",
    )
    list_editable = ("position", "is_active")
    list_filter = ("is_active", "queue", "tier", "topic")
    list_select_related = ("queue",)
    ordering = ("position", "id")


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "max_open", "capacity", "last_assigned_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__first_name", "user__last_name")
    raw_id_fields = ("user",)
    readonly_fields = ("last_assigned_at",)

    def save_model(
        self, request: HttpRequest, obj: AgentProfile, form: object, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[arg-type]
        # Through the service: a raised capacity takes waiting work at once.
        routing.agent_profile_set_capacity(user=obj.user, max_open=obj.max_open)


@admin.register(SLABreach)
class SLABreachAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("escalation", "queue", "target", "priority", "due_at", "breached_at")
    list_filter = ("target", "priority", "queue")
    list_select_related = ("escalation", "queue")
    date_hierarchy = "breached_at"
    ordering = ("-breached_at",)
    fields = ("escalation", "queue", "target", "priority", "due_at", "breached_at")
    readonly_fields = fields


# --- Notifications: webhook endpoints and the outbox (escalations.notifications) -------
# Endpoints are configuration rows, edited here; enabling and disabling go through the
# service (disabling fails what was still pending for the endpoint). Outbox rows are
# written and sent by the notifications code only: view-only, with a retry action.

from escalations import notifications  # noqa: E402
from escalations.models import OutboxMessage, OutboxStatus, WebhookEndpoint  # noqa: E402


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "active", "event_list", "description", "created_at")
    list_filter = ("active",)
    search_fields = ("url", "description")
    ordering = ("id",)
    fields = ("url", "events", "description", "active", "secret", "created_at")
    readonly_fields = ("created_at",)
    actions = ("disable_endpoints", "enable_endpoints")
    # A receiver URL typed without a scheme is an HTTPS one.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description="events")
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.events) if obj.events else "(all)"

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        # The switch goes through the service (disabling fails the pending deliveries);
        # a new endpoint is created active.
        return ("created_at", "active")

    @admin.action(description="Disable (fail their pending deliveries)", permissions=["change"])
    def disable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        endpoints = failed = 0
        for endpoint in queryset.filter(active=True):
            _, count = notifications.webhook_endpoint_set_active(endpoint=endpoint, active=False)
            endpoints += 1
            failed += count
        self.message_user(
            request,
            f"Disabled {endpoints} endpoint(s); {failed} pending delivery(ies) marked failed.",
            messages.SUCCESS if endpoints else messages.WARNING,
        )

    @admin.action(description="Enable", permissions=["change"])
    def enable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        endpoints = 0
        for endpoint in queryset.filter(active=False):
            notifications.webhook_endpoint_set_active(endpoint=endpoint, active=True)
            endpoints += 1
        self.message_user(
            request,
            f"Enabled {endpoints} endpoint(s). Retry their failed deliveries from the outbox.",
            messages.SUCCESS if endpoints else messages.WARNING,
        )


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "event",
        "recipient",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "error_preview",
    )
    list_filter = ("status", "kind", ("event", RecentValuesFilter), "endpoint")
    search_fields = ("=id", "=escalation__id", "=escalation__thread__id", "last_error")
    list_select_related = ("endpoint",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = (
        "id",
        "kind",
        "event",
        "endpoint",
        "escalation",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
        "payload",
        "dedupe_key",
        "created_at",
    )
    readonly_fields = fields
    actions = ("retry",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxMessage]:
        return super().get_queryset(request).select_related("endpoint", "escalation")

    @admin.display(description="to")
    def recipient(self, obj: OutboxMessage) -> str:
        if obj.kind == "webhook":
            return obj.endpoint.url if obj.endpoint is not None else "-"
        return ", ".join(obj.payload.get("to", [])) if isinstance(obj.payload, dict) else "-"

    @admin.display(description="last error")
    def error_preview(self, obj: OutboxMessage) -> str:
        return Truncator(obj.last_error).chars(CONTENT_PREVIEW_CHARS)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # The rows are view-only; sending one again is a change.
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description="Retry failed deliveries now", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        retried = 0
        for message in queryset.select_related("endpoint").order_by("created_at"):
            try:
                notifications.outbox_retry(message=message)
            except DomainError as error:  # NotRetryable, EndpointDisabled
                if message.status != OutboxStatus.FAILED:
                    continue  # pending or sent: nothing to retry, reported in the total
                self.message_user(
                    request, f"{message.kind} {message.event}: {error.message}", messages.ERROR
                )
            else:
                retried += 1
        skipped = queryset.count() - retried
        text = f"Queued {retried} delivery(ies) to be sent again now."
        if skipped:
            text += f" {skipped} not retried (only failed deliveries to enabled endpoints are)."
        self.message_user(request, text, messages.SUCCESS if retried else messages.WARNING)
