"""The staff API for threads (API.md "Staff API"): list, detail, messages, reply,
assign, assignment history and status."""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.api import idempotent, require_object, staff_scope
from threads import selectors, services
from threads.api_customer import MESSAGE_LIST_PARAMETERS, _int_param, parse_after_limit
from threads.exceptions import InvalidAssignee
from threads.models import AIMode, Customer, Priority, Responder, Thread, ThreadStatus
from threads.serializers import (
    AssignInputSerializer,
    AssignmentSerializer,
    CustomerPatchInputSerializer,
    CustomerRefSerializer,
    ReplyInputSerializer,
    StaffMessagePageSerializer,
    StaffMessageSerializer,
    StaffThreadSerializer,
    StatusInputSerializer,
    ThreadPatchInputSerializer,
    customer_ref,
)


class DeskCursorPagination(CursorPagination):
    """Keyset pagination: no COUNT(*) and no OFFSET, so page 1 000 costs what page 1 does."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "-updated_at"

    def get_page_size(self, request: Request) -> int:
        # DRF silently falls back to the default for a bad limit; API.md wants a 400.
        raw = request.query_params.get("limit")
        if raw is None or raw == "":
            return self.page_size
        if (
            not raw.isascii()
            or not raw.isdigit()
            or len(raw) > 10
            or not 1 <= int(raw) <= self.max_page_size
        ):
            raise exceptions.ValidationError(
                {"limit": [f"Must be an integer from 1 to {self.max_page_size}."]}
            )
        return int(raw)


class ThreadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ThreadStatus.choices)
    responder = django_filters.ChoiceFilter(choices=Responder.choices)
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    ai_mode = django_filters.ChoiceFilter(choices=AIMode.choices)
    assignee = django_filters.CharFilter(method="filter_assignee", max_length=20)
    has_open_escalation = django_filters.BooleanFilter(method="filter_has_open_escalation")
    has_pending_approval = django_filters.BooleanFilter(method="filter_has_pending_approval")
    queue = django_filters.CharFilter(method="filter_queue", max_length=20)
    q = django_filters.CharFilter(method="filter_q", max_length=200)

    class Meta:
        model = Thread
        fields: list[str] = []

    def filter_assignee(
        self, queryset: QuerySet[Thread], name: str, value: str
    ) -> QuerySet[Thread]:
        if value == "me":
            return queryset.filter(assignee=self.request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        # Ids beyond a 64-bit integer would overflow the database driver.
        if value.isascii() and value.isdigit() and int(value) < 2**63:
            return queryset.filter(assignee_id=int(value))
        raise exceptions.ValidationError({"assignee": ["Use a user id, 'me' or 'none'."]})

    def filter_has_open_escalation(
        self, queryset: QuerySet[Thread], name: str, value: bool | None
    ) -> QuerySet[Thread]:
        return selectors.thread_filter_open_escalation(queryset, value)

    def filter_has_pending_approval(
        self, queryset: QuerySet[Thread], name: str, value: bool | None
    ) -> QuerySet[Thread]:
        return selectors.thread_filter_pending_approval(queryset, value)

    def filter_queue(self, queryset: QuerySet[Thread], name: str, value: str) -> QuerySet[Thread]:
        if value.isascii() and value.isdigit() and int(value) < 2**63:
            return selectors.thread_filter_queue(queryset, int(value))
        raise exceptions.ValidationError({"queue": ["Use a queue id."]})

    def filter_q(self, queryset: QuerySet[Thread], name: str, value: str) -> QuerySet[Thread]:
        return selectors.thread_search(queryset, value.strip()) if value.strip() else queryset


class DeskThreadListView(generics.ListAPIView):
    serializer_class = StaffThreadSerializer
    pagination_class = DeskCursorPagination
    filterset_class = ThreadFilter
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    ordering_fields = ["updated_at", "created_at"]
    ordering = ["-updated_at"]

    def get_queryset(self) -> QuerySet[Thread]:
        return selectors.thread_list_for_staff()


class DeskThreadMixin:
    def get_thread(self, thread_id: Any) -> Thread:
        thread = selectors.thread_list_for_staff().filter(pk=thread_id).first()
        if thread is None:
            raise exceptions.NotFound("Not found.")
        return thread


class DeskThreadDetailView(DeskThreadMixin, APIView):
    @extend_schema(responses={200: StaffThreadSerializer})
    def get(self, request: Request, thread_id: Any) -> Response:
        return Response(StaffThreadSerializer(self.get_thread(thread_id)).data)

    @extend_schema(request=ThreadPatchInputSerializer, responses={200: StaffThreadSerializer})
    def patch(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(thread_id)
        serializer = ThreadPatchInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        thread = services.thread_update(thread=thread, **serializer.validated_data)
        return Response(StaffThreadSerializer(thread).data)


BEFORE_PARAMETER = OpenApiParameter(
    "before",
    {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    description=(
        "Only messages with a smaller seq. The page is then the newest `limit` of them "
        "(still in ascending seq) and `has_more` says whether older ones remain: open a "
        "thread at its newest page with `before=<last_seq + 1>`, then page back with "
        "`before=<the first seq shown>`."
    ),
)


class DeskThreadMessagesView(DeskThreadMixin, APIView):
    @extend_schema(
        parameters=[*MESSAGE_LIST_PARAMETERS, BEFORE_PARAMETER],
        responses={200: StaffMessagePageSerializer},
    )
    def get(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(thread_id)
        after, limit = parse_after_limit(request)
        errors: dict[str, list[str]] = {}
        before = _int_param(request, "before", 0, 1, 2**31 - 1, errors)
        if errors:
            raise exceptions.ValidationError(errors)
        if request.query_params.get("before"):
            rows, has_more = selectors.message_list_before(
                thread=thread, before=before, after=after, limit=limit, public_only=False
            )
        else:
            rows, has_more = selectors.message_list(
                thread=thread, after=after, limit=limit, public_only=False
            )
        return Response(
            {
                "results": StaffMessageSerializer(rows, many=True).data,
                "last_seq": thread.last_seq,
                "has_more": has_more,
            }
        )


class DeskReplyView(DeskThreadMixin, APIView):
    @extend_schema(
        request=ReplyInputSerializer,
        responses={201: StaffMessageSerializer},
    )
    @idempotent(staff_scope)
    def post(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(thread_id)
        serializer = ReplyInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        content = serializer.validated_data["content"]
        if serializer.validated_data["internal"]:
            message = services.internal_note_create(
                thread=thread, user=request.user, content=content
            )
        else:
            message = services.human_reply_create(thread=thread, user=request.user, content=content)
        return Response(StaffMessageSerializer(message).data, status=status.HTTP_201_CREATED)


class DeskAssignView(DeskThreadMixin, APIView):
    @extend_schema(request=AssignInputSerializer, responses={200: StaffThreadSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(thread_id)
        serializer = AssignInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        assignee = None
        if data.get("assignee") is not None:
            assignee = get_user_model().objects.filter(pk=data["assignee"]).first()
            if assignee is None:
                raise InvalidAssignee()
        thread = services.thread_assign(
            thread=thread,
            responder=data["responder"],
            assignee=assignee,
            assigned_by=request.user,
            reason=data.get("reason", ""),
        )
        return Response(StaffThreadSerializer(self.get_thread(thread.pk)).data)


class AssignmentPagination(DeskCursorPagination):
    ordering = "id"


class DeskAssignmentListView(DeskThreadMixin, generics.ListAPIView):
    serializer_class = AssignmentSerializer
    pagination_class = AssignmentPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        thread = self.get_thread(self.kwargs["thread_id"])
        return selectors.assignment_list(thread=thread)


class DeskStatusView(DeskThreadMixin, APIView):
    @extend_schema(request=StatusInputSerializer, responses={200: StaffThreadSerializer})
    @idempotent(staff_scope)
    def post(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(thread_id)
        serializer = StatusInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        thread = services.thread_set_status(
            thread=thread, status=serializer.validated_data["status"], actor=request.user
        )
        return Response(StaffThreadSerializer(thread).data)


class DeskCustomerDetailView(APIView):
    """A customer as staff see it; a supervisor (the ``threads.change_customer``
    permission, as in the admin) sets their routing tier."""

    @extend_schema(responses={200: CustomerRefSerializer})
    def get(self, request: Request, customer_id: int) -> Response:
        return Response(customer_ref(self._customer(customer_id)))

    @extend_schema(
        request=CustomerPatchInputSerializer,
        responses={200: CustomerRefSerializer},
        description=(
            "Set the customer's routing tier. Needs the `threads.change_customer` "
            "permission (403 otherwise); an unknown tier is 400 `invalid_tier`."
        ),
    )
    def patch(self, request: Request, customer_id: int) -> Response:
        customer = self._customer(customer_id)
        if not request.user.has_perm("threads.change_customer"):
            raise exceptions.PermissionDenied("Only supervisors may change a customer's tier.")
        serializer = CustomerPatchInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        customer = services.customer_set_tier(
            customer=customer, tier=serializer.validated_data["tier"]
        )
        return Response(customer_ref(customer))

    def _customer(self, customer_id: int) -> Customer:
        # Beyond a 64-bit integer the database driver would overflow: no such customer.
        customer = (
            selectors.customer_get_for_staff(customer_id=customer_id)
            if customer_id < 2**63
            else None
        )
        if customer is None:
            raise exceptions.NotFound("Not found.")
        return customer
