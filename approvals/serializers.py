"""Shapes of the approvals API (API.md ApprovalDraft)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import ApprovalDraft, RejectNext
from supportdesk.fields import MESSAGE_MAX_LENGTH, StrictChoiceField, TextField
from threads.serializers import StaffMessageSerializer, UserRefSerializer, user_ref


class ApprovalDraftSerializer(serializers.ModelSerializer):
    thread = serializers.UUIDField(source="thread_id", read_only=True)
    message = StaffMessageSerializer(read_only=True)
    decided_by = serializers.SerializerMethodField()
    sent_message = serializers.UUIDField(source="sent_message_id", read_only=True, allow_null=True)

    class Meta:
        model = ApprovalDraft
        fields = [
            "id", "thread", "kind", "message", "status", "content", "final_content", "edited",
            "diff", "review", "next_action", "confidence", "decided_by", "decided_at",
            "created_at", "expires_at", "sent_message",
        ]  # fmt: skip

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_decided_by(self, draft: ApprovalDraft) -> dict[str, Any] | None:
        return user_ref(draft.decided_by)


class ApproveInputSerializer(serializers.Serializer):
    content = TextField(max_length=MESSAGE_MAX_LENGTH, required=False)


class RejectInputSerializer(serializers.Serializer):
    review = TextField(max_length=5000, code_prefix="review")
    next = StrictChoiceField(
        choices=RejectNext.choices, required=False, default=RejectNext.REGENERATE
    )


class RejectSuggestionInputSerializer(serializers.Serializer):
    review = TextField(max_length=5000, allow_blank=True, required=False, default="")
