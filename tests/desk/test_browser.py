"""The desk, the admin and the widget in a real browser (Chromium through Playwright),
against a real ASGI server and AI worker (see conftest.py).

Screenshots of every page land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from approvals.models import ApprovalDraft, DraftStatus
from escalations.models import AgentPresence, Escalation, HumanRequest
from supportdesk.agent.kb_data import knowledge_seed
from tests.desk.conftest import OTHER_HOST, SHOP_HOST, TABLET, assert_accessible, screenshot
from tests.desk.helpers import (
    dashboard_history,
    draft_thread,
    escalated_thread,
    xss,
    xss_shown,
    xss_world,
)
from tests.desk.test_views import _bulk_messages
from tests.factories import UserFactory, make_thread
from tests.llm_server import final, tool_call
from threads import services
from threads.models import Message, Responder, Thread, Visibility

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-desk-password"
# With channels-redis the worker's events reach the server's sockets; without it (the
# in-memory layer is per process) the pages see the AI's work through polling.
SHARED_LAYER = bool(os.environ.get("REDIS_URL"))


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    # Long enough for the pages' polling fallback (8 s while the socket is up).
    playwright_expect.set_options(timeout=15_000)
    return playwright_expect(locator)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.fixture
def desk_agent(settings: Any) -> Any:
    # A password the server process can check (it does not know the tests' MD5 hasher).
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    user = UserFactory(username="alex", first_name="Alex", last_name="Rivera")
    user.set_password(PASSWORD)
    user.save()
    return user


def record_frames(page: Any) -> list[dict[str, Any]]:
    """Every JSON frame the page's websockets receive, to prove a change came live."""
    frames: list[dict[str, Any]] = []

    def on_socket(socket: Any) -> None:
        def on_frame(payload: Any) -> None:
            if isinstance(payload, str):
                frames.append(json.loads(payload))

        socket.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return frames


def frame_types(frames: list[dict[str, Any]]) -> list[str]:
    return [str(frame.get("type")) for frame in frames]


def wait_for_frame(
    page: Any, frames: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]
) -> None:
    """Until a recorded frame passes ``test`` (Playwright hands frames over only while
    one of its calls runs, hence ``wait_for_timeout`` rather than ``time.sleep``)."""
    for _ in range(150):
        if any(test(frame) for frame in frames):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"no such frame among {frame_types(frames)}")


def staff_post(server: Any, user: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A staff API call served by the server process, so that its events go out on the
    server's channel layer (this process's in-memory layer reaches no browser)."""
    import urllib.request

    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def assert_no_injected_script(page: Any) -> None:
    assert page.evaluate("window.__xss") is None
    for frame in page.frames:
        assert frame.evaluate("window.__xss") is None


# --- The handoff, end to end ---------------------------------------------------------------


def test_it_hands_a_customer_from_the_ai_to_an_agent_and_back(
    pages: Any, ai_worker: Any, desk_agent: Any
) -> None:
    knowledge_seed()

    # The agent signs in through the desk's login form and watches the inbox.
    desk = pages()
    desk_frames = record_frames(desk)
    desk.goto("/desk/")
    assert_accessible(desk, "login")
    # Focus order: the skip link, then the form from top to bottom.
    expect(desk.get_by_label("Username")).to_be_focused()
    desk.keyboard.press("Shift+Tab")
    expect(desk.get_by_role("link", name="Skip to content")).to_be_focused()
    desk.keyboard.press("Tab")
    desk.keyboard.press("Tab")
    expect(desk.get_by_label("Password")).to_be_focused()
    desk.keyboard.press("Tab")
    expect(desk.get_by_role("button", name="Sign in")).to_be_focused()
    desk.get_by_label("Username").fill("alex")
    desk.get_by_label("Password").fill(PASSWORD)
    desk.get_by_role("button", name="Sign in").click()
    expect(desk.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(desk.locator("#connection")).to_have_text("Live")

    # The customer opens the widget and asks; the offline AI answers from the help centre.
    widget = pages()
    widget_frames = record_frames(widget)
    widget.goto("/widget/demo/")
    widget.locator(".launcher").click()
    expect(widget.locator(".status-text")).to_have_text("AI assistant")
    expect(widget.locator("#sd-input")).to_be_focused()
    widget.locator("#sd-input").fill("How do I wash my down jacket?")
    widget.locator("#sd-input").press("Enter")
    expect(widget.locator(".msg.customer .text")).to_have_text("How do I wash my down jacket?")
    expect(widget.locator(".msg.ai .text").first).to_contain_text("down", timeout=30_000)
    if SHARED_LAYER:
        # The first question creates the thread and its turn before the widget can open
        # the thread's socket, and the worker may stream that answer before it is open.
        # A follow-up goes over the open socket: its text reaches the customer as the
        # worker writes it, before the stored message.
        wait_for_frame(widget, widget_frames, lambda frame: frame["type"] == "message.created")
        widget.locator("#sd-input").fill("How do I clean my hiking boots?")
        widget.locator("#sd-input").press("Enter")
        expect(widget.locator(".msg.ai .text").nth(1)).to_contain_text("boots", timeout=30_000)
        wait_for_frame(widget, widget_frames, lambda frame: frame["type"] == "message.delta")
        streamed = [f["type"] for f in widget_frames if f["type"].startswith("message.")]
        assert streamed.index("message.delta") < len(streamed) - 1, streamed
    thread = Thread.objects.get()
    token = widget.evaluate("Object.values(localStorage).join('')")
    assert str(thread.pk) in token

    # The new thread shows up in the inbox live.
    expect(desk.locator(f'tr[data-thread="{thread.pk}"]')).to_be_visible(timeout=10_000)

    # The customer asks for a person: the escalation appears on the desk through the socket.
    widget.get_by_role("button", name="Talk to a person").click()
    expect(widget.locator(".status-text")).to_have_text("Waiting for a person…")
    row = desk.locator(f'tr[data-thread="{thread.pk}"]')
    expect(row.locator(".badge-escalation")).to_be_visible(timeout=15_000)
    wait_for_frame(desk, desk_frames, lambda frame: frame["type"] == "escalation.created")
    screenshot(desk, "inbox-live-escalation")
    screenshot(widget, "widget-waiting")
    assert_accessible(desk, "inbox")
    assert_accessible(widget, "widget")

    # The agent opens the thread and claims the escalation.
    row.locator("a.subject").click()
    expect(desk.locator("#thread-subject")).to_be_visible()
    expect(desk.locator("#messages")).to_contain_text("How do I wash my down jacket?")
    expect(desk.locator("#escalation-card")).to_contain_text("The customer asked for a person")
    expect(desk.locator("#messages .turn").first).to_contain_text("Routing:")
    desk.get_by_role("button", name="Claim").click()
    expect(desk.locator("#responder-line")).to_have_text("You answer this customer.")

    # Typing shows on the other side, both ways (over the sockets).
    widget.locator("#sd-input").fill("Also, the zip is")
    expect(desk.locator("#typing")).to_have_text("Customer is typing…")
    widget.locator("#sd-input").fill("")
    expect(desk.locator("#typing")).to_have_text("")
    desk.locator("#composer-text").fill("Hi")
    expect(widget.locator(".typing")).to_have_text("Alex Rivera is typing…")
    expect(widget.locator(".status-text")).to_have_text("Alex Rivera from Support")
    expect(widget.locator(".log")).to_contain_text(
        "Alex Rivera from Support joined the conversation"
    )

    # The agent replies; the customer sees it live, with the agent's name.
    desk.locator("#composer-text").fill("Hi, I'm Alex. I'll sort this out.")
    desk.get_by_role("button", name="Send reply").click()
    expect(desk.locator("#messages .msg-human").last).to_contain_text("I'll sort this out.")
    reply = widget.locator(".msg.human").last
    expect(reply.locator(".text")).to_have_text("Hi, I'm Alex. I'll sort this out.", timeout=15_000)
    expect(reply.locator(".who")).to_have_text("Alex Rivera from Support")
    # Over the customer socket, not only through the polling fallback.
    wait_for_frame(
        widget,
        widget_frames,
        lambda frame: (
            frame["type"] == "message.created"
            and frame["message"]["content"] == "Hi, I'm Alex. I'll sort this out."
        ),
    )
    wait_for_frame(
        widget,
        widget_frames,
        lambda frame: (
            frame["type"] == "thread.updated"
            and frame["thread"]["agent"] == {"name": "Alex Rivera"}
        ),
    )

    # An internal note stays on the desk.
    desk.locator("input[name=mode][value=note]").check()
    expect(desk.get_by_role("button", name="Add note")).to_be_visible()
    desk.locator("#composer-text").fill("Customer washed it in a top loader.")
    desk.get_by_role("button", name="Add note").click()
    expect(desk.locator("#messages .vis-internal")).to_contain_text("top loader")
    screenshot(desk, "thread-view")
    assert_accessible(desk, "thread-view")

    # The agent hands the thread back to the AI; the customer is told.
    desk.get_by_role("button", name="Hand back to AI").click()
    expect(desk.locator("#responder-line")).to_have_text("The AI answers this customer.")
    expect(widget.locator(".status-text")).to_have_text("AI assistant")
    expect(widget.locator(".log")).to_contain_text("Our AI assistant is answering again")
    expect(widget.locator(".log")).not_to_contain_text("top loader")
    assert "top loader" not in json.dumps(widget_frames)
    screenshot(widget, "widget")

    # Escape closes the panel and gives focus back to the launcher; a new page view finds
    # the conversation again (the token in localStorage, the messages after seq 0).
    widget.locator("#sd-input").press("Escape")
    expect(widget.locator(".panel")).to_be_hidden()
    expect(widget.locator(".launcher")).to_be_focused()
    widget.reload()
    widget.locator(".launcher").click()
    expect(widget.locator(".msg.human .text")).to_have_text("Hi, I'm Alex. I'll sort this out.")
    expect(widget.locator(".status-text")).to_have_text("AI assistant")
    assert str(thread.pk) in widget.evaluate("Object.values(localStorage).join('')")

    # The status switch: busy keeps the desk live; offline closes its socket.
    presence = desk.locator("#presence")
    presence.select_option("busy")
    wait_for(lambda: AgentPresence.objects.filter(user=desk_agent, status="busy").exists())
    expect(desk.locator("#connection")).to_have_text("Live")
    presence.select_option("offline")
    expect(desk.locator("#connection")).to_have_text("Offline · polling")
    wait_for(
        lambda: AgentPresence.objects.filter(
            user=desk_agent, status="offline", connections=0
        ).exists()
    )
    presence.select_option("online")
    expect(desk.locator("#connection")).to_have_text("Live")
    wait_for(lambda: AgentPresence.objects.filter(user=desk_agent, status="online").exists())

    thread.refresh_from_db()
    assert (thread.responder, thread.assignee) == (Responder.AI, None)
    assert Escalation.objects.get(thread=thread).claimed_by == desk_agent
    assert list(thread.assignments.order_by("id").values_list("responder", flat=True)) == [
        "ai",
        "human",
        "human",
        "ai",
    ]


# --- Embedded on another site ------------------------------------------------------------------


def test_it_works_embedded_on_another_site_and_only_on_allowed_ones(
    pages: Any, shop_site: int, asgi_server: Any, desk_agent: Any
) -> None:
    # The shop's origin is in the server's SUPPORTDESK_WIDGET_ORIGINS: the customer API
    # (preflights included: JSON bodies, the Authorization header) and the customer socket
    # answer it.
    shop = pages()
    frames = record_frames(shop)
    sockets: list[str] = []
    shop.on("websocket", lambda socket: sockets.append(socket.url))
    shop.goto(f"http://{SHOP_HOST}:{shop_site}/")
    shop.locator(".launcher").click()
    shop.locator("#sd-input").fill("Do you ship to Norway?")
    shop.locator("#sd-input").press("Enter")
    expect(shop.locator(".msg.customer .text")).to_have_text("Do you ship to Norway?")
    thread = Thread.objects.get()
    assert thread.customer.name == "Robin Shopper"
    shop.get_by_role("button", name="Talk to a person").click()
    expect(shop.locator(".status-text")).to_have_text("Waiting for a person…")
    assert Escalation.objects.filter(thread=thread, source="customer_request").exists()

    # The agent answers through the server (its events reach the server's sockets).
    staff_post(
        asgi_server,
        desk_agent,
        f"/api/v1/desk/threads/{thread.pk}/reply/",
        {"content": "Yes, in 3 to 5 days."},
    )
    expect(shop.locator(".msg.human .text")).to_have_text("Yes, in 3 to 5 days.")
    wait_for_frame(
        shop,
        frames,
        lambda frame: (
            frame["type"] == "message.created"
            and frame["message"]["content"] == "Yes, in 3 to 5 days."
        ),
    )
    # The reply took the thread over: the widget says so before the reply, not after it.
    expect(shop.locator(".log")).to_contain_text("Alex Rivera from Support joined")
    entries = shop.locator(".log > *").all_inner_texts()
    joined = next(i for i, text in enumerate(entries) if "joined the conversation" in text)
    assert "Yes, in 3 to 5 days." in entries[joined + 1], entries
    server_ws = asgi_server.url.replace("http", "ws", 1)
    assert sockets and all(url.startswith(f"{server_ws}/ws/threads/") for url in sockets), sockets
    screenshot(shop, "widget-embedded")

    # A site that is not listed gets no CORS answer: the browser keeps the API from it.
    other = pages()
    other.goto(f"http://{OTHER_HOST}:{shop_site}/")
    other.locator(".launcher").click()
    other.locator("#sd-input").fill("Hello from a site that is not allowed")
    other.locator("#sd-input").press("Enter")
    expect(other.locator(".error")).not_to_be_empty()
    assert Thread.objects.count() == 1


# --- Approvals --------------------------------------------------------------------------------


def test_it_approves_with_an_edit_and_rejects_for_a_new_draft(
    pages: Any, ai_worker: Any, desk_agent: Any
) -> None:
    knowledge_seed()
    third, _ = make_thread(subject="Sleeping bag", ai_mode="draft")
    services.customer_message_create(thread=third, content="How do I wash my sleeping bag?")
    first, _ = make_thread(subject="Washing down", ai_mode="draft")
    services.customer_message_create(thread=first, content="How do I wash my down jacket?")
    second, _ = make_thread(subject="Shipping to Canada", ai_mode="draft")
    services.customer_message_create(thread=second, content="Do you ship to Canada?")
    wait_for(lambda: ApprovalDraft.objects.filter(status=DraftStatus.PENDING).count() == 3)

    desk = pages(desk_agent)
    desk.goto("/desk/approvals/")
    expect(desk.locator("#draft-list li")).to_have_count(3)
    expect(desk.locator("#review-context")).to_contain_text("How do I wash my sleeping bag?")
    screenshot(desk, "approvals")
    assert_accessible(desk, "approvals")

    # Reject with a review and hand the thread to a person.
    desk.get_by_role("option", name=re.compile("^Sleeping bag")).click()
    desk.get_by_role("button", name="Reject").click()
    expect(desk.locator("#reject-review")).to_be_focused()
    desk.keyboard.type("A person should check the model first.")
    desk.get_by_label("Hand the thread to a person").check()
    desk.get_by_role("button", name="Reject draft").click()
    expect(desk.locator("#draft-list li")).to_have_count(2)
    handed = ApprovalDraft.objects.get(thread=third)
    assert (handed.status, handed.next_action) == (DraftStatus.REJECTED, "human")
    assert handed.review == "A person should check the model first."
    assert Escalation.objects.filter(thread=third, status="open").exists()

    # Keyboard: ? lists the shortcuts, j and k move through the queue.
    desk.locator("#draft-list").focus()
    desk.keyboard.press("?")
    expect(desk.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    assert_accessible(desk, "approvals-shortcuts")
    desk.keyboard.press("Escape")
    expect(desk.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()
    expect(desk.locator("#review-title")).to_have_text("Washing down")
    desk.keyboard.press("j")
    expect(desk.locator("#review-title")).to_have_text("Shipping to Canada")
    desk.keyboard.press("k")
    expect(desk.locator("#review-title")).to_have_text("Washing down")

    # e edits, Ctrl+Enter approves what was typed.
    expect(desk.locator("#review-context")).to_contain_text("How do I wash my down jacket?")
    desk.keyboard.press("e")
    expect(desk.locator("#draft-text")).to_be_focused()
    desk.keyboard.type(" Reviewed by Alex.")
    expect(desk.locator("#draft-edited")).to_have_text("(edited)")
    desk.keyboard.press("Control+Enter")
    expect(desk.locator("#draft-list li")).to_have_count(1)
    approved = ApprovalDraft.objects.get(thread=first)
    assert (approved.status, approved.edited) == (DraftStatus.APPROVED, True)
    assert approved.final_content.endswith("Reviewed by Alex.")
    sent = Message.objects.get(pk=approved.sent_message_id)
    assert (sent.visibility, sent.content) == (Visibility.PUBLIC, approved.final_content)

    # r opens the review; the AI writes a new draft with it as feedback.
    expect(desk.locator("#review-title")).to_have_text("Shipping to Canada")
    desk.keyboard.press("r")
    expect(desk.locator("#reject-review")).to_be_focused()
    desk.keyboard.type("Say which carrier we use.")
    desk.keyboard.press("Control+Enter")
    rejected = wait_for(
        lambda: ApprovalDraft.objects.filter(thread=second, status=DraftStatus.REJECTED).first()
    )
    assert (rejected.review, rejected.next_action) == ("Say which carrier we use.", "regenerate")
    regenerated = wait_for(
        lambda: ApprovalDraft.objects.filter(thread=second, status=DraftStatus.PENDING).first()
    )
    expect(desk.locator(f"#draft-{regenerated.pk}")).to_be_visible(timeout=15_000)

    # a approves the new draft as it is.
    desk.locator(f"#draft-{regenerated.pk}").click()
    desk.locator("#draft-list").focus()
    desk.keyboard.press("a")
    expect(desk.locator("#approvals-empty")).to_be_visible()
    regenerated.refresh_from_db()
    assert (regenerated.status, regenerated.edited) == (DraftStatus.APPROVED, False)


# --- The copilot ---------------------------------------------------------------------------------


def test_it_sends_edits_and_discards_copilot_suggestions_and_takes_over(
    pages: Any, desk_agent: Any
) -> None:
    from approvals.models import DraftKind

    suggested = {}
    for key, text in (
        ("send", "The pole ships today."),
        ("edit", "A refund takes 5 days."),
        ("discard", "No idea, sorry."),
    ):
        thread, draft = draft_thread(content=text, kind=DraftKind.SUGGESTION, subject=key)
        services.thread_assign(thread=thread, responder="human", assignee=desk_agent)
        suggested[key] = (thread, draft)
    desk = pages(desk_agent)

    thread, draft = suggested["send"]
    desk.goto(f"/desk/threads/{thread.pk}/")
    expect(desk.locator("#suggestion")).to_contain_text("The pole ships today.")
    desk.get_by_role("button", name="Send", exact=True).click()
    expect(desk.locator("#messages .msg-human").last).to_contain_text("The pole ships today.")
    expect(desk.locator("#suggestion")).to_be_hidden()
    draft.refresh_from_db()
    assert (draft.status, draft.edited) == (DraftStatus.APPROVED, False)

    thread, draft = suggested["edit"]
    desk.goto(f"/desk/threads/{thread.pk}/")
    desk.locator("#suggestion").get_by_role("button", name="Edit").click()
    expect(desk.locator("#composer-text")).to_have_value("A refund takes 5 days.")
    expect(desk.locator("#composer-text")).to_be_focused()
    desk.keyboard.type(" You will get an email.")
    desk.get_by_role("button", name="Send edited suggestion").click()
    expect(desk.locator("#messages .msg-human").last).to_contain_text("You will get an email.")
    draft.refresh_from_db()
    assert (draft.status, draft.edited) == (DraftStatus.APPROVED, True)
    assert draft.final_content == "A refund takes 5 days. You will get an email."

    thread, draft = suggested["discard"]
    desk.goto(f"/desk/threads/{thread.pk}/")
    desk.get_by_role("button", name="Discard").click()
    expect(desk.locator("#suggestion")).to_be_hidden()
    draft.refresh_from_db()
    assert draft.status == DraftStatus.REJECTED
    assert (
        not Message.objects.filter(thread=thread, visibility=Visibility.PUBLIC)
        .exclude(role="user")
        .exists()
    )

    # An AI thread: take it over, resolve it, reopen it.
    thread, _ = make_thread(subject="Taken over", message="Is the tent waterproof?")
    desk.goto(f"/desk/threads/{thread.pk}/")
    desk.get_by_role("button", name="Take over").click()
    expect(desk.locator("#responder-line")).to_have_text("You answer this customer.")
    desk.get_by_role("button", name="Mark resolved").click()
    expect(desk.get_by_role("button", name="Reopen")).to_be_visible()
    thread.refresh_from_db()
    assert (thread.responder, thread.assignee, thread.status) == ("human", desk_agent, "resolved")
    desk.get_by_role("button", name="Reopen").click()
    expect(desk.get_by_role("button", name="Mark resolved")).to_be_visible()
    thread.refresh_from_db()
    assert thread.status == "open"


# --- The AI asks a person ----------------------------------------------------------------------


def test_it_answers_the_ais_question_from_the_thread_view(
    pages: Any, scripted_worker: Any, desk_agent: Any
) -> None:
    scripted_worker.push(
        tool_call("ask_human", {"question": "Was order 77 paid in full?"}, id="call_77")
    )
    scripted_worker.push(final("Good news: order 77 is paid in full.", 0.95))
    thread, _ = make_thread(subject="Order 77 payment")
    services.customer_message_create(
        thread=thread, content="Did my payment for order 77 go through?"
    )
    wait_for(lambda: HumanRequest.objects.filter(thread=thread).exists())

    desk = pages(desk_agent)
    frames = record_frames(desk)
    desk.goto(f"/desk/threads/{thread.pk}/")
    card = desk.locator("#questions-card")
    expect(card).to_contain_text("Was order 77 paid in full?")
    assert_accessible(desk, "thread-question")
    expect(desk.locator("#messages")).to_contain_text("The AI called ask_human")
    card.get_by_label("Your answer").fill("Yes, paid on the 3rd.")
    card.get_by_role("button", name="Answer the AI").click()
    expect(card).to_be_hidden()
    expect(desk.locator("#messages")).to_contain_text(
        "answered the AI's question: Yes, paid on the 3rd."
    )
    expect(desk.locator("#messages .msg-ai").last).to_contain_text(
        "order 77 is paid in full", timeout=30_000
    )
    if SHARED_LAYER:
        wait_for_frame(
            desk,
            frames,
            lambda frame: (
                frame["type"] == "message.delta" and frame.get("thread") == str(thread.pk)
            ),
        )
    request = HumanRequest.objects.get(thread=thread)
    assert (request.status, request.answered_by) == ("answered", desk_agent)


def test_it_keeps_an_answer_being_typed_through_a_refresh_of_the_thread(
    pages: Any, asgi_server: Any, desk_agent: Any
) -> None:
    from tests.desk.helpers import question_thread

    thread, question = question_thread("Was order 79 paid in full?")
    desk = pages(desk_agent)
    desk.goto(f"/desk/threads/{thread.pk}/")
    card = desk.locator("#questions-card")
    expect(card).to_contain_text("Was order 79 paid in full?")
    expect(desk.locator("#connection")).to_have_text("Live")
    field = card.get_by_label("Your answer")
    field.fill("Yes, paid on")
    # A reconnect refreshes the side panels (as any event on the thread does).
    desk.locator("#presence").select_option("offline")
    expect(desk.locator("#connection")).to_have_text("Offline · polling")
    with desk.expect_response(re.compile(r".*/desk/human-requests/\?thread=.*")):
        desk.locator("#presence").select_option("online")
    desk.wait_for_timeout(300)
    expect(field).to_have_value("Yes, paid on")
    field.press("End")
    field.type(" the 5th.")
    card.get_by_role("button", name="Answer the AI").click()
    expect(card).to_be_hidden()
    question.refresh_from_db()
    assert (question.status, question.answer) == ("answered", "Yes, paid on the 5th.")


def test_it_keeps_an_answered_question_closed_when_an_older_refresh_answers_last(
    pages: Any, asgi_server: Any, desk_agent: Any
) -> None:
    from tests.desk.helpers import question_thread

    thread, question = question_thread("Was order 78 paid in full?")
    desk = pages(desk_agent)
    # The refresh that follows the socket's connect reads the question while it is still
    # pending; its answer is held back until the agent has answered and the refresh after
    # the answer has shown the question gone.
    held: list[tuple[Any, Any]] = []

    def hold_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    desk.route(re.compile(r".*/desk/human-requests/\?thread=.*"), hold_first)
    desk.goto(f"/desk/threads/{thread.pk}/")
    card = desk.locator("#questions-card")
    expect(card).to_contain_text("Was order 78 paid in full?")
    for _ in range(100):
        if held:
            break
        desk.wait_for_timeout(100)
    assert held, "no refresh after the socket's connect"
    card.get_by_label("Your answer").fill("Yes, paid on the 4th.")
    card.get_by_role("button", name="Answer the AI").click()
    expect(card).to_be_hidden()
    route, stale = held[0]
    route.fulfill(response=stale)
    desk.wait_for_timeout(1000)
    expect(card).to_be_hidden()
    question.refresh_from_db()
    assert question.status == "answered"


# --- A long thread ---------------------------------------------------------------------------------


def test_it_opens_a_thousand_message_thread_at_the_newest_page(pages: Any, desk_agent: Any) -> None:
    thread, _ = make_thread(subject="A very long conversation")
    _bulk_messages(thread, 1000)
    desk = pages(desk_agent)
    desk.goto(f"/desk/threads/{thread.pk}/")
    messages = desk.locator("#messages .msg")
    expect(messages.last).to_contain_text("message number 1000")
    expect(messages).to_have_count(50)
    expect(messages.last).to_be_in_viewport()
    # Scrolling to the top loads the page before, without jumping away from where we were.
    desk.locator("#transcript").evaluate("node => { node.scrollTop = 0; }")
    expect(messages).to_have_count(100)
    expect(desk.locator('#messages [data-seq="951"]')).to_be_in_viewport()
    expect(messages.first).to_contain_text("message number 901")


# --- The admin -----------------------------------------------------------------------------------


def run_admin_action(page: Any, changelist: str, row: str, action: str, **fields: str) -> None:
    """Tick ``row`` on the changelist, pick ``action`` (and the action bar's ``fields``), Go."""
    page.goto(changelist)
    page.get_by_role("row").filter(has_text=row).get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option(label=action)
    for name, label in fields.items():
        page.locator(f"select[name={name}]").select_option(label=label)
    page.get_by_role("button", name="Go").click()


def test_it_works_threads_in_the_admin_and_charts_the_dashboard(
    pages: Any, admin_user: Any, agent: Any
) -> None:
    dashboard_history(agent)
    approve_thread, _ = draft_thread(content="Your pole ships today.", subject="Pole, approve")
    reject_thread, _ = draft_thread(content="No refunds, ever.", subject="Refund, reject")
    list_thread, _ = draft_thread(content="Socks ship Monday.", subject="Socks, approve")

    # The conversation page: approve with an edit, reject to a person, reply.
    admin = pages(admin_user)
    admin.goto(f"/admin/threads/thread/{approve_thread.pk}/change/")
    admin.get_by_role("link", name="Conversation").click()
    expect(admin.locator("#transcript")).to_contain_text("Can you fix it?")
    screenshot(admin, "admin-conversation")
    assert_accessible(admin, "admin-conversation")
    admin.get_by_label("Reply (edit before approving if needed)").fill(
        "Your pole ships today by DHL."
    )
    admin.get_by_role("button", name="Approve and send").click()
    expect(admin.locator(".messagelist")).to_contain_text("Approved and sent with your edit.")
    expect(admin.locator("#transcript")).to_contain_text("Your pole ships today by DHL.")

    admin.goto(f"/admin/threads/thread/{reject_thread.pk}/conversation/")
    admin.get_by_label(re.compile("^Review")).fill("We do refund within 30 days.")
    admin.get_by_label("Hand to a person").check()
    admin.get_by_role("button", name="Reject").click()
    expect(admin.locator(".messagelist")).to_contain_text("Draft rejected.")
    assert ApprovalDraft.objects.get(thread=reject_thread).next_action == "human"

    admin.get_by_label(re.compile("^Message")).fill("A supervisor here: I will take this.")
    admin.get_by_role("button", name="Send", exact=True).click()
    expect(admin.locator(".messagelist")).to_contain_text("Reply sent to the customer.")

    # The changelist actions, each reported back.
    run_admin_action(admin, "/admin/approvals/approvaldraft/", "Socks ship Monday.", "Approve")
    expect(admin.locator(".messagelist")).to_contain_text("Approved and sent 1 draft(s).")
    run_admin_action(
        admin,
        "/admin/threads/thread/",
        "Socks, approve",
        "Assign to the chosen agent",
        assignee="Alex Agent",
    )
    expect(admin.locator(".messagelist")).to_contain_text("Assigned 1 thread(s) to Alex Agent.")
    list_thread.refresh_from_db()
    assert (list_thread.responder, list_thread.assignee) == (Responder.HUMAN, agent)
    run_admin_action(admin, "/admin/threads/thread/", "Socks, approve", "Hand back to AI")
    expect(admin.locator(".messagelist")).to_contain_text("Handed 1 thread(s) back to the AI.")
    run_admin_action(admin, "/admin/escalations/escalation/", "Refund, reject", "Claim for me")
    expect(admin.locator(".messagelist")).to_contain_text("Claimed 1 escalation(s).")
    run_admin_action(
        admin, "/admin/escalations/escalation/", "Refund, reject", "Resolve and hand back to AI"
    )
    expect(admin.locator(".messagelist")).to_contain_text("Resolved 1 escalation(s)")
    reject_thread.refresh_from_db()
    assert reject_thread.responder == Responder.AI
    escalation = Escalation.objects.get(thread=reject_thread)
    assert (escalation.status, escalation.claimed_by) == ("resolved", admin_user)

    # Ten days of work on the dashboard.
    admin.goto("/admin/threads/thread/")
    admin.get_by_role("link", name="Dashboard").click()
    decided = ApprovalDraft.objects.exclude(status="pending").exclude(kind="suggestion")
    approved = decided.filter(status="approved").count()
    expect(admin.locator(".sd-totals")).to_contain_text(
        f"{100 * approved / decided.count():.0f}% of {decided.count()}"
    )
    for chart in ("messages", "escalations", "handled", "approvals", "sla", "cost", "handle"):
        assert admin.locator(f"#chart-{chart} rect").count() >= 2, chart
    admin.set_viewport_size({"width": 1366, "height": 1640})
    screenshot(admin, "admin-dashboard")
    assert_accessible(admin, "admin-dashboard")


# --- Markup is text, everywhere -------------------------------------------------------------------


def assert_markup_is_text(page: Any, *fields: str, within: str = "body") -> None:
    """The page (or ``within``) shows ``xss(field)`` of each field as text, and nothing
    injected became an element or ran (a dialog would fail the test too)."""
    assert_no_injected_script(page)
    # Playwright's CSS engine looks into the widget's (open) shadow root as well.
    assert page.locator("[onerror], img[src='x']").count() == 0, page.url
    # textContent: innerText applies CSS text-transform (the admin's "WELCOME, …"). The
    # desk's embedded JSON does not count: json_script escapes "<" and '"'.
    text = page.locator(within).first.text_content() or ""
    missing = [field for field in fields if xss_shown(field) not in text]
    assert not missing, f"{page.url} does not show {missing} as text"


def test_it_shows_markup_as_text_in_every_field_on_the_desk_the_admin_and_the_widget(
    pages: Any, ai_worker: Any, asgi_server: Any, desk_agent: Any
) -> None:
    knowledge_seed()
    world = xss_world()
    agent, thread = world["agent"], world["thread"]
    names = ("first_name", "last_name")

    desk = pages(desk_agent)
    desk.goto("/desk/")
    expect(desk.locator(f'tr[data-thread="{thread.pk}"]')).to_be_visible()
    assert_markup_is_text(desk, "subject", "customer_name", "queue", *names)
    expect(desk.locator("#f-queue option").last).to_have_text(xss("queue"))
    desk.goto(f"/desk/threads/{thread.pk}/")
    expect(desk.locator("#questions-card")).to_be_visible()
    assert_markup_is_text(
        desk,
        "subject",
        "customer_name",
        "external_id",
        "message",
        "note",
        "reply",
        "reason",
        "summary",
        "ai_suggestion",
        "queue",
        "question",
        "answered_question",
        "answer",
        "assignment_reason",
        *names,
    )
    assert "email<img/src=x" in desk.locator("#thread-meta").inner_text()
    expect(desk.locator("#thread-meta .tier")).to_have_text(thread.customer.tier)
    desk.goto("/desk/approvals/")
    expect(desk.locator("#draft-text")).to_have_value(xss("draft"))
    assert_markup_is_text(desk, "draft", within="#draft-list")

    # The supervisor, whose own name is markup too, in the admin.
    agent.is_superuser = True
    agent.save(update_fields=["is_superuser"])
    admin = pages(agent)
    admin_pages = {
        "/admin/threads/thread/": ("subject", "customer_name", "username"),
        "/admin/threads/customer/": ("customer_name", "external_id"),
        "/admin/threads/message/": ("message", "note", "reply", *names),
        "/admin/threads/assignment/": ("assignment_reason", "username"),
        "/admin/escalations/escalation/": ("subject", "username"),
        f"/admin/escalations/escalation/{world['escalation'].pk}/change/": (
            "reason",
            "summary",
            "ai_suggestion",
        ),
        "/admin/escalations/humanrequest/": ("question", "answered_question", "username"),
        "/admin/approvals/approvaldraft/": ("draft", "username"),
        f"/admin/approvals/approvaldraft/{world['rejected'].pk}/change/": ("review",),
        "/admin/escalations/queue/": ("queue",),
        "/admin/agent/knowledgearticle/": ("kb_title",),
        "/admin/auth/user/": ("username", *names),
        f"/admin/threads/thread/{thread.pk}/change/": ("message", "note", "reply"),
        f"/admin/threads/thread/{thread.pk}/conversation/": (
            "subject",
            "customer_name",
            "external_id",
            "message",
            "note",
            "reply",
            "reason",
            "question",
            "answered_question",
            "answer",
            "assignment_reason",
            *names,
        ),
        "/admin/threads/thread/dashboard/": (),
    }
    for path, fields in admin_pages.items():
        admin.goto(path)
        assert_markup_is_text(admin, *fields, "first_name")  # "Welcome, <first name>"
        if path in ("/admin/threads/customer/", f"/admin/threads/thread/{thread.pk}/conversation/"):
            assert "email<img/src=x" in (admin.locator("#content-main").text_content() or "")

    # The customer writes markup in the widget; the AI answers from an article whose
    # title and body are markup; the agent with markup names takes over.
    widget = pages()
    widget.goto("/widget/demo/")
    widget.locator(".launcher").click()
    widget.locator("#sd-input").fill(xss("widget_message") + " How do I wash wool socks?")
    widget.locator("#sd-input").press("Enter")
    expect(widget.locator(".msg.ai .text").first).to_contain_text(xss("kb_body"), timeout=30_000)
    own = Thread.objects.get(customer__name="")
    staff_post(
        asgi_server, agent, f"/api/v1/desk/threads/{own.pk}/reply/", {"content": xss("agent_reply")}
    )
    expect(widget.locator(".msg.human .text")).to_have_text(xss("agent_reply"))
    expect(widget.locator(".status-text")).to_contain_text(xss("last_name"))
    assert_markup_is_text(
        widget, "widget_message", "kb_title", "kb_body", "agent_reply", *names, within=".root"
    )


# --- Tablet width ------------------------------------------------------------------------------------


def busy_inbox(agent: Any) -> Thread:
    """A morning's inbox: handoffs in a queue with SLA clocks (one overdue, one claimed by
    a colleague), a draft to approve, a question from the AI, AI threads, an urgent one."""
    from datetime import timedelta

    from django.utils import timezone

    from escalations import services as escalation_services
    from tests.desk.helpers import question_thread
    from tests.escalations.ops_helpers import make_policy, make_queue

    make_queue("Support", policy=make_policy(first=3600), auto_assign=False)
    for subject in ("Order 1042 never arrived", "Charged twice for boots"):
        make_thread(subject=subject, customer_name="Dana Lee", message="Where is it?")
    overdue, escalation = escalated_thread(subject="Zip broke on first trip")
    late = timezone.now() - timedelta(minutes=12)
    Escalation.objects.filter(pk=escalation.pk).update(sla_due_at=late)
    Thread.objects.filter(pk=overdue.pk).update(sla_due_at=late)
    _, taken = escalated_thread(subject="Exchange for a larger size", customer_name="Sam Ortiz")
    escalation_services.escalation_claim(escalation=taken, user=agent)
    draft_thread(subject="Shipping to Canada")
    question_thread()
    urgent, _ = make_thread(subject="Tent arrived torn", customer_name="Kim Park")
    services.thread_update(thread=urgent, priority="urgent")
    thread, _ = escalated_thread(subject="Broken tent pole")
    return thread


def test_it_fits_the_desk_on_a_laptop_and_a_tablet(
    pages: Any, desk_agent: Any, other_agent: Any
) -> None:
    thread = busy_inbox(other_agent)
    desk = pages(desk_agent)
    desk.goto("/desk/")
    expect(desk.locator("#inbox-rows tr")).to_have_count(8)
    expect(desk.locator("#inbox-rows .sla-breached")).to_have_count(1)
    screenshot(desk, "inbox")
    desk.set_viewport_size(TABLET)
    assert desk.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(desk, "inbox-tablet")
    assert_accessible(desk, "inbox-tablet")
    desk.goto(f"/desk/threads/{thread.pk}/")
    expect(desk.get_by_role("button", name="Claim")).to_be_visible()
    assert desk.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(desk, "thread-tablet")
    assert_accessible(desk, "thread-tablet")
    desk.goto("/desk/approvals/")
    expect(desk.locator("#review-title")).to_have_text("Shipping to Canada")
    expect(desk.get_by_role("button", name="Approve")).to_be_in_viewport()
    assert desk.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(desk, "approvals-tablet")
