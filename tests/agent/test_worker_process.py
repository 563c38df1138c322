"""Real worker processes (``manage.py agent_worker``) against the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supportdesk.agent.models import AgentTurn
from tests.factories import make_thread
from tests.faults.processes import Workers, wait_until
from tests.llm_server import ScriptedLLMServer, delay, final, tool_call
from tests.realtime.servers import database_url
from threads import services
from threads.models import Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def workers(llm: ScriptedLLMServer, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(
        {
            "DATABASE_URL": database_url(),
            "SECRET_KEY": "worker-test",
            "DEBUG": "0",
            "SUPPORTDESK_LLM": "openai",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm.base_url,
            "SUPPORTDESK_MODEL": "gpt-test",
            # Short enough that the kill test waits little, long enough that a busy CI
            # machine does not expire a live worker's lease mid-turn.
            "SUPPORTDESK_TURN_LEASE_SECONDS": "5",
            "SUPPORTDESK_LLM_BACKOFF": "0.01",
            "LOG_LEVEL": "WARNING",
        },
        tmp_path,
    )
    yield pool
    pool.stop_all()


def test_it_answers_through_a_worker_process(llm: ScriptedLLMServer, workers: Workers) -> None:
    llm.push(final("A worker answered.", 0.9))
    workers.start()
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="Anyone there?")
    wait_until(
        lambda: AgentTurn.objects.filter(thread=thread, status="done").exists(),
        30,
        "the turn",
        workers.logs,
    )
    assert list(
        Message.objects.filter(thread=thread, author_kind="ai").values_list("content", flat=True)
    ) == ["A worker answered."]


def test_it_finishes_a_turn_once_after_its_worker_is_killed(
    llm: ScriptedLLMServer, workers: Workers
) -> None:
    llm.push(delay(20, then=final("From the dead worker.", 0.9)))
    llm.push(final("Exactly once.", 0.9))
    first = workers.start()
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="Is my order lost?")
    llm.wait_for_requests(1, timeout=30)
    workers.kill(first)
    turn = AgentTurn.objects.get(thread=thread)
    assert turn.status == "running"  # stuck, until a sweeper sees the lease expire
    workers.start()
    wait_until(
        lambda: AgentTurn.objects.filter(pk=turn.pk, status="done").exists(),
        30,
        "the turn",
        workers.logs,
    )
    turn.refresh_from_db()
    assert turn.outcome == "reply"
    assert turn.attempts >= 2  # the dead worker's attempt, then the survivor's
    ai = list(
        Message.objects.filter(thread=thread, author_kind="ai").values_list("content", flat=True)
    )
    assert ai == ["Exactly once."]


def test_it_resumes_after_a_restart_between_question_and_answer(
    llm: ScriptedLLMServer, workers: Workers, agent: Any
) -> None:
    from escalations.models import HumanRequest
    from escalations.services import human_request_answer

    llm.push(tool_call("ask_human", {"question": "Is order 77 paid?"}, id="call_77"))
    first = workers.start()
    thread, _ = make_thread()
    services.customer_message_create(
        thread=thread, content="Did my payment for order 77 go through?"
    )
    wait_until(
        lambda: HumanRequest.objects.filter(thread=thread).exists(),
        30,
        "the question",
        workers.logs,
    )
    workers.kill(first)
    human_request_answer(
        request=HumanRequest.objects.get(thread=thread), user=agent, answer="Yes, paid in full"
    )
    llm.push(final("Your payment for order 77 went through.", 0.9))
    workers.start()
    wait_until(
        lambda: AgentTurn.objects.filter(thread=thread, status="done").exists(),
        30,
        "the turn",
        workers.logs,
    )
    assert llm.requests[-1].messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_77",
        "content": "Yes, paid in full",
    }
    ai = list(
        Message.objects.filter(thread=thread, author_kind="ai", visibility="public").values_list(
            "content", flat=True
        )
    )
    assert ai == ["Your payment for order 77 went through."]
