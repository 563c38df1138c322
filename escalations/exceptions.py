"""Domain errors of the escalations app (mapped to the error body by supportdesk.api)."""

from __future__ import annotations

from threads.exceptions import DomainError


class AlreadyClaimed(DomainError):
    status = 409
    code = "already_claimed"
    default_message = "Someone else has already claimed this escalation."


class AlreadyResolved(DomainError):
    status = 409
    code = "already_resolved"
    default_message = "This escalation is already resolved."


class AlreadyAnswered(DomainError):
    status = 409
    code = "already_answered"
    default_message = "This question has already been answered or has expired."


class EndpointDisabled(DomainError):
    status = 409
    code = "endpoint_disabled"
    default_message = "This webhook endpoint is disabled; enable it first."


class NotRetryable(DomainError):
    status = 409
    code = "not_retryable"
    default_message = "Only a delivery that failed can be retried."
