from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from supportdesk.agent.providers import reset_providers
from tests.factories import UserFactory, make_thread
from tests.llm_server import ScriptedLLMServer
from threads import events
from threads.models import Thread


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Real hashing costs ~0.3 s per user; the tests check behaviour, not PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # Rate-limit counters live in the cache; every test starts with none.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def agent(db: Any) -> Any:
    return UserFactory(username="alex", first_name="Alex", last_name="Agent")


@pytest.fixture
def other_agent(db: Any) -> Any:
    return UserFactory(username="sam", first_name="Sam", last_name="Support")


@pytest.fixture
def staff_client(agent: Any) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=agent)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def thread_and_token(db: Any) -> tuple[Thread, str]:
    return make_thread(subject="Where is my order?")


@pytest.fixture
def customer_client(thread_and_token: tuple[Thread, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {thread_and_token[1]}")
    return client


class EventLog:
    def __init__(self) -> None:
        self.events: list[events.Event] = []

    def __call__(self, event: events.Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [event.type for event in self.events]


@pytest.fixture
def event_log() -> Iterator[EventLog]:
    log = EventLog()
    events.register(log)
    yield log
    events.unregister(log)


@pytest.fixture
def llm(settings: Any) -> Iterator[ScriptedLLMServer]:
    """The real openai SDK against a scripted local server; unscripted calls get a 500."""
    with ScriptedLLMServer(mode="error") as server:
        settings.SUPPORTDESK_LLM = "openai"
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "test-key"
        settings.SUPPORTDESK_MODEL = "gpt-test"
        settings.SUPPORTDESK_CLASSIFIER_MODEL = None
        settings.SUPPORTDESK_LLM_TIMEOUT = 2.0
        settings.SUPPORTDESK_LLM_BACKOFF = 0.01
        settings.SUPPORTDESK_LLM_MAX_RETRIES = 2
        reset_providers()
        yield server
    reset_providers()


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    # Providers are cached per process; settings change between tests.
    reset_providers()
    yield
    reset_providers()
