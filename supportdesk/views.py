"""Project-level endpoints: health, DRF token login, and the bench baseline."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import authenticate
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.defaults import page_not_found, server_error
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.api import client_ip, error_body, rate_limit, require_object
from threads.serializers import TokenInputSerializer, TokenOutputSerializer
from threads.services import user_is_agent

logger = logging.getLogger(__name__)

WORKER_STALE_AFTER = 60.0


def _check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except Exception:
        logger.warning("health: database check failed", exc_info=True)
        return False


async def _layer_roundtrip() -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    channel = await layer.new_channel("health.")
    await layer.send(channel, {"type": "health.ping"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2.0)
    return bool(message.get("type") == "health.ping")


def _check_channel_layer() -> bool:
    try:
        return bool(async_to_sync(_layer_roundtrip)())
    except Exception:
        logger.warning("health: channel layer check failed", exc_info=True)
        return False


def _worker_state() -> str:
    """``ok`` when some AI worker's sweeper reported in within the last minute."""
    from supportdesk.agent.models import WorkerHeartbeat

    cutoff = timezone.now() - timedelta(seconds=WORKER_STALE_AFTER)
    try:
        alive = WorkerHeartbeat.objects.filter(last_seen_at__gte=cutoff).exists()
    except Exception:
        return "stale"
    return "ok" if alive else "stale"


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and channel layer answer; 503 naming what failed."""
    database = _check_database()
    layer = _check_channel_layer()
    body = {
        "status": "ok" if database and layer else "unavailable",
        "database": "ok" if database else "down",
        "channel_layer": "ok" if layer else "down",
        "worker": _worker_state(),
    }
    response = JsonResponse(body, status=200 if database and layer else 503)
    if response.status_code == 503:
        response["Retry-After"] = "5"
    return response


class TokenLoginView(APIView):
    """``POST /api/v1/auth/token/``: a DRF token for an active staff user."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # Wrong credentials are a 401 (DRF answers 403 when no header can be given).
        return "Token"

    @extend_schema(request=TokenInputSerializer, responses={200: TokenOutputSerializer})
    def post(self, request: Request) -> Response:
        rate_limit("login_per_ip", client_ip(request))
        serializer = TokenInputSerializer(data=require_object(request))
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            raise exceptions.AuthenticationFailed("Wrong username or password.")
        if not user_is_agent(user):
            raise exceptions.PermissionDenied("Only support staff may have an API token.")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class BenchBareView(APIView):
    """A bare authenticated POST (bench settings only): the baseline for bench/api.py."""

    def post(self, request: Request) -> Response:
        require_object(request)
        return Response({"ok": True}, status=status.HTTP_201_CREATED)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return page_not_found(request, exception or Http404())
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return server_error(request)
    return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_forbidden(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Forbidden."), status=403)
