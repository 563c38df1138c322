"""32 staff members deciding the same draft, escalation or human request at once, trial
after trial, through the API on the real database (SQLite, then PostgreSQL in CI):
exactly one 200 and 31 409s every time, and the stored state is the winner's alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from escalations import services as escalation_services
from escalations.models import Escalation, HumanRequest
from supportdesk.agent.models import AgentTurn, TurnKind, TurnStatus
from tests.factories import UserFactory, make_pending_draft, make_thread
from tests.faults.racers import Racers
from tests.faults.scale import count
from threads import services
from threads.models import Assignment, Message, Thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

DECIDERS = 32
TRIALS = count("trials", quick=5, full=200)


class Deciders:
    """One distinct staff user (and API client) per racing thread: a claim by the user
    who already holds an escalation is a no-op 200, so every decider is someone else."""

    def __init__(self) -> None:
        self.users = [UserFactory(username=f"decider{index}") for index in range(DECIDERS)]
        self.clients = []
        for user in self.users:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
            self.clients.append(client)

    def post(self, index: int, url: str, body: dict[str, Any] | None = None) -> int:
        response = self.clients[index].post(url, body or {}, format="json")
        if response.status_code not in (200, 409):
            return response.status_code  # reported by the assertion below
        if response.status_code == 409:
            code = response.json()["error"]["code"]
            assert code in ("already_decided", "already_claimed", "already_answered"), code
        return response.status_code


@pytest.fixture
def deciders(db: Any) -> Deciders:
    return Deciders()


@pytest.fixture
def racers() -> Iterator[Racers]:
    with Racers(DECIDERS) as pool:
        yield pool


def winner(statuses: list[Any]) -> int:
    assert sorted(statuses, key=str) == [200] + [409] * (DECIDERS - 1), statuses
    return statuses.index(200)


def test_it_lets_exactly_one_of_32_decisions_on_a_draft_win_every_trial(
    deciders: Deciders, racers: Racers
) -> None:
    for trial in range(TRIALS):
        draft = make_pending_draft()
        url = f"/api/v1/desk/approvals/{draft.pk}/"

        def decide(index: int, url: str = url, trial: int = trial) -> int:
            # Approvals (with an edit) race rejections of both kinds.
            if index % 2:
                return deciders.post(index, url + "approve/", {"content": f"edit {trial}/{index}"})
            nxt = "human" if index % 4 == 0 else "regenerate"
            return deciders.post(index, url + "reject/", {"review": f"no {index}", "next": nxt})

        won = winner(racers.race(decide))
        draft.refresh_from_db()
        assert draft.decided_by == deciders.users[won]
        public_ai = Message.objects.filter(
            thread=draft.thread_id, author_kind="ai", visibility="public"
        )
        regenerations = AgentTurn.objects.filter(
            thread=draft.thread_id, kind=TurnKind.REGENERATE
        ).count()
        escalations = Escalation.objects.filter(thread=draft.thread_id).count()
        if won % 2:
            assert draft.status == "approved"
            assert [m.content for m in public_ai] == [f"edit {trial}/{won}"]
            assert (regenerations, escalations) == (0, 0)
        else:
            assert draft.status == "rejected"
            assert draft.review == f"no {won}"
            assert public_ai.count() == 0
            if won % 4 == 0:
                assert (regenerations, escalations) == (0, 1)
            else:
                assert (regenerations, escalations) == (1, 0)


def test_it_lets_exactly_one_of_32_claims_on_an_escalation_win_every_trial(
    deciders: Deciders, racers: Racers
) -> None:
    for _ in range(TRIALS):
        thread, _token = make_thread()
        escalation, _created = escalation_services.escalation_open(
            thread=thread, source="staff", reason="race"
        )
        url = f"/api/v1/desk/escalations/{escalation.pk}/claim/"

        won = winner(racers.race(lambda index, url=url: deciders.post(index, url)))
        escalation.refresh_from_db()
        thread.refresh_from_db()
        user = deciders.users[won]
        assert (escalation.status, escalation.claimed_by) == ("claimed", user)
        assert (thread.responder, thread.assignee) == ("human", user)
        claims = Assignment.objects.filter(thread=thread, reason="claimed the escalation")
        assert [a.assignee_id for a in claims] == [user.pk]


def waiting_question() -> tuple[AgentTurn, HumanRequest]:
    """A turn waiting on its ask_human question, as the runner leaves it."""
    thread, _ = make_thread()
    message = services.customer_message_create(thread=thread, content="Was I charged twice?")
    turn = AgentTurn.objects.get(trigger_message=message)
    AgentTurn.objects.filter(pk=turn.pk).update(status=TurnStatus.WAITING, outcome="human_request")
    request = escalation_services.human_request_create(
        thread=Thread.objects.get(pk=thread.pk),
        turn_id=turn.pk,
        question="Was order 9 charged twice?",
        tool_call_id="call_9",
    )
    return turn, request


def test_it_lets_exactly_one_of_32_answers_to_a_question_win_every_trial(
    deciders: Deciders, racers: Racers
) -> None:
    for trial in range(TRIALS):
        turn, request = waiting_question()
        url = f"/api/v1/desk/human-requests/{request.pk}/answer/"

        def answer(index: int, url: str = url, trial: int = trial) -> int:
            return deciders.post(index, url, {"answer": f"answer {trial}/{index}"})

        won = winner(racers.race(answer))
        request.refresh_from_db()
        assert (request.status, request.answered_by) == ("answered", deciders.users[won])
        assert request.answer == f"answer {trial}/{won}"
        tool_messages = Message.objects.filter(thread=request.thread_id, role="tool")
        assert [(m.content, m.tool_call_id) for m in tool_messages] == [(request.answer, "call_9")]
        turn.refresh_from_db()
        # Resumed once: queued again, the one answer in its transcript.
        assert turn.status == TurnStatus.QUEUED
        assert turn.step_message_ids == [str(tool_messages.get().pk)]
