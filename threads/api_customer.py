"""The customer API (API.md "Customer API"), authenticated by the thread token."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.api import client_ip, idempotent, rate_limit, require_object
from threads import selectors, services
from threads.models import Thread
from threads.serializers import (
    CustomerMessageSerializer,
    CustomerThreadSerializer,
    MessageInputSerializer,
    MessagePageSerializer,
    ThreadCreatedSerializer,
    ThreadCreateInputSerializer,
)


class ThreadTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <thread token>``; the view checks it against the thread."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AnonymousUser, str] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        token = token.strip()
        if not token or len(token) > 512:
            raise exceptions.AuthenticationFailed("Invalid thread token.")
        return AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="thread"'


class CustomerView(APIView):
    authentication_classes = [ThreadTokenAuthentication]
    permission_classes = [AllowAny]
    # The embedded widget calls these from the shop's origin (supportdesk/cors.py).
    widget_cors = True

    def get_thread(self, request: Request, thread_id: Any) -> Thread:
        if not isinstance(request.auth, str):
            raise exceptions.NotAuthenticated(
                "Send the thread token as 'Authorization: Bearer <token>'."
            )
        thread = selectors.thread_get_for_customer(thread_id=thread_id, token=request.auth)
        if thread is None:
            # The same answer for an unknown thread and a wrong token.
            raise exceptions.NotFound("Not found.")
        return thread


def customer_thread_scope(view: CustomerView, request: Request, kwargs: dict[str, Any]) -> str:
    thread = view.get_thread(request, kwargs["thread_id"])
    return f"thread:{thread.pk}"


def _create_scope(view: APIView, request: Request, kwargs: dict[str, Any]) -> str:
    return "thread-create"


class ThreadCreateView(APIView):
    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    widget_cors = True

    @extend_schema(
        request=ThreadCreateInputSerializer,
        responses={201: ThreadCreatedSerializer},
        summary="Open a thread as a customer",
        description=(
            "Everything in `customer` is the customer's own claim, except what the "
            "embedding site's backend signed: with a valid `customer.signature` (see "
            "`CustomerInput`) the thread joins that `external_id`'s customer record and "
            "a signed `tier` applies; without one `tier` is ignored. A signature that does "
            "not verify is 400 `invalid_signature` and nothing is stored."
        ),
    )
    @idempotent(_create_scope)
    def post(self, request: Request) -> Response:
        rate_limit("thread_create_per_ip", client_ip(request))
        serializer = ThreadCreateInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer = data.get("customer") or {}
        thread, token = services.thread_create(
            customer_name=customer.get("name", ""),
            customer_email=customer.get("email", ""),
            customer_external_id=customer.get("external_id", ""),
            # Set only when the site's signature checked out (CustomerInputSerializer).
            customer_verified=customer.get("verified", False),
            customer_tier=customer.get("tier"),
            subject=data.get("subject", ""),
            message=data.get("message"),
        )
        body = {"thread": CustomerThreadSerializer(thread).data, "token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class ThreadDetailView(CustomerView):
    @extend_schema(
        responses={200: CustomerThreadSerializer}, summary="A thread, as its customer sees it"
    )
    def get(self, request: Request, thread_id: Any) -> Response:
        return Response(CustomerThreadSerializer(self.get_thread(request, thread_id)).data)


def parse_after_limit(request: Request) -> tuple[int, int]:
    """The ``after`` and ``limit`` query parameters of a message list, validated."""
    errors: dict[str, list[str]] = {}
    after = _int_param(request, "after", 0, 0, 2**31 - 1, errors)
    limit = _int_param(request, "limit", 50, 1, 200, errors)
    if errors:
        raise exceptions.ValidationError(errors)
    return after, limit


def _int_param(
    request: Request, name: str, default: int, low: int, high: int, errors: dict[str, list[str]]
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    # The length check comes first: int() refuses strings of more than 4 300 digits.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not (low <= int(raw) <= high):
        errors[name] = [f"Must be an integer from {low} to {high}."]
        return default
    return int(raw)


MESSAGE_LIST_PARAMETERS = [
    OpenApiParameter(
        "after",
        {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        description="Only messages with a greater seq",
    ),
    OpenApiParameter(
        "limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="1..200, default 50"
    ),
]


class ThreadMessagesView(CustomerView):
    @extend_schema(
        parameters=MESSAGE_LIST_PARAMETERS,
        responses={200: MessagePageSerializer},
        summary="Public messages after a seq",
    )
    def get(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(request, thread_id)
        after, limit = parse_after_limit(request)
        rows, has_more = selectors.message_list(
            thread=thread, after=after, limit=limit, public_only=True
        )
        return Response(
            {
                "results": CustomerMessageSerializer(rows, many=True).data,
                "last_seq": thread.last_seq,
                "has_more": has_more,
            }
        )

    @extend_schema(
        request=MessageInputSerializer,
        responses={201: CustomerMessageSerializer},
        summary="Post a customer message",
    )
    @idempotent(customer_thread_scope)
    def post(self, request: Request, thread_id: Any) -> Response:
        thread = self.get_thread(request, thread_id)
        serializer = MessageInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        rate_limit("message_per_thread", str(thread.pk))
        rate_limit("message_per_ip", client_ip(request))
        message = services.customer_message_create(
            thread=thread, content=serializer.validated_data["content"]
        )
        return Response(CustomerMessageSerializer(message).data, status=status.HTTP_201_CREATED)
