"""``GET /api/v1/desk/threads/{id}/messages/?before=<seq>``: the newest page first."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.factories import make_thread
from threads import services
from threads.models import Thread

pytestmark = pytest.mark.django_db


def _thread_with(agent: Any, count: int) -> Thread:
    thread, _ = make_thread(subject="Long one")
    for n in range(count):
        if n % 3 == 2:
            services.internal_note_create(thread=thread, user=agent, content=f"note {n + 1}")
        else:
            services.customer_message_create(thread=thread, content=f"message {n + 1}")
    thread.refresh_from_db()
    return thread


def _messages(client: APIClient, thread: Thread, **params: Any) -> Any:
    response = client.get(f"/api/v1/desk/threads/{thread.pk}/messages/", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_it_returns_the_newest_page_in_ascending_order(staff_client: APIClient, agent: Any) -> None:
    thread = _thread_with(agent, 12)
    page = _messages(staff_client, thread, before=thread.last_seq + 1, limit=5)
    assert [m["seq"] for m in page["results"]] == [8, 9, 10, 11, 12]
    assert page["has_more"] is True
    assert page["last_seq"] == 12


def test_it_pages_back_until_the_first_message(staff_client: APIClient, agent: Any) -> None:
    thread = _thread_with(agent, 12)
    seen: list[int] = []
    before = thread.last_seq + 1
    while True:
        page = _messages(staff_client, thread, before=before, limit=5)
        seen = [m["seq"] for m in page["results"]] + seen
        if not page["has_more"]:
            break
        before = page["results"][0]["seq"]
    assert seen == list(range(1, 13))


def test_it_includes_every_visibility_before_a_seq(staff_client: APIClient, agent: Any) -> None:
    thread = _thread_with(agent, 6)
    page = _messages(staff_client, thread, before=4)
    assert [(m["seq"], m["visibility"]) for m in page["results"]] == [
        (1, "public"),
        (2, "public"),
        (3, "internal"),
    ]
    assert page["has_more"] is False


def test_it_combines_before_with_after(staff_client: APIClient, agent: Any) -> None:
    thread = _thread_with(agent, 10)
    page = _messages(staff_client, thread, after=3, before=8, limit=2)
    assert [m["seq"] for m in page["results"]] == [6, 7]
    assert page["has_more"] is True


@pytest.mark.parametrize("before", ["0", "-1", "abc", "1.5", "99999999999", "٣"])
def test_it_refuses_a_bad_before(staff_client: APIClient, agent: Any, before: str) -> None:
    thread = _thread_with(agent, 2)
    response = staff_client.get(f"/api/v1/desk/threads/{thread.pk}/messages/", {"before": before})
    assert response.status_code == 400
    assert "before" in response.json()["error"]["fields"]


def test_it_reads_the_newest_page_in_a_constant_number_of_queries(
    staff_client: APIClient, agent: Any, other_agent: Any
) -> None:
    thread = _thread_with(agent, 4)

    def count() -> int:
        thread.refresh_from_db()
        with CaptureQueriesContext(connection) as context:
            _messages(staff_client, thread, before=thread.last_seq + 1)
        return len(context.captured_queries)

    few = count()
    for n in range(20):
        services.internal_note_create(thread=thread, user=[agent, other_agent][n % 2], content="n")
    assert count() == few


def test_it_documents_before_in_the_schema(anon_client: APIClient) -> None:
    schema = anon_client.get("/api/v1/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/desk/threads/{thread_id}/messages/"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"after", "before", "limit"} <= names
