"""API plumbing shared by every endpoint: the error body, parsing, permissions,
idempotency keys and rate limits.

Error body (API.md): ``{"error": {"code", "message", "fields"?}}`` whatever the status.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from supportdesk.parsers import RequestBodyTooLarge
from threads.exceptions import DomainError
from threads.models import IdempotencyRecord

# Codes DRF uses for generic field errors; our own validators use specific codes, which
# are promoted to the top-level error code.
_GENERIC_CODES = {
    "invalid",
    "required",
    "null",
    "blank",
    "max_length",
    "min_length",
    "max_value",
    "min_value",
    "invalid_choice",
    "not_a_list",
    "empty",
    "does_not_exist",
    "incorrect_type",
    "max_string_length",
    "unique",
}

_CODE_OVERRIDES = {
    "parse_error": "invalid_json",
    "throttled": "rate_limited",
}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(status_code: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=status_code)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _flatten(detail: Any, prefix: str, out: dict[str, list[str]], codes: list[str]) -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if not prefix else f"{prefix}.{key}"
            _flatten(value, name, out, codes)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                _flatten(item, f"{prefix}.{index}" if prefix else str(index), out, codes)
            else:
                _flatten(item, prefix, out, codes)
    else:
        # Messages may echo the input (e.g. an invalid choice); a lone surrogate in it
        # could not be encoded as UTF-8 and would turn a 400 into a 500.
        message = str(detail).encode("utf-8", "replace").decode("utf-8")
        out.setdefault(prefix or "non_field_errors", []).append(message)
        codes.append(getattr(detail, "code", None) or "invalid")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map DRF and domain exceptions to the error body; unknown exceptions stay 500s."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message), status=exc.status)
    if isinstance(exc, RequestBodyTooLarge):
        return Response(error_body(exc.default_code, str(exc.detail)), status=413)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields: dict[str, list[str]] = {}
        codes: list[str] = []
        _flatten(exc.detail, "", fields, codes)
        specific = [code for code in codes if code not in _GENERIC_CODES]
        code = specific[0] if specific else "validation_error"
        response.data = error_body(code, "The request is not valid.", fields)
        return response
    if isinstance(exc, Http404):
        response.data = error_body("not_found", "Not found.")
        return response
    if isinstance(exc, DjangoPermissionDenied):
        response.data = error_body("permission_denied", "You may not do this.")
        return response
    if isinstance(exc, exceptions.APIException):
        default_code = str(exc.default_code)
        code = _CODE_OVERRIDES.get(default_code, default_code)
        message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        response.data = error_body(code, str(message))
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def require_object(data: Any, *, allow_empty: bool = False) -> dict[str, Any]:
    """The parsed body must be a JSON object.

    Pass the Request itself (not ``request.data``) to refuse an empty body as well: DRF
    never calls the parser for one and hands the view ``{}`` instead. With
    ``allow_empty`` (endpoints whose body is optional) an empty body is ``{}``, while a
    body that is not an object (``null``, ``[]``) is still refused.
    """
    if isinstance(data, Request):
        request, data = data, data.data
        if request.stream is None:
            if allow_empty:
                return {}
            raise exceptions.ParseError("The request body is empty; send a JSON object.")
    if not isinstance(data, dict):
        raise exceptions.ValidationError(
            {"non_field_errors": ["The request body must be a JSON object."]}, code="invalid"
        )
    return data


# --- Idempotency-Key ---------------------------------------------------------------


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all(0x21 <= ord(ch) <= 0x7E for ch in key)


def _request_hash(request: Request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError):
        body = repr(request.data)
    digest = hashlib.sha256()
    digest.update(request.method.encode() if request.method else b"")
    digest.update(b"\0" + request.path.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(body.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        return Response(
            error_body(
                "idempotency_mismatch",
                "This Idempotency-Key was used with a different request body.",
            ),
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def _cutoff() -> Any:
    return timezone.now() - timedelta(seconds=settings.SUPPORTDESK_IDEMPOTENCY_TTL_SECONDS)


def _find_record(scope: str, key: str) -> IdempotencyRecord | None:
    return IdempotencyRecord.objects.filter(scope=scope, key=key, created_at__gte=_cutoff()).first()


ViewMethod = Callable[..., Response]


def idempotent(
    scope: Callable[[Any, Request, dict[str, Any]], str],
) -> Callable[[ViewMethod], ViewMethod]:
    """Make a POST handler honour ``Idempotency-Key``.

    The first successful response is stored in the same transaction as the work it
    describes, so a crash can never leave work without its record or a record without
    its work. A concurrent duplicate loses on the unique (scope, key) constraint and
    replays the winner's response.
    """

    def decorator(handler: ViewMethod) -> ViewMethod:
        @wraps(handler)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            key = request.headers.get("Idempotency-Key")
            if key is None:
                return handler(view, request, *args, **kwargs)
            if not _valid_key(key):
                raise exceptions.ValidationError(
                    {"Idempotency-Key": ["Use 1 to 255 visible ASCII characters."]},
                    code="invalid_idempotency_key",
                )
            # The scope check authenticates the caller first, so a stored response is
            # never replayed to someone who could not have made the request.
            caller = scope(view, request, kwargs)
            request_hash = _request_hash(request)
            existing = _find_record(caller, key)
            if existing is not None:
                return _replay(existing, request_hash)
            try:
                with transaction.atomic():
                    response = handler(view, request, *args, **kwargs)
                    if 200 <= response.status_code < 300:
                        body = json.loads(JSONRenderer().render(response.data))
                        # Only an expired record may make way; a live one (a concurrent
                        # winner) must make this insert fail so the loser rolls back.
                        IdempotencyRecord.objects.filter(
                            scope=caller, key=key, created_at__lt=_cutoff()
                        ).delete()
                        IdempotencyRecord.objects.create(
                            scope=caller,
                            key=key,
                            request_hash=request_hash,
                            response_status=response.status_code,
                            response_body=body,
                        )
            except IntegrityError:
                winner = _find_record(caller, key)
                if winner is None:
                    raise
                return _replay(winner, request_hash)
            return response

        return wrapper

    return decorator


# --- Rate limits -------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str:
    proxies = settings.SUPPORTDESK_TRUSTED_PROXIES
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _parse_rate(spec: str) -> tuple[int, int]:
    count, _, seconds = spec.partition("/")
    return int(count), int(seconds or 60)


def rate_limit(bucket: str, ident: str) -> None:
    """Count one hit of ``bucket`` for ``ident``; raise Throttled (429) over the limit.

    A fixed window in the cache (Redis when REDIS_URL is set, so every process shares
    the count; process-local memory otherwise).
    """
    if not settings.SUPPORTDESK_RATE_LIMITS_ENABLED:
        return
    limit, seconds = _parse_rate(str(settings.SUPPORTDESK_RATE_LIMITS[bucket]))
    now = time.time()
    window = int(now // seconds)
    key = f"rl:{bucket}:{hashlib.sha256(ident.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}:{window}"
    if cache.add(key, 1, timeout=seconds + 1):
        hits = 1
    else:
        try:
            hits = cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=seconds + 1)
            hits = 1
    if hits > limit:
        raise exceptions.Throttled(wait=(window + 1) * seconds - now)


def staff_scope(view: Any, request: Request, kwargs: dict[str, Any]) -> str:
    """Idempotency keys of staff calls are scoped to the user."""
    return f"user:{request.user.pk}"
