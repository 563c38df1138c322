"""AI worker processes killed with SIGKILL in the middle of turns, again and again, at
seeded random moments: once the survivors are done, every turn is in a final state with
exactly one outcome, and no customer message has more than one AI answer."""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from approvals.models import ApprovalDraft
from escalations.models import Escalation, HumanRequest
from supportdesk.agent.models import AgentTurn, TurnStatus
from tests.factories import make_thread
from tests.faults.processes import Workers, wait_until
from tests.faults.scale import SEED, count
from tests.llm_server import RecordedRequest, Reply, ScriptedLLMServer, final, tool_call
from tests.realtime.servers import database_url
from threads import services
from threads.models import Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.slow]

KILLS = count("kills", quick=3, full=20)
TURNS = count("kill_turns", quick=8, full=30)  # at first; topped up so kills find work
BACKLOG = 4  # queued turns kept in front of the workers while killing
WORKERS = 2
# Long enough that a busy machine does not expire a live worker's lease mid-call (that
# would be safe too, only slower), short enough that a killed worker's turn comes back soon.
LEASE_SECONDS = 4

# (case, ai_mode): what the model does with the message, and the thread's mode.
CASES = (
    ("search", "auto"),
    ("reply", "auto"),
    ("search", "draft"),
    ("unsure", "auto"),
    ("search", "auto"),
    ("ask", "auto"),
    ("reply", "draft"),
    ("search", "auto"),
    ("escalate", "auto"),
)
FINAL_OUTCOMES = {"reply", "draft", "escalation", "human_request"}


def scripted(request: RecordedRequest) -> Reply:
    """The model's answer, from the case named in the customer's message."""
    _, case, number = request.last_user_message().split()
    answered_tool = request.messages[-1].get("role") == "tool"
    if case == "search" and not answered_tool:
        return tool_call("search_knowledge", {"query": f"returns {number}"})
    if case == "ask":
        return tool_call("ask_human", {"question": f"Is order {number} paid?"}, id=f"call_{number}")
    if case == "escalate":
        return tool_call("escalate", {"reason": f"case {number} needs a person"})
    words = f"Answer {number}: you can return any item within thirty days for a refund."
    return final(words, 0.3 if case == "unsure" else 0.9)


@pytest.fixture
def slow_llm() -> Iterator[ScriptedLLMServer]:
    # Every call takes a moment and streams word by word, so kills land inside calls,
    # between them and inside the writes that follow.
    with ScriptedLLMServer(default=scripted, delay=0.15, chunk_delay=0.02) as server:
        yield server


@pytest.fixture
def workers(slow_llm: ScriptedLLMServer, tmp_path: Any) -> Iterator[Workers]:
    pool = Workers(
        {
            "DATABASE_URL": database_url(),
            "SECRET_KEY": "faults-test",
            "DEBUG": "0",
            "SUPPORTDESK_LLM": "openai",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": slow_llm.base_url,
            "SUPPORTDESK_MODEL": "gpt-test",
            "SUPPORTDESK_CLASSIFIER_MODEL": "",
            "SUPPORTDESK_TURN_LEASE_SECONDS": str(LEASE_SECONDS),
            "SUPPORTDESK_TURN_MAX_ATTEMPTS": "3",
            "SUPPORTDESK_LLM_BACKOFF": "0.01",
            "SUPPORTDESK_COPILOT": "0",
            "LOG_LEVEL": "ERROR",
        },
        tmp_path,
    )
    yield pool
    pool.stop_all()


def holds_a_turn(workers: Workers, process: Any, *, stepped: bool = False) -> bool:
    """Whether the process runs a turn now (with ``stepped``: one with a committed step)."""
    running = AgentTurn.objects.filter(
        status=TurnStatus.RUNNING, lease_owner__startswith=workers.lease_prefix(process)
    )
    if stepped:
        running = running.filter(steps__gt=0)
    return running.exists()


def state(workers: Workers) -> str:
    turns = list(
        AgentTurn.objects.values_list("status", "attempts", "steps", "lease_owner", "leased_until")
    )
    alive = [(process.pid, process.poll()) for process in workers.alive]
    return f"turns: {turns}\nworkers: {alive}\n{workers.logs()}"


def settled() -> bool:
    return not AgentTurn.objects.filter(status__in=[TurnStatus.QUEUED, TurnStatus.RUNNING]).exists()


class Customers:
    """One message per new thread, cycling through CASES."""

    def __init__(self) -> None:
        self.cases: dict[Any, tuple[str, str, Any]] = {}

    def post(self) -> None:
        index = len(self.cases)
        case, mode = CASES[index % len(CASES)]
        thread, _ = make_thread(ai_mode=mode)
        message = services.customer_message_create(thread=thread, content=f"case {case} {index}")
        self.cases[thread.pk] = (case, mode, message.pk)

    def top_up(self) -> bool:
        """Keep work queued, so the next victim soon has a turn to be killed in."""
        while AgentTurn.objects.filter(status=TurnStatus.QUEUED).count() < BACKLOG:
            self.post()
        return True


def test_it_ends_every_turn_once_when_workers_are_killed_mid_turn(workers: Workers) -> None:
    rng = random.Random(SEED)
    customers = Customers()
    for _ in range(TURNS):
        customers.post()
    for _ in range(WORKERS):
        workers.start()

    kills_mid_turn = 0
    for _ in range(KILLS):
        victim = rng.choice(workers.alive)
        # Half the kills wait for a committed tool step: a re-run must continue after it.
        stepped = rng.random() < 0.5
        wait_until(
            lambda victim=victim, stepped=stepped: (
                customers.top_up() and holds_a_turn(workers, victim, stepped=stepped)
            ),
            120,
            "a claimed turn",
            lambda: state(workers),
        )
        # Somewhere inside the turn: the model call, the stream, the writes after it.
        time.sleep(rng.uniform(0.0, 0.6))
        kills_mid_turn += holds_a_turn(workers, victim)
        workers.kill(victim)
        workers.start()

    wait_until(settled, 240, "every turn to settle", lambda: state(workers))

    cases = customers.cases
    turns = {turn.thread_id: turn for turn in AgentTurn.objects.all()}
    assert len(turns) == len(cases)
    ai_answers = collections.Counter(
        Message.objects.filter(author_kind="ai", role="assistant", tool_calls=[]).values_list(
            "thread_id", flat=True
        )
    )
    tool_steps = collections.Counter(
        Message.objects.filter(author_kind="ai", role="assistant")
        .exclude(tool_calls=[])
        .values_list("thread_id", flat=True)
    )
    escalations = collections.Counter(Escalation.objects.values_list("thread_id", flat=True))
    drafts = collections.Counter(
        ApprovalDraft.objects.filter(status="pending").values_list("thread_id", flat=True)
    )
    questions = collections.Counter(
        HumanRequest.objects.filter(status="pending").values_list("thread_id", flat=True)
    )
    for thread_id, (case, mode, message_id) in cases.items():
        turn = turns[thread_id]
        assert turn.trigger_message_id == message_id
        assert turn.outcome in FINAL_OUTCOMES, (case, turn.status, turn.outcome, turn.error)
        assert turn.status == ("waiting" if turn.outcome == "human_request" else "done")
        assert turn.outcome != ("reply" if mode == "draft" else "draft"), case
        # Exactly one outcome, and its rows only.
        assert ai_answers[thread_id] == (1 if turn.outcome in ("reply", "draft") else 0), case
        assert escalations[thread_id] == (1 if turn.outcome == "escalation" else 0), case
        assert drafts[thread_id] == (1 if turn.outcome == "draft" else 0), case
        assert questions[thread_id] == (1 if turn.outcome == "human_request" else 0), case
        # A step that committed before a kill is never repeated by the re-run.
        assert tool_steps[thread_id] <= 1, case
        if turn.outcome == "escalation" and case not in ("unsure", "escalate"):
            # Killed on every attempt: escalated as an AI failure, not left running.
            assert Escalation.objects.get(thread_id=thread_id).source == "ai_failure", case
    attempts = [turn.attempts for turn in turns.values()]
    print(
        "DIAG",
        len(turns),
        kills_mid_turn,
        collections.Counter(attempts),
        collections.Counter(t.outcome for t in turns.values()),
    )
    assert kills_mid_turn >= KILLS // 2, kills_mid_turn  # most kills hit a claimed turn
    assert max(attempts) >= 2  # turns of killed workers ran again
