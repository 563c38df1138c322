"""Approval drafts and copilot suggestions for the desk (API.md "Staff API")."""

from __future__ import annotations

from typing import Any

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import services
from approvals.models import ApprovalDraft, DraftKind, DraftStatus
from approvals.serializers import (
    ApprovalDraftSerializer,
    ApproveInputSerializer,
    RejectInputSerializer,
    RejectSuggestionInputSerializer,
)
from escalations.api import NewestFirstPagination
from supportdesk.api import idempotent, require_object, staff_scope


def approval_queryset() -> Any:
    return ApprovalDraft.objects.select_related("decided_by", "message__author_user")


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DraftStatus.choices)
    kind = django_filters.ChoiceFilter(choices=DraftKind.choices)
    thread = django_filters.UUIDFilter(field_name="thread_id")

    class Meta:
        model = ApprovalDraft
        fields: list[str] = []


class ApprovalListView(generics.ListAPIView):
    serializer_class = ApprovalDraftSerializer
    pagination_class = NewestFirstPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ApprovalFilter

    def get_queryset(self) -> Any:
        return approval_queryset()


def _get_draft(draft_id: Any) -> ApprovalDraft:
    draft = approval_queryset().filter(pk=draft_id).first()
    if draft is None:
        raise exceptions.NotFound("Not found.")
    return draft


def _body(request: Request) -> dict[str, Any]:
    return require_object(request, allow_empty=True)


class ApprovalApproveView(APIView):
    @extend_schema(request=ApproveInputSerializer, responses={200: ApprovalDraftSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, draft_id: Any) -> Response:
        draft = _get_draft(draft_id)
        serializer = ApproveInputSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        services.approval_approve(
            draft=draft, user=request.user, content=serializer.validated_data.get("content")
        )
        return Response(ApprovalDraftSerializer(_get_draft(draft.pk)).data)


class ApprovalRejectView(APIView):
    @extend_schema(request=RejectInputSerializer, responses={200: ApprovalDraftSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, draft_id: Any) -> Response:
        draft = _get_draft(draft_id)
        if draft.kind == DraftKind.SUGGESTION:
            # Discarding a suggestion needs no review.
            serializer: Any = RejectSuggestionInputSerializer(data=_body(request))
        else:
            serializer = RejectInputSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        kwargs = {"next_action": data["next"]} if "next" in data else {}
        services.approval_reject(
            draft=draft, user=request.user, review=data.get("review", ""), **kwargs
        )
        return Response(ApprovalDraftSerializer(_get_draft(draft.pk)).data)
