"""``GET /api/v1/desk/usage/``: LLM tokens, cost and latency rolled up, beside human work."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db.models import Avg, Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.agent.models import ModelCall
from threads.models import AuthorKind, Message, Visibility

GROUPS = ("day", "thread", "agent", "model")
MAX_ROWS = 1000


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    model_calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.CharField()
    avg_latency_ms = serializers.IntegerField(allow_null=True)
    human_messages = serializers.IntegerField()
    human_handle_seconds = serializers.IntegerField()


class UsageReportSerializer(serializers.Serializer):
    group_by = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    results = UsageRowSerializer(many=True)


def _parse_moment(raw: str | None, name: str, *, end: bool) -> datetime | None:
    if raw is None or raw == "":
        return None
    moment = parse_datetime(raw) if "T" in raw or " " in raw else None
    if moment is None:
        try:
            day = parse_date(raw)
        except ValueError:
            day = None
        if day is None:
            raise exceptions.ValidationError({name: ["Use an ISO 8601 date or date-time."]})
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def _empty_row(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "model_calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": "0",
        "avg_latency_ms": None,
        "human_messages": 0,
        "human_handle_seconds": 0,
    }


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
        until = _parse_moment(params.get("until"), "until", end=True) or timezone.now()
        since = _parse_moment(params.get("since"), "since", end=False) or until - timedelta(days=30)
        if since > until:
            raise exceptions.ValidationError({"since": ["Must not be after until."]})
        calls = ModelCall.objects.filter(created_at__gte=since, created_at__lt=until)
        human = Message.objects.filter(
            created_at__gte=since,
            created_at__lt=until,
            author_kind=AuthorKind.HUMAN,
            visibility=Visibility.PUBLIC,
        )
        rows = self._rows(group_by, calls, human)
        return Response(
            {"group_by": group_by, "since": since, "until": until, "results": rows[:MAX_ROWS]}
        )

    def _rows(
        self, group_by: str, calls: QuerySet[ModelCall], human: QuerySet[Message]
    ) -> list[dict[str, Any]]:
        key_field = {
            "day": "day",
            "thread": "thread_id",
            "model": "model",
            "agent": "provider",
        }[group_by]
        if group_by == "day":
            calls = calls.annotate(day=TruncDate("created_at"))
            human = human.annotate(day=TruncDate("created_at"))
        rows: dict[str, dict[str, Any]] = {}
        totals = (
            calls.values(key_field)
            .annotate(
                n=Count("pk"),
                prompt=Sum("prompt_tokens"),
                completion=Sum("completion_tokens"),
                cost=Sum("cost"),
                latency=Avg("latency_ms"),
            )
            .order_by(key_field)
        )
        for total in totals:
            key = str(total[key_field])
            row = rows.setdefault(key, _empty_row(key))
            row.update(
                model_calls=total["n"],
                prompt_tokens=total["prompt"] or 0,
                completion_tokens=total["completion"] or 0,
                cost=str(total["cost"] or 0),
                avg_latency_ms=int(total["latency"]) if total["latency"] is not None else None,
            )
        human_key = {
            "day": "day",
            "thread": "thread_id",
            "agent": "author_user__username",
            "model": None,
        }[group_by]
        if human_key is not None:
            for total in human.values(human_key).annotate(n=Count("pk")).order_by(human_key):
                key = str(total[human_key])
                rows.setdefault(key, _empty_row(key))["human_messages"] = total["n"]
        return [rows[key] for key in sorted(rows)]
