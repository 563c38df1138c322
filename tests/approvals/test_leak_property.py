"""Property: no sequence of API calls shows the customer a draft, rejected or superseded
text, an internal note, or a tool exchange."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from approvals.models import ApprovalDraft
from escalations.models import Escalation, HumanRequest
from tests.factories import make_thread
from tests.llm_server import ScriptedLLMServer, final, tool_call
from tests.turns import drain
from threads.models import Message

pytestmark = pytest.mark.django_db

OPERATIONS = st.lists(
    st.sampled_from(
        [
            "customer_posts",
            "ai_confident",
            "ai_unsure",
            "ai_asks_human",
            "answer_question",
            "approve",
            "approve_edited",
            "reject_regenerate",
            "reject_human",
            "note",
            "reply",
            "toggle_mode",
            "hand_back",
            "handoff",
        ]
    ),
    min_size=1,
    max_size=12,
)

counter = itertools.count()


def customer_visible(client: APIClient, thread_id: Any) -> list[str]:
    return [
        m["content"]
        for m in client.get(f"/api/v1/threads/{thread_id}/messages/?limit=200").json()["results"]
    ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
def test_it_never_shows_hidden_text_to_the_customer(
    operations: list[str], llm: ScriptedLLMServer, staff_client: APIClient
) -> None:
    thread, token = make_thread(ai_mode="draft")
    customer = APIClient()
    customer.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    desk = f"/api/v1/desk/threads/{thread.pk}/"

    def pending(kind: str | None = None) -> ApprovalDraft | None:
        drafts = ApprovalDraft.objects.filter(thread=thread, status="pending")
        return (drafts.filter(kind=kind) if kind else drafts).first()

    for operation in operations:
        n = next(counter)
        if operation == "customer_posts":
            customer.post(
                f"/api/v1/threads/{thread.pk}/messages/",
                {"content": f"customer {n}"},
                format="json",
            )
        elif operation in ("ai_confident", "ai_unsure", "ai_asks_human"):
            if operation == "ai_asks_human":
                llm.push(tool_call("ask_human", {"question": f"QUESTION-{n}"}, id=f"call_{n}"))
            llm.push(final(f"AI-TEXT-{n}", 0.9 if operation != "ai_unsure" else 0.2))
            drain()
            llm.clear()
        elif operation == "answer_question":
            request = HumanRequest.objects.filter(thread=thread, status="pending").first()
            if request is not None:
                staff_client.post(
                    f"/api/v1/desk/human-requests/{request.pk}/answer/",
                    {"answer": f"ANSWER-{n}"},
                    format="json",
                )
                llm.push(final(f"AI-TEXT-{n}", 0.9))
                drain()
                llm.clear()
        elif operation in ("approve", "approve_edited"):
            draft = pending()
            if draft is not None:
                body = {"content": f"EDITED-{n}"} if operation == "approve_edited" else {}
                staff_client.post(
                    f"/api/v1/desk/approvals/{draft.pk}/approve/", body, format="json"
                )
        elif operation in ("reject_regenerate", "reject_human"):
            draft = pending("approval")
            if draft is not None:
                staff_client.post(
                    f"/api/v1/desk/approvals/{draft.pk}/reject/",
                    {
                        "review": f"REVIEW-{n}",
                        "next": "regenerate" if operation == "reject_regenerate" else "human",
                    },
                    format="json",
                )
                llm.push(final(f"AI-TEXT-{n}", 0.9))
                drain()
                llm.clear()
        elif operation == "note":
            staff_client.post(
                desk + "reply/", {"content": f"NOTE-{n}", "internal": True}, format="json"
            )
        elif operation == "reply":
            staff_client.post(desk + "reply/", {"content": f"human {n}"}, format="json")
        elif operation == "toggle_mode":
            thread.refresh_from_db()
            staff_client.patch(
                desk, {"ai_mode": "auto" if thread.ai_mode == "draft" else "draft"}, format="json"
            )
        elif operation == "hand_back":
            staff_client.post(desk + "assign/", {"responder": "ai"}, format="json")
            escalation = Escalation.objects.filter(
                thread=thread, status__in=["open", "claimed"]
            ).first()
            if escalation is not None:
                staff_client.post(
                    f"/api/v1/desk/escalations/{escalation.pk}/resolve/", {}, format="json"
                )
        elif operation == "handoff":
            customer.post(f"/api/v1/threads/{thread.pk}/handoff/", {}, format="json")

        visible = set(customer_visible(customer, thread.pk))
        sent = set(
            ApprovalDraft.objects.filter(thread=thread, status="approved").values_list(
                "final_content", flat=True
            )
        )
        hidden = (
            set(
                ApprovalDraft.objects.filter(thread=thread)
                .exclude(status="approved")
                .values_list("content", flat=True)
            )
            - sent
        )
        hidden |= (
            set(
                Message.objects.filter(thread=thread)
                .exclude(visibility="public")
                .values_list("content", flat=True)
            )
            - sent
        )
        leaked = {text for text in visible if text in hidden}
        assert not leaked, (operations, leaked)
        assert not {
            text
            for text in visible
            if text.startswith(("NOTE-", "QUESTION-", "ANSWER-", "REVIEW-"))
        }
