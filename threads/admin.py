"""The supervisors' admin for customers, threads, messages and assignments.

The admin only reads these models directly. Every write goes through ``threads.services``
(the same functions the API uses), so broadcasts and the assignment history stay right:
messages and assignments are view-only, a thread's form saves through ``thread_update``
and the changelist actions (assign to an agent, hand back to the AI, resolve, close) call
``thread_assign`` / ``thread_set_status``; a customer's only editable field, the
routing tier, saves through ``customer_set_tier``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.text import Truncator

from supportdesk.changelists import LargeTableAdmin, RecentValuesFilter
from threads import services
from threads.exceptions import DomainError
from threads.models import (
    Assignment,
    Customer,
    Message,
    Responder,
    Thread,
    ThreadStatus,
)

CONTENT_PREVIEW_CHARS = 120
# The only thread fields a supervisor edits by hand; thread_update is their one writer.
THREAD_EDITABLE_FIELDS = ("subject", "ai_mode", "priority")


def _content_preview(message: Message) -> str:
    # Truncator returns plain text; the admin escapes it when rendering.
    return Truncator(message.content).chars(CONTENT_PREVIEW_CHARS)


class ReadOnlyAdminMixin:
    """View-only: these rows are written by the services and never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The thread's transcript, oldest first."""

    model = Message
    ordering = ("seq",)
    fields = ("seq", "author_kind", "author_name", "role", "visibility", "preview", "created_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    verbose_name = "message"
    verbose_name_plural = "transcript"

    @admin.display(description="content")
    def preview(self, obj: Message) -> str:
        return _content_preview(obj)


class AssignmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Who responded on the thread over time, newest last."""

    model = Assignment
    ordering = ("id",)
    fields = ("created_at", "responder", "assignee", "assigned_by", "reason")
    readonly_fields = fields
    extra = 0
    verbose_name_plural = "assignment history"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assignment]:
        return super().get_queryset(request).select_related("assignee", "assigned_by")


def _agents() -> QuerySet[Any]:
    """Active staff and members of the ``agents`` group (threads.services.user_is_agent)."""
    users = get_user_model().objects
    members = users.filter(groups__name="agents").values("pk")
    # A subquery, not a join with DISTINCT: the changelists read no DISTINCT (tests).
    return users.filter(Q(is_staff=True) | Q(pk__in=members), is_active=True).order_by(
        "first_name", "last_name", "username"
    )


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return services.user_display_name(obj)


class ThreadActionForm(ActionForm):
    """The changelist's action bar, with the agent that "Assign to the chosen agent" uses."""

    assignee = AgentChoiceField(queryset=_agents(), required=False, label="Agent")


@admin.register(Thread)
class ThreadAdmin(LargeTableAdmin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "customer",
        "status",
        "responder",
        "assignee",
        "ai_mode",
        "priority",
        "last_seq",
        "updated_at",
    )
    list_filter = ("status", "responder", "ai_mode", "priority")
    search_fields = (
        "=id",
        "subject",
        "customer__name",
        "customer__email",
        "customer__external_id",
    )
    list_select_related = ("customer", "assignee")
    date_hierarchy = "created_at"
    # In full, as thread_updated_idx has it (Django would append "-pk" to "-updated_at").
    ordering = ("-updated_at", "id")
    readonly_fields = (
        "id",
        "customer",
        "status",
        "responder",
        "assignee",
        "last_seq",
        "sla_due_at",
        "token_hash",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": THREAD_EDITABLE_FIELDS}),
        ("State", {"fields": ("status", "responder", "assignee", "sla_due_at")}),
        (
            "System",
            {
                "fields": ("id", "customer", "last_seq", "token_hash", "created_at", "updated_at"),
                "classes": ("collapse",),
            },
        ),
    )
    inlines = (MessageInline, AssignmentInline)
    actions = ("assign_to_agent", "hand_back_to_ai", "mark_resolved", "close")
    action_form = ThreadActionForm

    def get_urls(self) -> list[Any]:
        # The conversation page and the dashboard (supportdesk/desk/admin_views.py); first,
        # so that the admin's catch-all object URL does not swallow them.
        from supportdesk.desk.admin_views import thread_admin_urls

        return [*thread_admin_urls(self), *super().get_urls()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Thread]:
        # The change page shows the customer and assignee: join them there too.
        return super().get_queryset(request).select_related("customer", "assignee")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Threads are opened by customers through the API (thread_create).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Thread | None = None) -> bool:
        # No service deletes a thread; closing it is the supported end of its life.
        return False

    def save_model(self, request: HttpRequest, obj: Thread, form: ModelForm, change: bool) -> None:
        # Never obj.save(): it would write back a stale last_seq over concurrent posts.
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        if changed:
            services.thread_update(thread=obj, **changed)

    @admin.action(description="Assign to the chosen agent", permissions=["change"])
    def assign_to_agent(self, request: HttpRequest, queryset: QuerySet[Thread]) -> None:
        # Only this field: the form's "action" choices are filled in by the changelist.
        try:
            agent = ThreadActionForm.base_fields["assignee"].clean(request.POST.get("assignee"))
        except forms.ValidationError:
            agent = None
        if agent is None:
            self.message_user(request, "Choose the agent to assign first.", messages.WARNING)
            return
        done = self._apply(
            request,
            queryset.exclude(responder=Responder.HUMAN, assignee=agent),
            lambda thread: services.thread_assign(
                thread=thread,
                responder=Responder.HUMAN,
                assignee=agent,
                assigned_by=request.user,
                reason="assigned in the admin",
            ),
        )
        name = services.user_display_name(agent)
        self.message_user(request, f"Assigned {done} thread(s) to {name}.", messages.SUCCESS)

    @admin.action(description="Hand back to AI", permissions=["change"])
    def hand_back_to_ai(self, request: HttpRequest, queryset: QuerySet[Thread]) -> None:
        done = self._apply(
            request,
            queryset.exclude(responder=Responder.AI),
            lambda thread: services.thread_assign(
                thread=thread,
                responder=Responder.AI,
                assigned_by=request.user,
                reason="handed back to the AI from the admin",
            ),
        )
        self.message_user(request, f"Handed {done} thread(s) back to the AI.", messages.SUCCESS)

    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[Thread]) -> None:
        done = self._set_status(request, queryset, ThreadStatus.RESOLVED)
        self.message_user(request, f"Marked {done} thread(s) resolved.", messages.SUCCESS)

    @admin.action(description="Close", permissions=["change"])
    def close(self, request: HttpRequest, queryset: QuerySet[Thread]) -> None:
        done = self._set_status(request, queryset, ThreadStatus.CLOSED)
        self.message_user(request, f"Closed {done} thread(s).", messages.SUCCESS)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Thread], status: str) -> int:
        return self._apply(
            request,
            queryset.exclude(status=status),
            lambda thread: services.thread_set_status(
                thread=thread, status=status, actor=request.user
            ),
        )

    def _apply(self, request: HttpRequest, queryset: QuerySet[Thread], change: Any) -> int:
        """Run ``change`` on each thread; one refused thread does not stop the others."""
        done = 0
        for thread in queryset:
            try:
                change(thread)
            except DomainError as error:
                self.message_user(request, f"{thread}: {error.message}", messages.ERROR)
            else:
                done += 1
        return done


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, LargeTableAdmin, admin.ModelAdmin):
    list_display = (
        "thread",
        "seq",
        "author_kind",
        "author_name",
        "role",
        "visibility",
        "preview",
        "provider",
        "model",
        "created_at",
    )
    list_filter = ("role", "author_kind", "visibility", ("provider", RecentValuesFilter))
    search_fields = ("content", "author_name", "thread__subject", "=thread__id")
    list_select_related = ("thread",)
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-seq")

    @admin.display(description="content")
    def preview(self, obj: Message) -> str:
        return _content_preview(obj)


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdminMixin, LargeTableAdmin, admin.ModelAdmin):
    list_display = ("thread", "responder", "assignee", "assigned_by", "reason", "created_at")
    list_filter = ("responder",)
    search_fields = (
        "reason",
        "thread__subject",
        "=thread__id",
        "assignee__username",
        "assigned_by__username",
    )
    list_select_related = ("thread", "assignee", "assigned_by")
    date_hierarchy = "created_at"
    ordering = ("-id",)


def tier_choices(current: str = "") -> list[tuple[str, str]]:
    """The configured tiers (plus ``current`` if it is no longer configured, so a form
    still shows what is stored)."""
    tiers = list(settings.SUPPORTDESK_CUSTOMER_TIERS)
    if current and current not in tiers:
        tiers.append(current)
    return [(tier, tier) for tier in tiers]


class TierFilter(admin.SimpleListFilter):
    """The configured tiers: Django's default filter for a plain field would read every
    distinct value of the column (a scan of the customers table)."""

    title = "tier"
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return tier_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(tier=self.value()) if self.value() else queryset


class CustomerForm(forms.ModelForm):
    tier = forms.ChoiceField(choices=tier_choices)

    class Meta:
        model = Customer
        fields = ("tier",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = tier_choices(self.instance.tier)  # type: ignore[attr-defined]


@admin.register(Customer)
class CustomerAdmin(LargeTableAdmin, admin.ModelAdmin):
    """Customers are created by the API; a supervisor sets only their routing tier
    (through ``customer_set_tier``)."""

    form = CustomerForm
    list_display = (
        "__str__",
        "email",
        "external_id",
        "tier",
        "verified",
        "thread_count",
        "created_at",
    )
    list_filter = (TierFilter, "verified")
    search_fields = ("name", "email", "external_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")  # customer_created_idx
    fields = ("name", "email", "external_id", "verified", "tier", "created_at")
    readonly_fields = ("name", "email", "external_id", "verified", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Threads protect their customer; no service deletes one.
        return False

    def save_model(
        self, request: HttpRequest, obj: Customer, form: ModelForm, change: bool
    ) -> None:
        if "tier" in form.changed_data:
            services.customer_set_tier(customer=obj, tier=form.cleaned_data["tier"])

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # A count per row in the page's query, through the threads' customer index: a
        # GROUP BY over customers joined to threads would aggregate the whole table.
        threads = (
            Thread.objects.filter(customer=OuterRef("pk"))
            .order_by()
            .values("customer")
            .annotate(total=Count("pk"))
            .values("total")
        )
        return super().get_queryset(request).annotate(thread_total=Coalesce(Subquery(threads), 0))

    @admin.display(description="threads", ordering="thread_total")
    def thread_count(self, obj: Any) -> int:
        return int(obj.thread_total)
