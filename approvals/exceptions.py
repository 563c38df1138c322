"""Domain errors of the approvals app."""

from __future__ import annotations

from threads.exceptions import DomainError


class AlreadyDecided(DomainError):
    status = 409
    code = "already_decided"
    default_message = "This draft has already been decided."
