from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from supportdesk.agent.models import AgentTurn, TurnStatus
from supportdesk.agent.providers import reset_providers
from supportdesk.agent.runner import turn_run
from tests.llm_server import ScriptedLLMServer


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
    reset_providers()
    yield
    reset_providers()


def drain(limit: int = 50) -> list[AgentTurn]:
    """Run every queued turn inline, as a worker would; returns the turns run."""
    ran: list[AgentTurn] = []
    for _ in range(limit):
        turn = AgentTurn.objects.filter(status=TurnStatus.QUEUED).order_by("created_at").first()
        if turn is None:
            return ran
        result = turn_run(turn.pk, worker_id="test")
        if result is not None:
            ran.append(result)
    raise AssertionError("turns kept queuing")
