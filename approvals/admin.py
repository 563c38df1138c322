"""The supervisors' admin for AI drafts waiting on a human.

Drafts are view-only: the changelist's actions decide them through
``approvals.services`` (``approval_approve`` / ``approval_reject``), so a decision is
taken exactly once, the approved text goes out as a new public message and a rejection
hands the thread to a person. The actions need the model's change permission (the
``decide`` action permission below).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator

from approvals import services
from approvals.models import ApprovalDraft, RejectNext
from supportdesk.changelists import LargeTableAdmin
from threads.admin import CONTENT_PREVIEW_CHARS, ReadOnlyAdminMixin
from threads.exceptions import DomainError


@admin.register(ApprovalDraft)
class ApprovalDraftAdmin(ReadOnlyAdminMixin, LargeTableAdmin, admin.ModelAdmin):
    list_display = (
        "thread",
        "kind",
        "status",
        "content_preview",
        "confidence",
        "decided_by",
        "created_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("=thread__id", "content")
    list_select_related = ("thread", "decided_by")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")  # draft_created_idx
    fieldsets = (
        (None, {"fields": ("id", "thread", "kind", "status", "confidence", "content")}),
        (
            "Decision",
            {
                "fields": (
                    "decided_by",
                    "decided_at",
                    "final_content",
                    "edited",
                    "diff",
                    "review",
                    "next_action",
                    "sent_message",
                ),
            },
        ),
        ("System", {"fields": ("message", "turn_id", "created_at", "expires_at")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)
    actions = ("approve", "reject_to_human")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalDraft]:
        return (
            super()
            .get_queryset(request)
            .select_related("thread", "decided_by", "message", "sent_message")
        )

    def has_decide_permission(self, request: HttpRequest) -> bool:
        # The rows are view-only, but deciding one is a change: it needs that permission.
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.display(description="content")
    def content_preview(self, obj: ApprovalDraft) -> str:
        # Plain text; the admin escapes it when rendering.
        return Truncator(obj.content).chars(CONTENT_PREVIEW_CHARS)

    @admin.action(description="Approve", permissions=["decide"])
    def approve(self, request: HttpRequest, queryset: QuerySet[ApprovalDraft]) -> None:
        done = self._apply(
            request,
            queryset,
            lambda draft: services.approval_approve(draft=draft, user=request.user),
        )
        self._report(request, f"Approved and sent {done} draft(s).", done)

    @admin.action(description="Reject and hand to a person", permissions=["decide"])
    def reject_to_human(self, request: HttpRequest, queryset: QuerySet[ApprovalDraft]) -> None:
        review = f"Rejected in the admin by {request.user.get_username()}"
        done = self._apply(
            request,
            queryset,
            lambda draft: services.approval_reject(
                draft=draft, user=request.user, review=review, next_action=RejectNext.HUMAN
            ),
        )
        self._report(request, f"Rejected {done} draft(s).", done)

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[ApprovalDraft],
        change: Callable[[ApprovalDraft], object],
    ) -> int:
        """Run ``change`` on each draft; one refused draft does not stop the others."""
        done = 0
        for draft in queryset.select_related("thread", "message").order_by("created_at"):
            try:
                change(draft)
            except DomainError as error:  # AlreadyDecided, ThreadClosed, …
                self.message_user(
                    request, f"Draft on “{draft.thread}”: {error.message}", messages.ERROR
                )
            else:
                done += 1
        return done

    def _report(self, request: HttpRequest, text: str, done: int) -> None:
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)
