"""The topic of each customer message: from the classifier model, else the knowledge base;
stored on the turn and on the escalation, and used to route the escalation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from escalations.models import Escalation, RoutingRule
from supportdesk.agent import knowledge
from supportdesk.agent.kb_data import knowledge_seed
from supportdesk.agent.models import AgentTurn, KnowledgeArticle
from supportdesk.agent.router import parse_classification
from tests.escalations.ops_helpers import make_queue
from tests.llm_server import ScriptedLLMServer, final, text, tool_call
from tests.turns import drain
from threads.identity import identity_sign
from threads.models import Thread

pytestmark = pytest.mark.django_db

TOPICS = ["orders", "shipping", "returns", "billing", "account", "product"]


@pytest.fixture(autouse=True)
def _topics(settings: Any) -> None:
    settings.SUPPORTDESK_TOPICS = TOPICS


@pytest.fixture
def kb(db: Any) -> Iterator[None]:
    knowledge.clear_cache()
    knowledge_seed()
    yield
    knowledge.clear_cache()


@pytest.fixture
def classifier(llm: ScriptedLLMServer, settings: Any) -> ScriptedLLMServer:
    settings.SUPPORTDESK_CLASSIFIER_MODEL = "classifier-mini"
    return llm


def post(client: APIClient, thread: Thread, content: str) -> None:
    response = client.post(
        f"/api/v1/threads/{thread.pk}/messages/", {"content": content}, format="json"
    )
    assert response.status_code == 201


def turn_of(thread: Thread) -> AgentTurn:
    return AgentTurn.objects.get(thread=thread)


# --- the classifier model ------------------------------------------------------------


def test_it_asks_the_classifier_for_a_topic_in_the_same_short_call(
    classifier: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    thread, _ = thread_and_token
    classifier.push(text("ai billing"), model="classifier-mini")
    classifier.push(final("Here is how to pay.", 0.9), model="gpt-test")
    post(customer_client, thread, "Can I pay with PayPal?")
    drain()
    request = next(r for r in classifier.requests if r.model == "classifier-mini")
    prompt = request.messages[0]["content"]
    assert "two words" in prompt
    assert "billing, shipping" not in prompt  # the configured order, not alphabetical
    assert ", ".join(TOPICS) in prompt
    assert request["max_tokens"] <= 8
    assert [r.model for r in classifier.requests].count("classifier-mini") == 1


def test_it_stores_the_classifier_topic_on_the_turn_when_the_ai_answers(
    classifier: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    thread, _ = thread_and_token
    classifier.push(text("ai shipping"), model="classifier-mini")
    classifier.push(final("It ships tomorrow.", 0.9), model="gpt-test")
    post(customer_client, thread, "When does my order ship?")
    drain()
    turn = turn_of(thread)
    assert (turn.outcome, turn.decision, turn.topic) == ("reply", "ai", "shipping")


def test_it_stores_the_classifier_topic_on_the_turn_and_the_escalation(
    classifier: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    thread, _ = thread_and_token
    classifier.push(text("Human, billing."), model="classifier-mini")
    post(customer_client, thread, "You charged me twice and I am furious")
    drain()
    turn = turn_of(thread)
    assert (turn.decision, turn.decision_step, turn.topic) == ("escalate", "classifier", "billing")
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.topic) == ("classifier", "billing")


def test_it_routes_an_escalation_by_the_classifier_topic(
    classifier: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    make_queue("General")
    billing = make_queue("Billing", is_default=False)
    RoutingRule.objects.create(queue=billing, topic="billing")
    thread, _ = thread_and_token
    classifier.push(text("ai billing"), model="classifier-mini")
    classifier.push(tool_call("escalate", {"reason": "refund above the limit"}), model="gpt-test")
    post(customer_client, thread, "Please refund the 900 euros you took")
    drain()
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.topic, escalation.queue) == ("tool", "billing", billing)


def test_it_stores_no_topic_for_a_word_that_is_not_a_topic(
    classifier: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    kb: None,
) -> None:
    thread, _ = thread_and_token
    classifier.push(text("ai weather"), model="classifier-mini")
    classifier.push(final("Sure.", 0.9), model="gpt-test")
    # The knowledge base would say billing: the classifier's answer wins.
    post(customer_client, thread, "My card was declined")
    drain()
    assert turn_of(thread).topic == ""


def test_it_falls_back_to_the_knowledge_base_for_a_one_word_answer(
    classifier: ScriptedLLMServer,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    kb: None,
) -> None:
    thread, _ = thread_and_token
    classifier.push(text("ai"), model="classifier-mini")
    classifier.push(final("Sure.", 0.9), model="gpt-test")
    post(customer_client, thread, "My card was declined")
    drain()
    assert turn_of(thread).topic == "billing"


def test_it_asks_for_one_word_when_no_topics_are_configured(
    classifier: ScriptedLLMServer,
    settings: Any,
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
) -> None:
    settings.SUPPORTDESK_TOPICS = []
    thread, _ = thread_and_token
    classifier.push(text("ai"), model="classifier-mini")
    classifier.push(final("Sure.", 0.9), model="gpt-test")
    post(customer_client, thread, "My card was declined")
    drain()
    request = next(r for r in classifier.requests if r.model == "classifier-mini")
    assert "exactly one word" in request.messages[0]["content"]
    assert turn_of(thread).topic == ""


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("ai billing", ("ai", "billing")),
        ("HUMAN SHIPPING", ("human", "shipping")),
        ("human, returns.", ("human", "returns")),
        ("Responder: ai\nTopic: account", ("ai", "account")),
        ("ai return", ("ai", "returns")),  # singular for plural
        ("ai none", ("ai", "")),
        ("ai weather", ("ai", "")),
        ("human", ("human", None)),
        ("", (None, None)),
        ("billing", (None, "billing")),
    ],
)
def test_it_parses_the_classifier_answer_tolerantly(
    answer: str, expected: tuple[str | None, str | None]
) -> None:
    assert parse_classification(answer, TOPICS) == expected


# --- offline: the knowledge base -------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("My card was declined", "billing"),
        ("I forgot my password", "account"),
        ("Do you ship to Canada?", "shipping"),
        ("What size should I get for the hiking boots?", "product"),
        ("When will I get my refund?", "returns"),
        ("What is the capital of France?", ""),
        ("hello", ""),
    ],
)
def test_it_takes_the_topic_from_the_best_matching_articles_offline(
    customer_client: APIClient,
    thread_and_token: tuple[Thread, str],
    kb: None,
    question: str,
    topic: str,
) -> None:
    thread, _ = thread_and_token
    post(customer_client, thread, question)
    drain()
    assert turn_of(thread).topic == topic


def test_it_takes_no_topic_from_articles_without_a_configured_category(
    settings: Any, customer_client: APIClient, thread_and_token: tuple[Thread, str], kb: None
) -> None:
    settings.SUPPORTDESK_TOPICS = ["shipping"]
    thread, _ = thread_and_token
    post(customer_client, thread, "My card was declined")
    drain()
    assert turn_of(thread).topic == ""


def test_it_uses_the_category_an_editor_gives_an_article(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], kb: None
) -> None:
    article = KnowledgeArticle.objects.get(slug="failed-payments")
    article.category = "account"
    article.save()
    thread, _ = thread_and_token
    post(customer_client, thread, "My card was declined")
    drain()
    assert turn_of(thread).topic == "account"


def test_it_gives_a_rules_escalation_the_topic_of_the_message(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], kb: None
) -> None:
    make_queue("General")
    returns = make_queue("Returns", is_default=False)
    RoutingRule.objects.create(queue=returns, topic="returns")
    thread, _ = thread_and_token
    post(customer_client, thread, "I want to talk to a person about my refund")
    drain()
    turn = turn_of(thread)
    assert (turn.decision_step, turn.topic) == ("rules", "returns")
    escalation = Escalation.objects.get(thread=thread)
    assert (escalation.source, escalation.topic, escalation.queue) == (
        "customer_request",
        "returns",
        returns,
    )


def test_it_gives_a_customer_handoff_the_thread_s_latest_topic(
    customer_client: APIClient, thread_and_token: tuple[Thread, str], kb: None
) -> None:
    thread, _ = thread_and_token
    for content in ("I forgot my password", "My card was declined", "thanks"):
        post(customer_client, thread, content)
        drain()
    response = customer_client.post(f"/api/v1/threads/{thread.pk}/handoff/", {}, format="json")
    assert response.status_code == 202
    assert Escalation.objects.get(thread=thread).topic == "billing"


# --- end to end: a signed VIP customer --------------------------------------------------


def test_it_routes_a_signed_vip_customer_s_escalation_to_the_vip_queue(
    anon_client: APIClient, settings: Any, kb: None
) -> None:
    secret = "site-secret-for-tests-0123456789abcdef"
    settings.SUPPORTDESK_IDENTITY_SECRET = secret
    make_queue("General")
    vip = make_queue("VIP", is_default=False)
    RoutingRule.objects.create(queue=vip, tier="vip")
    customer = {
        "external_id": "u-7",
        "tier": "vip",
        "signature": identity_sign(secret, "u-7", "vip"),
    }
    signed = anon_client.post(
        "/api/v1/threads/",
        {"customer": customer, "message": "Can I speak to a real person?"},
        format="json",
    )
    unsigned = anon_client.post(
        "/api/v1/threads/",
        {
            "customer": {"external_id": "u-7", "tier": "vip"},
            "message": "Can I speak to a real person?",
        },
        format="json",
    )
    drain()
    queues = {e.thread_id: e.queue.name for e in Escalation.objects.select_related("queue")}
    assert queues[_thread_id(signed)] == "VIP"
    assert queues[_thread_id(unsigned)] == "General"


def _thread_id(response: Any) -> Any:
    assert response.status_code == 201
    return Thread.objects.get(pk=response.json()["thread"]["id"]).pk
