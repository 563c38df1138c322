"""The request parser of the API (kept apart from supportdesk.api: DRF imports it
while rest_framework.views is still loading)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser


class RequestBodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"
    default_detail = "The request body is larger than 64 KiB."


class StrictJSONParser(BaseParser):
    """JSON only, at most SUPPORTDESK_MAX_BODY_BYTES, no NaN/Infinity, UTF-8."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.SUPPORTDESK_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestBodyTooLarge()
        if not raw:
            raise exceptions.ParseError("The request body is empty; send a JSON object.")
        try:
            text = raw.decode("utf-8")
            return json.loads(text, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise exceptions.ParseError("The request body is not valid JSON.") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
