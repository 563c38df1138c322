"""Input fields with the limits of API.md: strict types, no control characters."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

# Control characters other than \n, \r and \t, plus lone surrogates (which cannot be
# stored as UTF-8). NUL is among them, so it never reaches the database.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class TextField(serializers.Field):
    """A JSON string, stripped, 1..max_length characters (or blank when allowed).

    Errors use codes named after the field (``content_blank``, ``content_too_long``,
    ``invalid_characters``), which the error body promotes to its top-level code.
    """

    def __init__(
        self,
        *,
        max_length: int,
        allow_blank: bool = False,
        code_prefix: str | None = None,
        strip: bool = True,
        **kwargs: Any,
    ) -> None:
        self.max_length = max_length
        self.strip = strip
        self.allow_blank = allow_blank
        self.code_prefix = code_prefix
        super().__init__(**kwargs)

    def _prefix(self) -> str:
        return self.code_prefix or self.field_name or "value"

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid_type")
        if _FORBIDDEN.search(data):
            raise serializers.ValidationError(
                "Control characters are not allowed.", code="invalid_characters"
            )
        value = data.strip() if self.strip else data
        if not value and not self.allow_blank:
            raise serializers.ValidationError("Must not be blank.", code=f"{self._prefix()}_blank")
        if len(value) > self.max_length:
            raise serializers.ValidationError(
                f"At most {self.max_length} characters.", code=f"{self._prefix()}_too_long"
            )
        return value

    def to_representation(self, value: Any) -> str:
        return str(value)


class StrictEmailField(serializers.EmailField):
    """An EmailField that accepts only strings and refuses control characters with the
    same ``invalid_characters`` code as TextField."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid_type")
        if _FORBIDDEN.search(data):
            raise serializers.ValidationError(
                "Control characters are not allowed.", code="invalid_characters"
            )
        return str(super().to_internal_value(data))


class StrictChoiceField(serializers.ChoiceField):
    """A ChoiceField that accepts only strings (no 1 for "1")."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.", code="invalid_type")
        return data


MESSAGE_MAX_LENGTH = 10_000
