"""Domain errors of the threads app; supportdesk.api maps each to the error body."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: ``status`` and ``code`` become the HTTP status and error code."""

    status = 400
    code = "invalid"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class ThreadClosed(DomainError):
    status = 409
    code = "thread_closed"
    default_message = "This thread is closed."


class InvalidTransition(DomainError):
    status = 409
    code = "invalid_transition"
    default_message = "The thread cannot change to that state now."


class InvalidAssignee(DomainError):
    status = 400
    code = "invalid_assignee"
    default_message = "The assignee must be an active staff user."


class InvalidTier(DomainError):
    status = 400
    code = "invalid_tier"
    default_message = "Unknown customer tier."
