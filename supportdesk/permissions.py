"""Permissions of the staff API."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from threads.services import user_is_agent


class IsStaffAgent(BasePermission):
    """Active users with ``is_staff`` or in the ``agents`` group."""

    message = "Only support staff may use this endpoint."

    def has_permission(self, request: Request, view: Any) -> bool:
        return user_is_agent(request.user)
