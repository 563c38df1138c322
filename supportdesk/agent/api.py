"""``GET /api/v1/desk/usage/``: LLM tokens, cost and latency rolled up, beside human work
(the roll-up itself is ``supportdesk.agent.selectors.usage_rows``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.agent.selectors import GROUPS, WindowError, usage_rows, usage_window


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    model_calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.CharField()
    avg_latency_ms = serializers.IntegerField(allow_null=True)
    human_messages = serializers.IntegerField()
    human_handle_seconds = serializers.IntegerField(
        help_text="Escalations claimed and resolved: seconds from claim to resolution."
    )
    human_active_seconds = serializers.IntegerField(
        help_text="Active reply time: per human reply, the time since the message it "
        "answers, capped."
    )
    drafts_edited = serializers.IntegerField()
    escalations_handled = serializers.IntegerField()


class UsageReportSerializer(serializers.Serializer):
    group_by = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    results = UsageRowSerializer(many=True)


class UsageView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since",
                OpenApiTypes.STR,
                description="ISO date or date-time (default: 30 days ago)",
            ),
            OpenApiParameter(
                "until", OpenApiTypes.STR, description="ISO date or date-time (default: now)"
            ),
            OpenApiParameter(
                "group_by", OpenApiTypes.STR, enum=list(GROUPS), description="default: day"
            ),
        ],
        responses={200: UsageReportSerializer},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        group_by = params.get("group_by") or "day"
        if group_by not in GROUPS:
            raise exceptions.ValidationError({"group_by": [f"Use one of {', '.join(GROUPS)}."]})
        try:
            since, until = usage_window(params.get("since"), params.get("until"))
        except WindowError as exc:
            raise exceptions.ValidationError({exc.field: [str(exc)]}) from None
        rows = usage_rows(since=since, until=until, group_by=group_by)
        return Response({"group_by": group_by, "since": since, "until": until, "results": rows})
