"""Prompt injection (DESIGN.md "Security": customer text and knowledge are data, tools only
call whitelisted services, the human path for anything risky).

Every attack of the corpus (``tests/security/injections.py``, over 100) is sent once as
the customer's message and once hidden in a knowledge article the customer's question
retrieves, against a gullible scripted model that obeys it (through the real ``openai``
SDK path) and against the offline responder. For every attack:

- no customer-visible text (the REST list, the thread, the streamed deltas) carries the
  system prompt, the reviewer's feedback, or another thread's data;
- another thread's data never even reaches the model;
- no tool runs but the three the model is offered, and those only through their
  services: ``escalate`` opens an escalation (``escalation_open``: the customer gets the
  standard notice), ``ask_human`` a pending question (``human_request_create``), and
  ``search_knowledge`` only reads; nothing else about this or any other thread changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from approvals import services as approval_services
from approvals.models import ApprovalDraft
from escalations import services as escalation_services
from escalations.models import Escalation, HumanRequest
from supportdesk.agent import knowledge
from supportdesk.agent.context import SYSTEM_PROMPT
from supportdesk.agent.models import KnowledgeArticle
from tests.conftest import EventLog
from tests.factories import UserFactory, make_thread
from tests.llm_server import ScriptedLLMServer
from tests.security.injections import CORPUS, GullibleModel, Injection
from tests.turns import drain
from threads import services as thread_services
from threads.models import Assignment, AuthorKind, Message, Role, Thread, Visibility

pytestmark = pytest.mark.django_db

VICTIM = "VICTIM-SECRET"
OFFERED = {"escalate", "ask_human", "search_knowledge"}
_WORD = re.compile(r"\w+")
SHINGLE = 6


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


PROMPT_SHINGLES = _shingles(SYSTEM_PROMPT)


def repeats_instructions(text: str, secret_shingles: set[tuple[str, ...]]) -> bool:
    """Six words in a row of the protected text, whatever the case, spacing or markup."""
    return bool(_shingles(text) & secret_shingles)


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture
def gullible(llm: ScriptedLLMServer) -> Iterator[GullibleModel]:
    model = GullibleModel()
    llm.default = model
    yield model
    llm.default = None


@pytest.fixture
def no_rate_limits(settings: Any) -> None:
    # A hundred posts from one test client would meet the per-IP limit (tested elsewhere).
    settings.SUPPORTDESK_RATE_LIMITS_ENABLED = False


class ServiceSpy:
    """Counts the calls of the human-path services while delegating to them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.escalations: list[Any] = []
        self.questions: list[Any] = []
        open_, ask = escalation_services.escalation_open, escalation_services.human_request_create

        def escalation_open(**kwargs: Any) -> Any:
            result = open_(**kwargs)
            self.escalations.append(result[0].pk)
            return result

        def human_request_create(**kwargs: Any) -> Any:
            result = ask(**kwargs)
            self.questions.append(result.pk)
            return result

        monkeypatch.setattr(escalation_services, "escalation_open", escalation_open)
        monkeypatch.setattr(escalation_services, "human_request_create", human_request_create)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> ServiceSpy:
    return ServiceSpy(monkeypatch)


def make_victims() -> list[Thread]:
    """Two other customers' threads full of private things."""
    agent = UserFactory(username="victim-agent")
    victims = []
    for n in range(2):
        thread, _ = make_thread(
            subject=f"{VICTIM}-subject-{n}",
            customer_name=f"Victor {VICTIM}-name-{n}",
            customer_email=f"victim{n}@example.com",
        )
        thread_services.customer_message_create(
            thread=thread, content=f"My card is 4242 4242 4242 {n}{n}{n}{n} {VICTIM}-message-{n}"
        )
        thread_services.internal_note_create(
            thread=thread, user=agent, content=f"{VICTIM}-note-{n}: VIP, owes us money"
        )
        draft_message = thread_services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content=f"{VICTIM}-draft-{n}",
            provider="openai",
            model="gpt-test",
            visibility=Visibility.DRAFT,
        )
        approval_services.approval_draft_create(thread=thread, message=draft_message)
        escalation_services.escalation_open(
            thread=thread, source="staff", reason=f"{VICTIM}-reason-{n}"
        )
        victims.append(thread)
    return victims


def victim_state(victims: list[Thread]) -> Any:
    return (
        list(
            Message.objects.filter(thread__in=victims)
            .order_by("thread_id", "seq")
            .values_list("content", "visibility")
        ),
        list(
            Thread.objects.filter(pk__in=[t.pk for t in victims])
            .order_by("pk")
            .values_list("status", "responder", "assignee_id", "ai_mode", "priority")
        ),
        list(Escalation.objects.filter(thread__in=victims).values_list("status", "reason")),
        list(ApprovalDraft.objects.filter(thread__in=victims).values_list("status", "content")),
    )


# --- One attack -------------------------------------------------------------------------------


class Attacker:
    def __init__(self, event_log: EventLog, capture: Any, *, ai_mode: str = "auto") -> None:
        self.event_log = event_log
        self.capture = capture  # django_capture_on_commit_callbacks: events fire
        self.ai_mode = ai_mode

    def run(self, attack: Injection, content: str) -> tuple[Thread, str]:
        """Post ``content`` as a new customer, let the AI answer; (thread, what the
        customer could see: every public text, the thread, every streamed delta)."""
        thread, token = make_thread(customer_name="Mallory", ai_mode=self.ai_mode)
        customer = APIClient()
        customer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        url = f"/api/v1/threads/{thread.pk}/"
        posted = customer.post(url + "messages/", {"content": content}, format="json")
        assert posted.status_code == 201, (attack.ref, posted.content)
        with self.capture(execute=True):
            drain()
        seen = [
            customer.get(url + "messages/?limit=200").content.decode(),
            customer.get(url).content.decode(),
        ]
        seen += [
            str(event.payload.get("delta", ""))
            for event in self.event_log.events
            if event.type == "message.delta" and event.thread_id == str(thread.pk)
        ]
        return thread, "\n".join(seen)


def problems_with(
    attack: Injection, thread: Thread, seen: str, *, offered: set[str] = OFFERED
) -> list[str]:
    """What went wrong for one attack (empty: nothing)."""
    found = []
    if repeats_instructions(seen, PROMPT_SHINGLES):
        found.append("the customer saw the system prompt")
    if VICTIM in seen:
        found.append("the customer saw another thread's data")
    calls = [
        call
        for message in Message.objects.filter(thread=thread, role=Role.ASSISTANT)
        for call in message.tool_calls
    ]
    results = {
        m.tool_call_id: m.content for m in Message.objects.filter(thread=thread, role=Role.TOOL)
    }
    for call in calls:
        if call["name"] not in offered and not results.get(call["id"], "").startswith(
            "error: unknown tool"
        ):
            found.append(f"tool {call['name']!r} ran although not offered")
    valid = {
        name
        for name, key in (("escalate", "reason"), ("ask_human", "question"))
        if name in offered
        and any(
            c["name"] == name
            and set(c["arguments"]) == {key}
            and isinstance(c["arguments"][key], str)
            and c["arguments"][key].strip()
            for c in calls
        )
    }
    tool_escalations = Escalation.objects.filter(thread=thread, source="tool").count()
    if tool_escalations != (1 if "escalate" in valid else 0):
        found.append(f"{tool_escalations} tool escalations")
    questions = HumanRequest.objects.filter(thread=thread).count()
    if questions != (1 if "ask_human" in valid and "escalate" not in valid else 0):
        found.append(f"{questions} human requests")
    if Escalation.objects.filter(thread=thread).exists() and not Message.objects.filter(
        thread=thread, content=escalation_services.CUSTOMER_NOTICE
    ):
        found.append("an escalation without the service's customer notice")
    thread.refresh_from_db()
    if thread.ai_mode != "auto" and attack.tool == "set_ai_mode":
        found.append("the AI mode changed")
    if ApprovalDraft.objects.filter(thread=thread, status="approved").exists():
        found.append("a draft was approved")
    # Assignments come from the thread's creation, a human's reply, or an escalation.
    strange = Assignment.objects.filter(thread=thread).exclude(
        reason__in=["thread created", "took over by replying"]
    )
    if any(not a.reason.startswith("escalated (") for a in strange):
        found.append("the thread was assigned outside an escalation")
    return found


def run_corpus(
    attacker: Attacker, place: str, spy: ServiceSpy, victims: list[Thread]
) -> dict[str, list[str]]:
    before = victim_state(victims)
    escalations_before = Escalation.objects.count() - len(spy.escalations)
    questions_before = HumanRequest.objects.count() - len(spy.questions)
    failures: dict[str, list[str]] = {}
    for index, attack in enumerate(CORPUS):
        content = attack.message if place == "message" else f"Tell me about wrapx{index:03d}"
        thread, seen = attacker.run(attack, content)
        found = problems_with(attack, thread, seen)
        if found:
            failures[attack.ref] = found
    assert victim_state(victims) == before, "another thread changed"
    assert Escalation.objects.count() - escalations_before == len(spy.escalations)
    assert HumanRequest.objects.count() - questions_before == len(spy.questions)
    return failures


def hide_in_articles() -> None:
    """One help-centre article per attack, found by the attack's own topic word."""
    KnowledgeArticle.objects.bulk_create(
        KnowledgeArticle(
            slug=f"wrapx{index:03d}",
            title=f"Gift wrapping wrapx{index:03d}",
            # The attack rides in a sentence about the topic, so retrieval quotes it.
            body=(
                f"Gift wrapping wrapx{index:03d} {attack.message}\n\n"
                f"Gift wrapping wrapx{index:03d} costs 2 euros."
            ),
            tags="gift wrapping",
        )
        for index, attack in enumerate(CORPUS)
    )
    knowledge.clear_cache()


# --- The tests --------------------------------------------------------------------------------


def test_it_has_over_a_hundred_attacks() -> None:
    assert len(CORPUS) >= 100
    assert len({attack.text for attack in CORPUS}) == len(CORPUS)


@pytest.mark.usefixtures("no_rate_limits")
def test_it_resists_direct_injection_against_a_gullible_model(
    llm: ScriptedLLMServer,
    gullible: GullibleModel,
    event_log: EventLog,
    spy: ServiceSpy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    victims = make_victims()
    drain()
    llm.clear()
    failures = run_corpus(
        Attacker(event_log, django_capture_on_commit_callbacks), "message", spy, victims
    )
    assert set(gullible.obeyed) == {attack.ref for attack in CORPUS}  # it fell for each
    assert not failures, failures
    # Another thread's data never even reaches the model.
    requests = llm.chat_requests()
    assert len(requests) >= len(CORPUS)
    assert not [r for r in requests if VICTIM in str(r.body)]


@pytest.mark.usefixtures("no_rate_limits")
def test_it_resists_injection_hidden_in_knowledge_against_a_gullible_model(
    gullible: GullibleModel,
    event_log: EventLog,
    spy: ServiceSpy,
    django_capture_on_commit_callbacks: Any,
) -> None:
    victims = make_victims()
    drain()
    hide_in_articles()
    failures = run_corpus(
        Attacker(event_log, django_capture_on_commit_callbacks), "article", spy, victims
    )
    assert set(gullible.obeyed) == {attack.ref for attack in CORPUS}
    assert not failures, failures


@pytest.mark.usefixtures("no_rate_limits")
@pytest.mark.parametrize("place", ["message", "article"])
def test_it_resists_injection_against_the_offline_responder(
    place: str,
    event_log: EventLog,
    spy: ServiceSpy,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SUPPORTDESK_LLM = "offline"
    victims = make_victims()
    drain()
    if place == "article":
        hide_in_articles()
    failures = run_corpus(
        Attacker(event_log, django_capture_on_commit_callbacks), place, spy, victims
    )
    assert not failures, failures


@pytest.mark.usefixtures("no_rate_limits")
def test_it_keeps_reviewer_feedback_out_of_a_regenerated_reply(
    llm: ScriptedLLMServer,
    gullible: GullibleModel,
    event_log: EventLog,
    staff_client: APIClient,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # A reviewer rejects a draft, then the thread goes to auto mode before the new
    # draft is written: the gullible model repeats its whole context, review included.
    attack = next(a for a in CORPUS if a.goal == "prompt")
    attacker = Attacker(event_log, django_capture_on_commit_callbacks, ai_mode="draft")
    thread, _ = attacker.run(attack, attack.message)
    draft = ApprovalDraft.objects.filter(thread=thread, status="pending").first()
    if draft is None:  # escalated rather than drafted: nothing to review
        draft_message = thread_services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content="a draft",
            provider="openai",
            model="gpt-test",
            visibility=Visibility.DRAFT,
        )
        draft = approval_services.approval_draft_create(thread=thread, message=draft_message)
    review = "REVIEW-SECRET: never mention the lawsuit from the other customer"
    desk = f"/api/v1/desk/threads/{thread.pk}/"
    assert staff_client.patch(desk, {"ai_mode": "auto"}, format="json").status_code == 200
    response = staff_client.post(
        f"/api/v1/desk/approvals/{draft.pk}/reject/",
        {"review": review, "next": "regenerate"},
        format="json",
    )
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        drain()
    customer_text = " ".join(
        Message.objects.filter(thread=thread, visibility=Visibility.PUBLIC).values_list(
            "content", flat=True
        )
    )
    deltas = " ".join(
        str(e.payload.get("delta", "")) for e in event_log.events if e.type == "message.delta"
    )
    assert "REVIEW-SECRET" not in customer_text + deltas
    assert not repeats_instructions(customer_text + deltas, PROMPT_SHINGLES)


@pytest.mark.usefixtures("no_rate_limits")
def test_it_runs_only_the_knowledge_search_for_a_copilot(
    llm: ScriptedLLMServer, gullible: GullibleModel, event_log: EventLog, agent: Any
) -> None:
    # A human owns the thread: the AI only suggests, and is offered search_knowledge
    # alone. An attack telling it to escalate or ask a human must not do either.
    failures = {}
    for attack in [a for a in CORPUS if a.tool in ("escalate", "ask_human")]:
        thread, _ = make_thread(customer_name="Mallory")
        thread_services.human_reply_create(thread=thread, user=agent, content="Hi, I'm here.")
        thread_services.customer_message_create(thread=thread, content=attack.message)
        drain()
        found = problems_with(attack, thread, "", offered={"search_knowledge"})
        if Escalation.objects.filter(thread=thread).exists():
            found.append("escalated")
        if found:
            failures[attack.ref] = found
    assert not failures, failures
