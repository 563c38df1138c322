"""OpenAPI schema plumbing (drf-spectacular): the thread-token security scheme, the
strict text field, the error body on every operation, and the Idempotency-Key header.

Imported at start-up (``ThreadsConfig.ready``) so the extensions are registered before
any schema is generated; ``AutoSchema`` is the project's DEFAULT_SCHEMA_CLASS.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
    OpenApiViewExtension,
)
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

# Characters TextField refuses (see supportdesk.fields): controls other than \t \n \r.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_TEXT_CHAR = f"[^{_CONTROL}]"
# Not blank after stripping: at least one character that is neither a control nor space.
_NON_BLANK_TEXT_PATTERN = rf"^{_TEXT_CHAR}*[^\s{_CONTROL}]{_TEXT_CHAR}*$"
_NON_EMPTY_TEXT_PATTERN = f"^{_TEXT_CHAR}+$"

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    pattern="^[!-~]{1,255}$",
    description=(
        "1..255 visible ASCII characters. The same key and the same body within 24 h "
        "return the first response again and create nothing new; the same key with a "
        "different body is 422 `idempotency_mismatch`."
    ),
)


class ErrorInfoSerializer(serializers.Serializer):
    code = serializers.RegexField(r"^[a-z][a-z0-9_]*$", help_text="snake_case error code")
    message = serializers.CharField(help_text="Human-readable text")
    # DRF takes declared fields off the class, so this does not shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Only for validation errors: messages per field (dotted for nested fields)",
    )


class ErrorSerializer(serializers.Serializer):
    """The error body of API.md, whatever the status."""

    error = ErrorInfoSerializer()


_ERROR_DESCRIPTIONS = {
    400: "Invalid input (validation error, invalid JSON, bad query parameter or Idempotency-Key)",
    401: "No or invalid credentials",
    403: "Authenticated, but not allowed",
    404: "Unknown object, or a thread token that does not match",
    409: "State conflict (closed thread, already decided, already claimed)",
    413: "Request body larger than 64 KiB",
    415: "The body is not declared as application/json",
    422: "Idempotency-Key reused with a different body",
    429: "Rate limited; retry after Retry-After seconds",
    503: "A dependency is down; retry after Retry-After seconds",
}
_RETRY_AFTER = {
    "schema": {"type": "integer", "minimum": 0},
    "description": "Seconds to wait before retrying",
    "required": True,
}
_WWW_AUTHENTICATE = {
    "schema": {"type": "string"},
    "description": "The authentication scheme to use",
    "required": True,
}
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class AutoSchema(SpectacularAutoSchema):
    """Adds the error responses each operation can give, and Idempotency-Key on POST."""

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(IDEMPOTENCY_KEY)
        return parameters

    def get_auth(self) -> list[dict[str, Any]]:
        auths: list[dict[str, Any]] = super().get_auth()
        # Customer views allow anyone through DRF and check the thread token themselves;
        # the token is still required, so the anonymous alternative is not offered.
        if any(_is_thread_token_auth(auth) for auth in self.view.get_authenticators()):
            auths = [auth for auth in auths if auth]
        return auths

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            # Everywhere in this API (django-filter, DRF pagination, the seq cursor) an
            # empty query value means the parameter was not given.
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        responses = operation["responses"]
        for status in self._error_statuses(operation):
            if str(status) in responses:
                continue
            response = self._get_response_for_code(ErrorSerializer, str(status))
            response["description"] = _ERROR_DESCRIPTIONS[status]
            if status in (429, 503):
                response.setdefault("headers", {})["Retry-After"] = _RETRY_AFTER
            if status == 401:
                response.setdefault("headers", {})["WWW-Authenticate"] = _WWW_AUTHENTICATE
            responses[str(status)] = response
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> list[int]:
        parameters = operation.get("parameters", [])
        in_path = any(parameter["in"] == "path" for parameter in parameters)
        in_query = [parameter["name"] for parameter in parameters if parameter["in"] == "query"]
        has_body = self.method in _BODY_METHODS
        statuses = []
        if has_body or in_query:
            statuses.append(400)
        if any(operation.get("security", [])):
            statuses.append(401)
        if any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            statuses.append(403)
        # A tampered pagination cursor is a 404 (DRF's NotFound), like an unknown id.
        if in_path or "cursor" in in_query:
            statuses.append(404)
        if has_body and in_path:
            statuses.append(409)
        if has_body:
            statuses.extend([413, 415])
        if self.method == "POST":
            statuses.extend([422, 429])
        statuses.append(503)
        return statuses


def _is_thread_token_auth(authenticator: Any) -> bool:
    from threads.api_customer import ThreadTokenAuthentication

    return isinstance(authenticator, ThreadTokenAuthentication)


class ThreadTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <thread token>`` of the customer API."""

    target_class = "threads.api_customer.ThreadTokenAuthentication"
    name = "threadToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The thread token returned once by `POST /api/v1/threads/`. A token that "
                "does not match the thread in the path is answered like an unknown thread (404)."
            ),
        }


class TextFieldSchema(OpenApiSerializerFieldExtension):
    """supportdesk.fields.TextField: a string of at most ``max_length`` characters after
    stripping, without control characters other than \\t, \\n and \\r."""

    target_class = "supportdesk.fields.TextField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field = self.target
        schema: dict[str, Any] = {"type": "string"}
        schema["maxLength"] = field.max_length
        if field.allow_blank:
            # drf-spectacular adds the blank string as a separate oneOf branch for blank
            # fields with a pattern, so this pattern must not match "" itself.
            schema["pattern"] = _NON_EMPTY_TEXT_PATTERN
        else:
            schema["minLength"] = 1
            schema["pattern"] = _NON_BLANK_TEXT_PATTERN if field.strip else _NON_EMPTY_TEXT_PATTERN
        return schema


class TokenLoginViewSchema(OpenApiViewExtension):
    """The token login takes credentials in its body: wrong ones are 401/403 although
    the view itself needs no authentication."""

    target_class = "supportdesk.views.TokenLoginView"

    def view_replacement(self) -> Any:
        from threads.serializers import TokenInputSerializer, TokenOutputSerializer

        class TokenLoginView(self.target):  # type: ignore[name-defined,misc]
            @extend_schema(
                request=TokenInputSerializer,
                responses={
                    200: TokenOutputSerializer,
                    401: ErrorSerializer,
                    403: ErrorSerializer,
                },
                summary="Get the API token of a staff user",
            )
            def post(self, request: Any) -> Any:
                return super().post(request)

        return TokenLoginView
