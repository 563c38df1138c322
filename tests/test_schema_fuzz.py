"""Property-based tests of the whole API against its own OpenAPI schema (schemathesis).

Every operation of ``/api/v1/schema/`` is called with generated valid and invalid
input, once as a customer (the Bearer token of a real thread) and once as a staff agent
(a DRF token); path thread ids point at that thread. No response may be a 500, and
every response (errors included) must match the schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import ServerError
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from supportdesk.wsgi import application
from tests.factories import make_thread
from threads import services
from threads.models import Thread

MAX_EXAMPLES = 50

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    database="none",
    # Credentials come from the fixtures, not from generation (else negative cases
    # "drop" an Authorization header that the test then sends anyway).
    with_security_parameters=False,
    # Unknown query parameters are ignored, as by most REST APIs; not an error.
    allow_extra_parameters=False,
)

# A negative body can be rejected for its size before anything else looks at it: 413 is
# a rejection too (API.md: body over 64 KiB → 413).
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses,
    "413",
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class World:
    """A real thread with a customer message, its token, and a staff agent's API token."""

    def __init__(self, agent: Any) -> None:
        thread, token = make_thread(subject="Where is my order?", message="Hi, anyone there?")
        self.thread: Thread = thread
        self.thread_token = token
        self.staff_token = Token.objects.get_or_create(user=agent)[0].key


@pytest.fixture
def world(agent: Any, settings: Any) -> Iterator[World]:
    # Rate limits would turn most generated POSTs into 429s after the first few.
    settings.SUPPORTDESK_RATE_LIMITS_ENABLED = False
    # Requests go to the WSGI application itself, whose request signals would close the
    # test's database connection (and its transaction); Django's test client does the same.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield World(agent)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _aim_at_thread(case: schemathesis.Case, thread: Thread) -> None:
    """Point a generated (valid) thread id at the real thread; keep invalid ones."""
    path_parameters = case.path_parameters or {}
    if "thread_id" not in path_parameters:
        return
    try:
        uuid.UUID(str(path_parameters["thread_id"]))
    except ValueError:
        return
    path_parameters["thread_id"] = str(thread.pk)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_it_conforms_to_the_schema_as_a_customer(case: schemathesis.Case, world: World) -> None:
    _aim_at_thread(case, world.thread)
    case.call_and_validate(headers={"Authorization": f"Bearer {world.thread_token}"}, checks=CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_it_conforms_to_the_schema_as_staff(case: schemathesis.Case, world: World) -> None:
    _aim_at_thread(case, world.thread)
    case.call_and_validate(headers={"Authorization": f"Token {world.staff_token}"}, checks=CHECKS)


@pytest.mark.django_db
def test_it_reports_a_server_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzing above can fail: a 500 behind one operation is caught and reported."""

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(services, "customer_message_create", boom)
    operation = schema["/api/v1/threads/{thread_id}/messages/"]["POST"]

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy())
    def fuzz(case: schemathesis.Case) -> None:
        _aim_at_thread(case, world.thread)
        case.call_and_validate(
            headers={"Authorization": f"Bearer {world.thread_token}"}, checks=CHECKS
        )

    with pytest.raises(FailureGroup) as caught:
        fuzz()
    assert any(isinstance(failure, ServerError) for failure in caught.value.exceptions)
