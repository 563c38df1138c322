"""Escalation queue and human-request endpoints (staff), and the customer handoff."""

from __future__ import annotations

from typing import Any

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from escalations import selectors, services
from escalations.models import (
    Escalation,
    EscalationSource,
    EscalationStatus,
    HumanRequest,
    HumanRequestStatus,
)
from escalations.serializers import (
    AnswerInputSerializer,
    EscalationSerializer,
    HandoffInputSerializer,
    HumanRequestSerializer,
    ResolveInputSerializer,
)
from supportdesk.api import idempotent, rate_limit, require_object, staff_scope
from threads.api_customer import CustomerView, customer_thread_scope
from threads.api_desk import DeskCursorPagination
from threads.serializers import CustomerThreadSerializer


class NewestFirstPagination(DeskCursorPagination):
    ordering = "-created_at"


class EscalationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=EscalationStatus.choices)
    source = django_filters.ChoiceFilter(choices=EscalationSource.choices)
    thread = django_filters.UUIDFilter(field_name="thread_id")
    topic = django_filters.CharFilter(max_length=30, help_text="A topic of SUPPORTDESK_TOPICS")

    class Meta:
        model = Escalation
        fields: list[str] = []


class EscalationListView(generics.ListAPIView):
    serializer_class = EscalationSerializer
    pagination_class = NewestFirstPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = EscalationFilter

    def get_queryset(self) -> Any:
        return selectors.escalation_list()


def _get_escalation(escalation_id: Any) -> Escalation:
    escalation = selectors.escalation_list().filter(pk=escalation_id).first()
    if escalation is None:
        raise exceptions.NotFound("Not found.")
    return escalation


class EscalationClaimView(APIView):
    @extend_schema(request=None, responses={200: EscalationSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, escalation_id: Any) -> Response:
        escalation = services.escalation_claim(
            escalation=_get_escalation(escalation_id), user=request.user
        )
        return Response(EscalationSerializer(_get_escalation(escalation.pk)).data)


class EscalationResolveView(APIView):
    @extend_schema(request=ResolveInputSerializer, responses={200: EscalationSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, escalation_id: Any) -> Response:
        escalation = _get_escalation(escalation_id)
        serializer = ResolveInputSerializer(data=require_object(request, allow_empty=True))
        serializer.is_valid(raise_exception=True)
        escalation = services.escalation_resolve(
            escalation=escalation,
            user=request.user,
            note=serializer.validated_data.get("note", ""),
            responder=serializer.validated_data.get("responder"),
        )
        return Response(EscalationSerializer(_get_escalation(escalation.pk)).data)


class HumanRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=HumanRequestStatus.choices)
    thread = django_filters.UUIDFilter(field_name="thread_id")

    class Meta:
        model = HumanRequest
        fields: list[str] = []


class HumanRequestListView(generics.ListAPIView):
    serializer_class = HumanRequestSerializer
    pagination_class = NewestFirstPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = HumanRequestFilter

    def get_queryset(self) -> Any:
        return selectors.human_request_list()


class HandoffView(CustomerView):
    """The customer asks for a person: opens (or joins) the thread's escalation."""

    @extend_schema(request=HandoffInputSerializer, responses={202: CustomerThreadSerializer})
    @idempotent(customer_thread_scope)
    def post(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(request, thread_id)
        serializer = HandoffInputSerializer(data=require_object(request, allow_empty=True))
        serializer.is_valid(raise_exception=True)
        rate_limit("handoff_per_thread", str(thread.pk))
        reason = serializer.validated_data.get("reason") or "the customer asked for a person"
        services.escalation_open(
            thread=thread, source=EscalationSource.CUSTOMER_REQUEST, reason=reason
        )
        thread.refresh_from_db()
        return Response(CustomerThreadSerializer(thread).data, status=status.HTTP_202_ACCEPTED)


class HumanRequestAnswerView(APIView):
    @extend_schema(request=AnswerInputSerializer, responses={200: HumanRequestSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, request_id: Any) -> Response:
        human_request = selectors.human_request_list().filter(pk=request_id).first()
        if human_request is None:
            raise exceptions.NotFound("Not found.")
        serializer = AnswerInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        services.human_request_answer(
            request=human_request, user=request.user, answer=serializer.validated_data["answer"]
        )
        return Response(
            HumanRequestSerializer(selectors.human_request_list().get(pk=human_request.pk)).data
        )
