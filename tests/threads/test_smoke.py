from __future__ import annotations

from typing import Any

from threads.models import Message


def test_it_creates_a_thread_with_a_first_message(anon_client: Any, db: Any) -> None:
    response = anon_client.post(
        "/api/v1/threads/", {"customer": {"name": "Ann"}, "message": "Hello"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["thread"]["last_seq"] == 1
    stored = Message.objects.get(thread_id=body["thread"]["id"])
    assert stored.content == "Hello"
    assert stored.author_name == "Ann"
