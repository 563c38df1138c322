"""Output and input shapes of the escalation and human-request API (API.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from escalations.models import Escalation, HumanRequest
from supportdesk.fields import StrictChoiceField, TextField
from threads.models import Responder
from threads.serializers import UserRefSerializer, user_ref


class QueueRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class EscalationSerializer(serializers.ModelSerializer):
    thread = serializers.UUIDField(source="thread_id", read_only=True)
    claimed_by = serializers.SerializerMethodField()
    # The routing queue it waits in (escalations.routing), if any.
    queue = serializers.SerializerMethodField()

    class Meta:
        model = Escalation
        fields = [
            "id", "thread", "source", "reason", "confidence", "ai_suggestion", "summary",
            "priority", "status", "claimed_by", "created_at", "claimed_at", "resolved_at",
            "sla_due_at", "queue", "topic",
        ]  # fmt: skip
        extra_kwargs = {
            "topic": {
                "help_text": 'What the customer wrote about (SUPPORTDESK_TOPICS); "" for none'
            }
        }

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_claimed_by(self, escalation: Escalation) -> dict[str, Any] | None:
        return user_ref(escalation.claimed_by)

    @extend_schema_field(QueueRefSerializer(allow_null=True))
    def get_queue(self, escalation: Escalation) -> dict[str, Any] | None:
        queue = escalation.queue
        return {"id": queue.pk, "name": queue.name} if queue is not None else None


class HumanRequestSerializer(serializers.ModelSerializer):
    thread = serializers.UUIDField(source="thread_id", read_only=True)
    answered_by = serializers.SerializerMethodField()

    class Meta:
        model = HumanRequest
        fields = [
            "id", "thread", "question", "tool_call_id", "status", "answer", "answered_by",
            "created_at", "answered_at", "expires_at", "context",
        ]  # fmt: skip

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_answered_by(self, request: HumanRequest) -> dict[str, Any] | None:
        return user_ref(request.answered_by)


class ResolveInputSerializer(serializers.Serializer):
    note = TextField(max_length=2000, allow_blank=True, required=False, default="")
    responder = StrictChoiceField(choices=Responder.choices, required=False)


class HandoffInputSerializer(serializers.Serializer):
    reason = TextField(max_length=500, allow_blank=True, required=False, default="")


class AnswerInputSerializer(serializers.Serializer):
    answer = TextField(max_length=10_000, code_prefix="answer")
