"""Request guards that must run before any view reads the body."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from supportdesk.api import error_response


class BodySizeLimitMiddleware:
    """413 with the error body for requests declaring more than 64 KiB.

    Bodies without a Content-Length are capped by the JSON parser instead. A lost
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
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            return error_response(
                503, "service_unavailable", "The database is unavailable.", Retry_After="5"
            )
        return None
