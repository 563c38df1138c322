"""Request guards that must run before any view reads the body."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from supportdesk.api import error_response


class BodySizeLimitMiddleware:
    """413 with the error body for requests declaring more than 64 KiB.

    Bodies without a Content-Length (streamed) are read here up to the limit. A lost
    database connection becomes a 503 with Retry-After, so clients back off and retry.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH")
        if length:
            try:
                declared = int(length)
            except ValueError:
                return error_response(400, "invalid_content_length", "Bad Content-Length.")
            if declared > settings.SUPPORTDESK_MAX_BODY_BYTES:
                return error_response(
                    413, "request_too_large", "The request body is larger than 64 KiB."
                )
        elif request.method in ("POST", "PUT", "PATCH"):
            # A streamed (chunked) body has no Content-Length, and DRF would ignore it and
            # hand the view {}. Read it here, at most one byte past the limit, and keep it
            # the way HttpRequest.body does, so the parsers see it like any other body.
            body = request.read(settings.SUPPORTDESK_MAX_BODY_BYTES + 1)
            if len(body) > settings.SUPPORTDESK_MAX_BODY_BYTES:
                return error_response(
                    413, "request_too_large", "The request body is larger than 64 KiB."
                )
            request._body = body
            request._stream = io.BytesIO(body)
            request.META["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            return error_response(
                503, "service_unavailable", "The database is unavailable.", Retry_After="5"
            )
        return None
