from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from supportdesk.agent.models import AgentTurn, ModelCall
from tests.factories import make_thread
from threads import services

pytestmark = pytest.mark.django_db


def add_call(model: str, prompt: int, completion: int, cost: str) -> ModelCall:
    thread, _ = make_thread()
    services.customer_message_create(thread=thread, content="hi")
    turn = AgentTurn.objects.get(thread=thread)
    return ModelCall.objects.create(
        turn=turn, thread=thread, provider="openai", model=model, prompt_tokens=prompt,
        completion_tokens=completion, latency_ms=100, cost=Decimal(cost),
    )  # fmt: skip


def test_it_rolls_usage_up_by_model(staff_client: APIClient) -> None:
    add_call("gpt-a", 100, 10, "0.001")
    add_call("gpt-a", 50, 5, "0.002")
    add_call("gpt-b", 7, 3, "0.0001")
    rows = staff_client.get("/api/v1/desk/usage/", {"group_by": "model"}).json()["results"]
    assert [(r["key"], r["model_calls"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("gpt-a", 2, 150, 15), ("gpt-b", 1, 7, 3)
    ]  # fmt: skip
    assert Decimal(rows[0]["cost"]) == Decimal("0.003")


def test_it_rolls_usage_up_by_day_with_human_messages(staff_client: APIClient, agent: Any) -> None:
    from django.utils import timezone

    call = add_call("gpt-a", 10, 1, "0")
    services.human_reply_create(thread=call.thread, user=agent, content="hi")
    rows = staff_client.get("/api/v1/desk/usage/").json()["results"]
    today = timezone.now().date().isoformat()
    assert [(r["key"], r["model_calls"], r["human_messages"]) for r in rows] == [(today, 1, 1)]


def test_it_rolls_usage_up_by_thread(staff_client: APIClient) -> None:
    call = add_call("gpt-a", 10, 1, "0")
    rows = staff_client.get("/api/v1/desk/usage/", {"group_by": "thread"}).json()["results"]
    assert [r["key"] for r in rows] == [str(call.thread_id)]


def test_it_filters_usage_by_time(staff_client: APIClient) -> None:
    add_call("gpt-a", 10, 1, "0")
    rows = staff_client.get(
        "/api/v1/desk/usage/", {"since": "2000-01-01", "until": "2000-01-02"}
    ).json()
    assert rows["results"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "week"},
        {"since": "yesterday"},
        {"since": "2030-01-03", "until": "2030-01-01"},
        {"until": "2030-13-45"},
    ],
)
def test_it_rejects_bad_usage_parameters(staff_client: APIClient, params: dict[str, str]) -> None:
    response = staff_client.get("/api/v1/desk/usage/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_it_keeps_usage_for_staff_only(anon_client: APIClient) -> None:
    assert anon_client.get("/api/v1/desk/usage/").status_code == 401


def test_it_rolls_usage_up_in_a_constant_number_of_queries(staff_client: APIClient) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert (
                staff_client.get("/api/v1/desk/usage/", {"group_by": "thread"}).status_code == 200
            )
        return len(ctx.captured_queries)

    for _ in range(3):
        add_call("gpt-a", 10, 1, "0")
    few = queries()
    for _ in range(7):
        add_call("gpt-b", 10, 1, "0")
    assert queries() == few
