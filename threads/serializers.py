"""Input and output shapes of the thread API (API.md "Objects")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from supportdesk.fields import (
    MESSAGE_MAX_LENGTH,
    StrictBooleanField,
    StrictChoiceField,
    StrictEmailField,
    TextField,
)
from threads import identity, selectors
from threads.models import (
    AIMode,
    Assignment,
    Customer,
    Message,
    Priority,
    Responder,
    Thread,
    ThreadStatus,
)
from threads.services import user_display_name

# --- Output ----------------------------------------------------------------------


class AgentSerializer(serializers.Serializer):
    name = serializers.CharField()


class CustomerThreadSerializer(serializers.ModelSerializer):
    agent = serializers.SerializerMethodField()

    class Meta:
        model = Thread
        fields = ["id", "status", "responder", "agent", "created_at", "last_seq"]

    @extend_schema_field(AgentSerializer(allow_null=True))
    def get_agent(self, thread: Thread) -> dict[str, str] | None:
        if thread.responder == Responder.HUMAN and thread.assignee_id is not None:
            return {"name": user_display_name(thread.assignee)}
        return None


class CustomerRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField()
    external_id = serializers.CharField()
    tier = serializers.CharField(help_text="A name of SUPPORTDESK_CUSTOMER_TIERS")
    verified = serializers.BooleanField(
        help_text="external_id was signed by the embedding site (identity verification)"
    )


def customer_ref(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "name": customer.name,
        "email": customer.email,
        "external_id": customer.external_id,
        "tier": customer.tier,
        "verified": customer.verified,
    }


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()


def user_ref(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username(), "name": user_display_name(user)}


class StaffThreadSerializer(CustomerThreadSerializer):
    customer = serializers.SerializerMethodField()
    assignee = serializers.SerializerMethodField()
    open_escalation = serializers.SerializerMethodField()
    pending_approvals = serializers.SerializerMethodField()
    pending_human_requests = serializers.SerializerMethodField()

    class Meta:
        model = Thread
        fields = [
            *CustomerThreadSerializer.Meta.fields,
            "subject",
            "customer",
            "assignee",
            "ai_mode",
            "priority",
            "open_escalation",
            "pending_approvals",
            "pending_human_requests",
            "sla_due_at",
            "updated_at",
        ]

    @extend_schema_field(CustomerRefSerializer)
    def get_customer(self, thread: Thread) -> dict[str, Any]:
        return customer_ref(thread.customer)

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_assignee(self, thread: Thread) -> dict[str, Any] | None:
        return user_ref(thread.assignee)

    @extend_schema_field({"type": "object", "additionalProperties": {}, "nullable": True})
    def get_open_escalation(self, thread: Thread) -> dict[str, Any] | None:
        return selectors.staff_thread_field(thread, "open_escalation", None)

    @extend_schema_field(OpenApiTypes.INT)
    def get_pending_approvals(self, thread: Thread) -> int:
        return int(selectors.staff_thread_field(thread, "pending_approvals", 0) or 0)

    @extend_schema_field(OpenApiTypes.INT)
    def get_pending_human_requests(self, thread: Thread) -> int:
        return int(selectors.staff_thread_field(thread, "pending_human_requests", 0) or 0)


class AuthorSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()


class StaffAuthorSerializer(AuthorSerializer):
    user = serializers.IntegerField(allow_null=True)


class CustomerMessageSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    thread = serializers.UUIDField(source="thread_id", read_only=True)

    class Meta:
        model = Message
        fields = ["id", "thread", "seq", "role", "author", "content", "created_at"]

    @extend_schema_field(AuthorSerializer)
    def get_author(self, message: Message) -> dict[str, Any]:
        return {"kind": message.author_kind, "name": message.author_name}


class ToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    arguments = serializers.DictField()


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()


class StaffMessageSerializer(CustomerMessageSerializer):
    tool_calls = ToolCallSerializer(many=True, read_only=True)
    usage = UsageSerializer(allow_null=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            *CustomerMessageSerializer.Meta.fields,
            "visibility",
            "provider",
            "model",
            "tool_calls",
            "tool_call_id",
            "usage",
        ]

    @extend_schema_field(StaffAuthorSerializer)
    def get_author(self, message: Message) -> dict[str, Any]:
        return {
            "kind": message.author_kind,
            "name": message.author_name,
            "user": message.author_user_id,
        }


class MessagePageSerializer(serializers.Serializer):
    results = CustomerMessageSerializer(many=True)
    last_seq = serializers.IntegerField()
    has_more = serializers.BooleanField()


class StaffMessagePageSerializer(serializers.Serializer):
    results = StaffMessageSerializer(many=True)
    last_seq = serializers.IntegerField()
    has_more = serializers.BooleanField()


class ThreadCreatedSerializer(serializers.Serializer):
    thread = CustomerThreadSerializer()
    token = serializers.CharField()


class AssignmentSerializer(serializers.ModelSerializer):
    assignee = serializers.SerializerMethodField()
    assigned_by = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = ["id", "responder", "assignee", "assigned_by", "reason", "created_at"]

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_assignee(self, assignment: Assignment) -> dict[str, Any] | None:
        return user_ref(assignment.assignee)

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_assigned_by(self, assignment: Assignment) -> dict[str, Any] | None:
        return user_ref(assignment.assigned_by)


# --- Input -----------------------------------------------------------------------


class CustomerInputSerializer(serializers.Serializer):
    """Who the customer says they are. Only a valid `signature` (threads.identity) makes
    `external_id` and `tier` count; without one `tier` is ignored."""

    name = TextField(max_length=200, allow_blank=True, required=False, default="")
    email = StrictEmailField(max_length=254, required=False, default="")
    external_id = TextField(max_length=255, allow_blank=True, required=False, default="")
    tier = TextField(
        max_length=30,
        allow_blank=True,
        required=False,
        help_text=(
            "The customer's tier (SUPPORTDESK_CUSTOMER_TIERS), as the embedding site's "
            "backend signed it. Ignored without `signature`."
        ),
    )
    signature = TextField(
        max_length=128,
        required=False,
        help_text=(
            'Hex HMAC-SHA256 of "v1:<tier>:<external_id>" (tier empty when not sent) with '
            "the site's identity secret. Valid: the thread joins that customer's existing "
            "record and the tier applies. Wrong: 400 `invalid_signature`."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        signature = attrs.pop("signature", None)
        tier = attrs.pop("tier", "")
        attrs["verified"] = False
        if signature is None:
            return attrs  # an unsigned tier is only the customer's own claim
        if not identity.identity_secrets():
            raise _field_error(
                "signature",
                "Identity verification is not configured on this server.",
                "identity_verification_off",
            )
        external_id = attrs.get("external_id", "")
        if not external_id:
            raise _field_error(
                "external_id", "A signed customer needs an external_id.", "external_id_required"
            )
        if not identity.identity_verify(external_id=external_id, tier=tier, signature=signature):
            raise _field_error(
                "signature",
                "The signature does not match external_id and tier.",
                "invalid_signature",
            )
        tiers = settings.SUPPORTDESK_CUSTOMER_TIERS
        if tier and tier not in tiers:
            raise _field_error(
                "tier", f"Unknown tier; use one of {', '.join(tiers)}.", "invalid_tier"
            )
        attrs["verified"] = True
        if tier:
            attrs["tier"] = tier
        return attrs


def _field_error(field: str, message: str, code: str) -> serializers.ValidationError:
    return serializers.ValidationError({field: [ErrorDetail(message, code=code)]})


class ThreadCreateInputSerializer(serializers.Serializer):
    customer = CustomerInputSerializer(required=False)
    subject = TextField(max_length=200, allow_blank=True, required=False, default="")
    message = TextField(max_length=MESSAGE_MAX_LENGTH, required=False, code_prefix="content")


class MessageInputSerializer(serializers.Serializer):
    content = TextField(max_length=MESSAGE_MAX_LENGTH)


class ReplyInputSerializer(serializers.Serializer):
    content = TextField(max_length=MESSAGE_MAX_LENGTH)
    internal = StrictBooleanField(required=False, default=False)


class AssignInputSerializer(serializers.Serializer):
    responder = StrictChoiceField(choices=Responder.choices)
    assignee = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62
    )
    reason = TextField(max_length=500, allow_blank=True, required=False, default="")

    def validate_assignee(self, value: Any) -> Any:
        if isinstance(self.initial_data, dict) and isinstance(
            self.initial_data.get("assignee"), bool | str | float
        ):
            raise serializers.ValidationError("Must be a user id.", code="invalid_type")
        return value


class StatusInputSerializer(serializers.Serializer):
    status = StrictChoiceField(
        choices=[ThreadStatus.OPEN, ThreadStatus.RESOLVED, ThreadStatus.CLOSED]
    )


class ThreadPatchInputSerializer(serializers.Serializer):
    ai_mode = StrictChoiceField(choices=AIMode.choices, required=False)
    priority = StrictChoiceField(choices=Priority.choices, required=False)
    subject = TextField(max_length=200, allow_blank=True, required=False)


class CustomerPatchInputSerializer(serializers.Serializer):
    tier = TextField(max_length=30, help_text="A name of SUPPORTDESK_CUSTOMER_TIERS")


class TokenInputSerializer(serializers.Serializer):
    username = TextField(max_length=150)
    password = TextField(max_length=4096, strip=False)


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()
