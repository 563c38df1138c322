"""The model server failing a fifth of its calls at random (429, 500, stalls past the
timeout, streams cut mid-reply) over hundreds of turns, through the real openai SDK: every
turn still ends in a reply or an escalation, and nothing the AI says is stored or
streamed twice."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from escalations.models import Escalation
from supportdesk.agent.models import AgentTurn, TurnStatus
from supportdesk.agent.providers import reset_providers
from tests.conftest import EventLog
from tests.factories import make_thread
from tests.faults.scale import SEED, count
from tests.llm_server import Faults, RecordedRequest, Reply, ScriptedLLMServer, final, tool_call
from tests.turns import drain
from threads import services
from threads.models import Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

TURNS = count("model_turns", quick=40, full=500)
FAULT_RATE = 0.2
TIMEOUT = 0.5  # the client's timeout; a stalled call answers after STALL
STALL = 1.5


def scripted(request: RecordedRequest) -> Reply:
    """What the model answers, from the case written in the customer's message.

    ``reply``: a confident answer. ``search``: a knowledge search first, then an answer.
    ``unsure``: a low-confidence answer (escalated). ``escalate``: the escalate tool.
    """
    _, case, number = request.last_user_message().split()
    answered_tool = request.messages[-1].get("role") == "tool"
    words = f"Answer {number}: orders ship in two days and refunds take five working days."
    if case == "search" and not answered_tool:
        return tool_call("search_knowledge", {"query": f"shipping {number}"})
    if case == "escalate":
        return tool_call("escalate", {"reason": f"case {number} needs a person"})
    return final(words, 0.3 if case == "unsure" else 0.9)


CASES = ("reply", "search", "reply", "unsure", "search", "escalate", "reply", "search")


@pytest.fixture
def faulty_llm(settings: Any) -> Iterator[ScriptedLLMServer]:
    faults = Faults(rate=FAULT_RATE, seed=SEED, stall=STALL)
    with ScriptedLLMServer(default=scripted, faults=faults) as server:
        settings.SUPPORTDESK_LLM = "openai"
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "test-key"
        settings.SUPPORTDESK_MODEL = "gpt-test"
        settings.SUPPORTDESK_CLASSIFIER_MODEL = None
        settings.SUPPORTDESK_LLM_STREAM = True
        settings.SUPPORTDESK_LLM_TIMEOUT = TIMEOUT
        settings.SUPPORTDESK_LLM_MAX_RETRIES = 3  # the documented default
        settings.SUPPORTDESK_LLM_BACKOFF = 0.01
        settings.SUPPORTDESK_RATE_LIMITS_ENABLED = False
        reset_providers()
        yield server
    reset_providers()


def test_it_ends_every_turn_in_a_reply_or_an_escalation_when_a_fifth_of_model_calls_fail(
    faulty_llm: ScriptedLLMServer, event_log: EventLog
) -> None:
    triggers: dict[Any, str] = {}
    for index in range(TURNS):
        thread, _ = make_thread()
        case = CASES[index % len(CASES)]
        message = services.customer_message_create(thread=thread, content=f"case {case} {index}")
        triggers[message.pk] = case
    drain(limit=TURNS + 10)

    turns = list(AgentTurn.objects.filter(trigger_message__in=triggers))
    assert len(turns) == TURNS
    outcomes = collections.Counter(turn.outcome for turn in turns)
    ended = outcomes["reply"] + outcomes["escalation"]
    assert all(turn.status == TurnStatus.DONE for turn in turns), outcomes
    assert ended / TURNS >= 0.999, outcomes
    assert sum(faulty_llm.faulted.values()) >= 0.1 * faulty_llm.received  # faults did happen
    assert set(faulty_llm.faulted) == {"429", "500", "timeout", "cut"}

    ai_messages = collections.Counter(
        Message.objects.filter(author_kind="ai", role="assistant", tool_calls=[]).values_list(
            "thread_id", flat=True
        )
    )
    escalations = collections.Counter(Escalation.objects.values_list("thread_id", flat=True))
    for turn in turns:
        # One outcome each: a reply is the thread's only AI answer; an escalation leaves none.
        if turn.outcome == "reply":
            assert ai_messages[turn.thread_id] == 1, turn.pk
            assert escalations[turn.thread_id] == 0, turn.pk
            assert turn.outcome_message_id is not None
        else:
            assert ai_messages[turn.thread_id] == 0, turn.pk
            assert escalations[turn.thread_id] == 1, turn.pk
        if triggers[turn.trigger_message_id] in ("reply", "search") and turn.outcome != "reply":
            # Only four failed calls in a row escalate an answerable message.
            assert turn.error.startswith("the model failed after 4 attempts"), turn.error

    # Streamed text: each reply's deltas spell it once, never a cut attempt plus its retry.
    created = collections.Counter(
        event.payload["message_id"]
        for event in event_log.events
        if event.type == "message.created" and event.payload["visibility"] == "public"
    )
    deltas: dict[str, list[str]] = collections.defaultdict(list)
    for event in event_log.events:
        if event.type == "message.delta":
            deltas[event.payload["message_id"]].append(event.payload["delta"])
    replies = {
        str(pk): content
        for pk, content in Message.objects.filter(
            author_kind="ai", role="assistant", visibility="public", tool_calls=[]
        ).values_list("pk", "content")
    }
    assert set(created.values()) == {1}
    assert set(replies) <= set(created)
    for message_id, pieces in deltas.items():
        if message_id in replies:
            assert "".join(pieces) == replies[message_id], message_id
        else:
            # Streamed, then every retry failed: what went out is one prefix of an answer.
            assert "Answer" not in "".join(pieces)[1:], pieces
