"""Bad input to the thread API (API.md "Conventions"): every request below is refused
with the documented status and error body, and none of them stores anything."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core import signals
from django.db import close_old_connections
from django.db.models import Model
from django.http import HttpResponse
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from supportdesk.api import require_object
from supportdesk.parsers import StrictJSONParser
from tests.factories import UserFactory, make_thread
from threads import services
from threads.models import Assignment, Customer, IdempotencyRecord, Message, Thread

pytestmark = pytest.mark.django_db

MAX_BODY = 64 * 1024
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
STORED_MODELS: tuple[type[Model], ...] = (
    Thread,
    Message,
    Customer,
    Assignment,
    IdempotencyRecord,
)


@dataclass(frozen=True)
class Target:
    """One endpoint that takes a JSON body, with a body it accepts."""

    name: str
    method: str
    path: str  # "{thread}" is replaced by the thread id
    caller: str  # "anon", "customer" or "staff"
    valid: dict[str, Any]
    ok_status: int
    text_field: str | None = None  # the field held to the message content limits

    def url(self, thread: Thread) -> str:
        return self.path.format(thread=thread.pk)

    def __str__(self) -> str:
        return self.name


CREATE = Target(
    "thread_create",
    "POST",
    "/api/v1/threads/",
    "anon",
    {"customer": {"name": "Ann"}, "message": "Hello"},
    201,
    text_field="message",
)
MESSAGE = Target(
    "message_create",
    "POST",
    "/api/v1/threads/{thread}/messages/",
    "customer",
    {"content": "Hello"},
    201,
    text_field="content",
)
REPLY = Target(
    "desk_reply",
    "POST",
    "/api/v1/desk/threads/{thread}/reply/",
    "staff",
    {"content": "On it"},
    201,
    text_field="content",
)
ASSIGN = Target(
    "desk_assign",
    "POST",
    "/api/v1/desk/threads/{thread}/assign/",
    "staff",
    {"responder": "human"},
    200,
)
STATUS = Target(
    "desk_status",
    "POST",
    "/api/v1/desk/threads/{thread}/status/",
    "staff",
    {"status": "resolved"},
    200,
)
PATCH = Target(
    "desk_patch", "PATCH", "/api/v1/desk/threads/{thread}/", "staff", {"priority": "high"}, 200
)

ALL_TARGETS = [CREATE, MESSAGE, REPLY, ASSIGN, STATUS, PATCH]
POST_TARGETS = [CREATE, MESSAGE, REPLY, ASSIGN, STATUS]
CONTENT_TARGETS = [CREATE, MESSAGE, REPLY]

# Every staff endpoint of the threads API, as (method, path).
STAFF_ENDPOINTS = [
    ("GET", "/api/v1/desk/threads/"),
    ("GET", "/api/v1/desk/threads/{thread}/"),
    ("PATCH", "/api/v1/desk/threads/{thread}/"),
    ("GET", "/api/v1/desk/threads/{thread}/messages/"),
    ("POST", "/api/v1/desk/threads/{thread}/reply/"),
    ("POST", "/api/v1/desk/threads/{thread}/assign/"),
    ("GET", "/api/v1/desk/threads/{thread}/assignments/"),
    ("POST", "/api/v1/desk/threads/{thread}/status/"),
]


class Api:
    """The thread under test, its callers, and a way to send raw bodies as each."""

    def __init__(self, thread: Thread, token: str, staff: Any) -> None:
        self.thread = thread
        self.token = token
        self.staff = staff
        self.clients = {"anon": APIClient(), "customer": APIClient(), "staff": APIClient()}
        self.clients["customer"].credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        staff_token, _ = Token.objects.get_or_create(user=staff)
        self.clients["staff"].credentials(HTTP_AUTHORIZATION=f"Token {staff_token.key}")

    def send(
        self,
        target: Target,
        body: bytes | str | Any,
        *,
        content_type: str = "application/json",
        **extra: Any,
    ) -> HttpResponse:
        """Send ``body`` as is when bytes, else as its JSON text."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        client = self.clients[target.caller]
        response: HttpResponse = client.generic(
            target.method, target.url(self.thread), data=raw, content_type=content_type, **extra
        )
        return response


@pytest.fixture
def api(agent: Any) -> Api:
    thread, token = make_thread(subject="Where is my order?", message="Hi, anyone there?")
    return Api(thread, token, agent)


def snapshot(thread: Thread | None = None) -> dict[str, Any]:
    """Row counts of everything a request could store, and the thread's own state."""
    state: dict[str, Any] = {model.__name__: model.objects.count() for model in STORED_MODELS}
    if thread is not None:
        fresh = Thread.objects.get(pk=thread.pk)
        state["thread"] = {
            name: getattr(fresh, name)
            for name in (
                "status",
                "responder",
                "assignee_id",
                "ai_mode",
                "priority",
                "subject",
                "last_seq",
                "updated_at",
            )
        }
    return state


def assert_error(
    response: HttpResponse, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with the error body of API.md; returns its "error"."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and SNAKE_CASE.match(error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    if "fields" in error:
        assert isinstance(error["fields"], dict) and error["fields"], error
        for name, messages in error["fields"].items():
            assert isinstance(name, str)
            assert isinstance(messages, list) and messages
            assert all(isinstance(message, str) for message in messages)
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        # Nested fields are dotted ("customer.email"); errors about a whole nested object
        # may sit under one of its keys ("customer.non_field_errors").
        names = error.get("fields", {})
        assert any(name == field or name.startswith(f"{field}.") for name in names), error
    return dict(error)


def with_text(target: Target, value: Any) -> dict[str, Any]:
    """The target's valid body with its content field set to ``value``."""
    assert target.text_field is not None
    return {**target.valid, target.text_field: value}


ids = str


# --- Bodies that are not a JSON object ----------------------------------------------


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
def test_it_rejects_an_empty_body(api: Api, target: Target) -> None:
    before = snapshot(api.thread)
    response = api.send(target, b"")
    assert_error(response, 400, "invalid_json")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"null", b"1", b"true", b'[{"content": "Hi"}]'])
def test_it_rejects_a_body_that_is_not_an_object(api: Api, target: Target, raw: bytes) -> None:
    before = snapshot(api.thread)
    response = api.send(target, raw)
    assert_error(response, 400)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{",
        b'{"content": "Hi",}',
        b"{'content': 'Hi'}",
        b'{"content": "\xff\xfe"}',  # not UTF-8
        b'{"content": "a\x00b"}',  # a raw control character inside a string
        b"\x00",
        b'{"content": "Hi"} trailing',
    ],
)
def test_it_rejects_a_body_that_is_not_json(api: Api, target: Target, raw: bytes) -> None:
    before = snapshot(api.thread)
    response = api.send(target, raw)
    assert_error(response, 400, "invalid_json")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_it_rejects_nan_and_infinity(api: Api, target: Target, constant: bytes) -> None:
    field = (target.text_field or next(iter(target.valid))).encode()
    before = snapshot(api.thread)
    response = api.send(target, b'{"' + field + b'": ' + constant + b"}")
    assert_error(response, 400, "invalid_json")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
def test_it_rejects_deeply_nested_json(api: Api, target: Target) -> None:
    before = snapshot(api.thread)
    response = api.send(target, b"[" * 30_000 + b"]" * 30_000)
    assert response.status_code in (400, 413), response.content
    assert_error(response, response.status_code)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "",
    ],
)
def test_it_refuses_a_body_that_is_not_declared_as_json(
    api: Api, target: Target, content_type: str
) -> None:
    before = snapshot(api.thread)
    response = api.send(target, target.valid, content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")
    assert snapshot(api.thread) == before


# --- Body size ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ALL_TARGETS, ids=ids)
def test_it_refuses_a_body_over_64_kib(api: Api, target: Target) -> None:
    raw = json.dumps({**target.valid, "padding": "x" * MAX_BODY}).encode()
    before = snapshot(api.thread)
    response = api.send(target, raw)
    assert_error(response, 413, "request_too_large")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
def test_it_reads_a_body_of_exactly_64_kib(api: Api, target: Target) -> None:
    body = with_text(target, "")
    overhead = len(json.dumps(body).encode())
    body = with_text(target, "y" * (MAX_BODY - overhead))
    raw = json.dumps(body).encode()
    assert len(raw) == MAX_BODY
    response = api.send(target, raw)
    # Read and validated: too long for a message, but not too large for the server.
    assert_error(response, 400, "content_too_long", field=target.text_field)


def _asgi_post(
    path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, Any]]:
    """POST ``chunks`` as a streamed body without Content-Length through the ASGI app."""
    from supportdesk.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 12345),
        "server": ("testserver", 80),
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        # The client stays connected; Django cancels this wait once it has answered.
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # As Django's own test clients do: keep the test's connection (and transaction) open.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        async_to_sync(application)(scope, receive, send)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), json.loads(body)


def test_it_refuses_a_streamed_body_over_64_kib_without_content_length(api: Api) -> None:
    raw = json.dumps({"customer": {"name": "Ann"}, "subject": "x" * MAX_BODY}).encode()
    chunks = [raw[index : index + 8192] for index in range(0, len(raw), 8192)]
    before = snapshot(api.thread)
    status, body = _asgi_post("/api/v1/threads/", chunks, [(b"content-type", b"application/json")])
    assert status == 413, body
    assert body["error"]["code"] == "request_too_large"
    assert snapshot(api.thread) == before


def test_it_reads_a_streamed_body_without_content_length(api: Api) -> None:
    raw = json.dumps({"customer": {"name": "Ann"}, "message": "Streamed hello"}).encode()
    status, body = _asgi_post(
        "/api/v1/threads/", [raw[:10], raw[10:]], [(b"content-type", b"application/json")]
    )
    assert status == 201, body
    message = Message.objects.get(thread_id=body["thread"]["id"])
    assert message.content == "Streamed hello"


# --- Message content ----------------------------------------------------------------


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
@pytest.mark.parametrize("content", ["", " ", "   \n\t\r  ", "\u00a0\u2003"])
def test_it_rejects_blank_content(api: Api, target: Target, content: str) -> None:
    before = snapshot(api.thread)
    response = api.send(target, with_text(target, content))
    assert_error(response, 400, "content_blank", field=target.text_field)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
def test_it_rejects_content_over_10000_characters(api: Api, target: Target) -> None:
    before = snapshot(api.thread)
    response = api.send(target, with_text(target, "é" * 10_001))
    assert_error(response, 400, "content_too_long", field=target.text_field)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
def test_it_accepts_content_of_exactly_10000_characters(api: Api, target: Target) -> None:
    content = "é" * 9_999 + "!"
    response = api.send(target, with_text(target, f"  {content}\n"))
    assert response.status_code == target.ok_status, response.content
    assert Message.objects.filter(content=content).count() == 1


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
@pytest.mark.parametrize(
    "char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1b", "\x1f", "\x7f"]
)
def test_it_rejects_control_characters(api: Api, target: Target, char: str) -> None:
    before = snapshot(api.thread)
    response = api.send(target, with_text(target, f"Hello{char}there"))
    assert_error(response, 400, "invalid_characters", field=target.text_field)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
def test_it_accepts_newlines_carriage_returns_and_tabs(api: Api, target: Target) -> None:
    content = "Line one\r\nline two\n\tindented"
    response = api.send(target, with_text(target, content))
    assert response.status_code == target.ok_status, response.content
    assert Message.objects.filter(content=content).count() == 1


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"a\\udc00b", b"\\u0000"])
def test_it_rejects_lone_surrogates_and_nul_escapes(
    api: Api, target: Target, escape: bytes
) -> None:
    assert target.text_field is not None
    raw = json.dumps(target.valid).encode()[:-1] + b', "' + target.text_field.encode() + b'": "'
    raw += escape + b'"}'
    before = snapshot(api.thread)
    response = api.send(target, raw)
    assert_error(response, 400, "invalid_characters", field=target.text_field)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(
    ("target", "field"),
    [
        (CREATE, "subject"),
        (CREATE, "customer"),
        (ASSIGN, "responder"),
        (ASSIGN, "reason"),
        (STATUS, "status"),
        (PATCH, "priority"),
        (PATCH, "ai_mode"),
        (PATCH, "subject"),
    ],
    ids=lambda value: str(value),
)
def test_it_rejects_a_lone_surrogate_in_any_string_field(
    api: Api, target: Target, field: str
) -> None:
    value = b'{"name": "\\ud800"}' if field == "customer" else b'"\\ud800"'
    body = json.dumps({k: v for k, v in target.valid.items() if k != field}).encode()
    raw = (
        body[:-1]
        + (b", " if len(body) > 2 else b"")
        + b'"'
        + field.encode()
        + b'": '
        + value
        + b"}"
    )
    before = snapshot(api.thread)
    response = api.send(target, raw)
    assert_error(response, 400)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(
    "customer",
    [
        {"name": "Ann\x00"},
        {"email": "ann\x00@example.com"},
        {"email": "ann\x01@example.com"},
        {"external_id": "abc\x1b"},
    ],
)
def test_it_rejects_control_characters_in_the_customer(api: Api, customer: dict[str, str]) -> None:
    before = snapshot(api.thread)
    response = api.send(CREATE, {"customer": customer})
    assert_error(response, 400, "invalid_characters")
    assert snapshot(api.thread) == before


# --- Wrong types --------------------------------------------------------------------


@pytest.mark.parametrize("target", CONTENT_TARGETS, ids=ids)
@pytest.mark.parametrize("value", [1, 1.5, [], ["Hello"], {}, {"text": "Hello"}, True, False, None])
def test_it_rejects_content_that_is_not_a_string(api: Api, target: Target, value: Any) -> None:
    before = snapshot(api.thread)
    response = api.send(target, with_text(target, value))
    assert_error(response, 400, field=target.text_field)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(
    ("target", "body", "field"),
    [
        (MESSAGE, {}, "content"),
        (REPLY, {"internal": True}, "content"),
        (ASSIGN, {}, "responder"),
        (ASSIGN, {"assignee": 1}, "responder"),
        (STATUS, {}, "status"),
        (CREATE, {"customer": "Ann"}, "customer"),
        (CREATE, {"customer": ["Ann"]}, "customer"),
        (CREATE, {"customer": {"name": 1}}, "customer.name"),
        (CREATE, {"customer": {"email": "not-an-email"}}, "customer.email"),
        (CREATE, {"customer": {"email": 5}}, "customer.email"),
        (CREATE, {"customer": None}, "customer"),
        (CREATE, {"subject": 1}, "subject"),
        (CREATE, {"subject": "s" * 201}, "subject"),
        (REPLY, {"content": "Hi", "internal": "yes"}, "internal"),
        (REPLY, {"content": "Hi", "internal": 1}, "internal"),
        (REPLY, {"content": "Hi", "internal": "true"}, "internal"),
        (REPLY, {"content": "Hi", "internal": None}, "internal"),
        (ASSIGN, {"responder": 1}, "responder"),
        (ASSIGN, {"responder": True}, "responder"),
        (ASSIGN, {"responder": "robot"}, "responder"),
        (ASSIGN, {"responder": "HUMAN"}, "responder"),
        (ASSIGN, {"responder": ["human"]}, "responder"),
        (ASSIGN, {"responder": None}, "responder"),
        (ASSIGN, {"responder": "human", "assignee": "abc"}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": "1"}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": True}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": 1.0}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": 1.5}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": 0}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": -1}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": 10**30}, "assignee"),
        (ASSIGN, {"responder": "human", "assignee": [1]}, "assignee"),
        (ASSIGN, {"responder": "human", "reason": 1}, "reason"),
        (ASSIGN, {"responder": "human", "reason": "r" * 501}, "reason"),
        (STATUS, {"status": "waiting_on_human"}, "status"),
        (STATUS, {"status": "bogus"}, "status"),
        (STATUS, {"status": 1}, "status"),
        (STATUS, {"status": None}, "status"),
        (PATCH, {"priority": "critical"}, "priority"),
        (PATCH, {"priority": 1}, "priority"),
        (PATCH, {"ai_mode": "manual"}, "ai_mode"),
        (PATCH, {"ai_mode": True}, "ai_mode"),
        (PATCH, {"subject": ["x"]}, "subject"),
        (PATCH, {"subject": "s" * 201}, "subject"),
        (PATCH, {"subject": None}, "subject"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_it_rejects_a_field_of_the_wrong_type_or_value(
    api: Api, target: Target, body: dict[str, Any], field: str
) -> None:
    before = snapshot(api.thread)
    response = api.send(target, body)
    assert_error(response, 400, field=field)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("big", [b"1e400", b"-1e400", b"1" * 5000])
def test_it_rejects_numbers_that_overflow(api: Api, big: bytes) -> None:
    before = snapshot(api.thread)
    response = api.send(ASSIGN, b'{"responder": "human", "assignee": ' + big + b"}")
    assert_error(response, 400)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("assignee", [2**31, 2**62, 999_999])
def test_it_rejects_an_unknown_assignee(api: Api, assignee: int) -> None:
    before = snapshot(api.thread)
    response = api.send(ASSIGN, {"responder": "human", "assignee": assignee})
    assert_error(response, 400, "invalid_assignee")
    assert snapshot(api.thread) == before


def test_it_rejects_an_assignee_who_is_not_staff(api: Api) -> None:
    customer_user = UserFactory(username="not-staff", is_staff=False)
    before = snapshot(api.thread)
    response = api.send(ASSIGN, {"responder": "human", "assignee": customer_user.pk})
    assert_error(response, 400, "invalid_assignee")
    assert snapshot(api.thread) == before


def test_it_rejects_an_assignee_when_handing_back_to_the_ai(api: Api) -> None:
    before = snapshot(api.thread)
    response = api.send(ASSIGN, {"responder": "ai", "assignee": api.staff.pk})
    assert_error(response, 400, "invalid_assignee")
    assert snapshot(api.thread) == before


# --- Unknown threads and customer credentials ----------------------------------------

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
MALFORMED_IDS = ["not-a-uuid", "123", "00000000-0000-4000-8000-00000000000", "%00", "..%2f"]


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "messages/"), ("POST", "messages/")]
)
def test_it_answers_404_for_an_unknown_thread(api: Api, method: str, suffix: str) -> None:
    client = api.clients["customer"]
    before = snapshot()
    response = client.generic(
        method,
        f"/api/v1/threads/{UNKNOWN_ID}/{suffix}",
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 404, "not_found")
    assert snapshot() == before


@pytest.mark.parametrize("thread_id", MALFORMED_IDS)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/threads/{id}/",
        "/api/v1/threads/{id}/messages/",
        "/api/v1/desk/threads/{id}/",
        "/api/v1/desk/threads/{id}/reply/",
        "/api/v1/desk/threads/{id}/status/",
    ],
)
def test_it_answers_404_for_a_malformed_thread_id(api: Api, path: str, thread_id: str) -> None:
    client = api.clients["staff" if "/desk/" in path else "customer"]
    before = snapshot()
    response = client.post(path.format(id=thread_id), {"content": "Hi"}, format="json")
    assert_error(response, 404, "not_found")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "messages/"), ("POST", "messages/")]
)
def test_it_answers_a_wrong_token_exactly_like_an_unknown_thread(
    api: Api, method: str, suffix: str
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-the-token")
    before = snapshot(api.thread)
    wrong = client.generic(
        method,
        f"/api/v1/threads/{api.thread.pk}/{suffix}",
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    unknown = client.generic(
        method,
        f"/api/v1/threads/{UNKNOWN_ID}/{suffix}",
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(wrong, 404, "not_found")
    assert wrong.content == unknown.content
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "messages/"), ("POST", "messages/")]
)
def test_it_answers_404_to_another_threads_token(api: Api, method: str, suffix: str) -> None:
    _, other_token = make_thread(subject="Someone else")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")
    before = snapshot(api.thread)
    response = client.generic(
        method,
        f"/api/v1/threads/{api.thread.pk}/{suffix}",
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 404, "not_found")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "messages/"), ("POST", "messages/")]
)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Token abc", "Bearer " + "x" * 600],
)
def test_it_answers_401_without_a_usable_token(
    api: Api, method: str, suffix: str, authorization: str | None
) -> None:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    before = snapshot(api.thread)
    response = client.generic(
        method,
        f"/api/v1/threads/{api.thread.pk}/{suffix}",
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(api.thread) == before


# --- Idempotency-Key ------------------------------------------------------------------


@pytest.mark.parametrize("target", POST_TARGETS, ids=ids)
def test_it_replays_the_first_response_for_the_same_key_and_body(api: Api, target: Target) -> None:
    first = api.send(target, target.valid, HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == target.ok_status, first.content
    after_first = snapshot()
    second = api.send(target, target.valid, HTTP_IDEMPOTENCY_KEY="key-1")
    assert second.status_code == first.status_code
    assert second.json() == first.json()
    assert snapshot() == after_first


@pytest.mark.parametrize("target", POST_TARGETS, ids=ids)
def test_it_replays_for_the_same_json_value_written_differently(api: Api, target: Target) -> None:
    first = api.send(target, json.dumps(target.valid).encode(), HTTP_IDEMPOTENCY_KEY="key-2")
    assert first.status_code == target.ok_status, first.content
    after_first = snapshot()
    respelled = json.dumps(target.valid, indent=4, sort_keys=True, ensure_ascii=True).encode()
    second = api.send(target, b"\n  " + respelled + b"\n", HTTP_IDEMPOTENCY_KEY="key-2")
    assert second.status_code == first.status_code
    assert second.json() == first.json()
    assert snapshot() == after_first


MISMATCHED_BODIES = {
    "thread_create": {"customer": {"name": "Bob"}, "message": "Hello"},
    "message_create": {"content": "Something else"},
    "desk_reply": {"content": "Something else"},
    "desk_assign": {"responder": "ai"},
    "desk_status": {"status": "closed"},
}


@pytest.mark.parametrize("target", POST_TARGETS, ids=ids)
def test_it_refuses_a_key_reused_with_another_body(api: Api, target: Target) -> None:
    first = api.send(target, target.valid, HTTP_IDEMPOTENCY_KEY="key-3")
    assert first.status_code == target.ok_status, first.content
    after_first = snapshot(api.thread)
    response = api.send(target, MISMATCHED_BODIES[target.name], HTTP_IDEMPOTENCY_KEY="key-3")
    assert_error(response, 422, "idempotency_mismatch")
    assert snapshot(api.thread) == after_first


@pytest.mark.parametrize("target", POST_TARGETS, ids=ids)
@pytest.mark.parametrize(
    "key",
    ["", " ", "k" * 256, "clé", "ключ", "key\x00", "key\x01", "key\t1", "key 1", "key\x7f"],
    ids=[
        "empty",
        "space",
        "256-chars",
        "latin-1",
        "cyrillic",
        "nul",
        "soh",
        "tab",
        "inner-space",
        "del",
    ],
)
def test_it_refuses_an_invalid_idempotency_key(api: Api, target: Target, key: str) -> None:
    before = snapshot(api.thread)
    response = api.send(target, target.valid, HTTP_IDEMPOTENCY_KEY=key)
    assert_error(response, 400, field="Idempotency-Key")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize("target", POST_TARGETS, ids=ids)
def test_it_accepts_a_key_of_255_visible_characters(api: Api, target: Target) -> None:
    key = "".join(chr(0x21 + index % 94) for index in range(255))
    response = api.send(target, target.valid, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == target.ok_status, response.content
    assert IdempotencyRecord.objects.filter(key=key).count() == 1


def test_it_does_not_replay_a_key_to_another_thread(api: Api) -> None:
    other, other_token = make_thread(subject="Someone else")
    first = api.send(MESSAGE, {"content": "Hello"}, HTTP_IDEMPOTENCY_KEY="shared")
    assert first.status_code == 201
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")
    second = client.post(
        f"/api/v1/threads/{other.pk}/messages/",
        {"content": "Hello"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="shared",
    )
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["thread"] == str(other.pk)


def test_it_stores_no_idempotency_record_for_a_refused_request(api: Api) -> None:
    before = snapshot(api.thread)
    response = api.send(MESSAGE, {"content": ""}, HTTP_IDEMPOTENCY_KEY="key-4")
    assert_error(response, 400, "content_blank")
    assert snapshot(api.thread) == before
    retry = api.send(MESSAGE, {"content": "Now with text"}, HTTP_IDEMPOTENCY_KEY="key-4")
    assert retry.status_code == 201, retry.content


# --- Closed threads -------------------------------------------------------------------


@pytest.mark.parametrize("target", [MESSAGE, REPLY], ids=ids)
def test_it_refuses_a_message_on_a_closed_thread(api: Api, target: Target) -> None:
    services.thread_set_status(thread=api.thread, status="closed")
    before = snapshot(api.thread)
    response = api.send(target, target.valid)
    assert_error(response, 409, "thread_closed")
    assert snapshot(api.thread) == before


# --- Query parameters -----------------------------------------------------------------


@pytest.mark.parametrize("caller", ["customer", "staff"])
@pytest.mark.parametrize(
    "query",
    [
        "after=-1",
        "after=abc",
        "after=1.5",
        "after=%201",
        "after=%D9%A3",  # an Arabic-Indic digit three
        "after=99999999999999999999",
        pytest.param("after=" + "9" * 5000, id="after=5000-digits"),
        "limit=0",
        "limit=201",
        "limit=-5",
        "limit=ten",
        "limit=%00",
        pytest.param("limit=" + "1" * 5000, id="limit=5000-digits"),
    ],
)
def test_it_rejects_bad_message_list_parameters(api: Api, caller: str, query: str) -> None:
    prefix = "/api/v1/desk/threads" if caller == "staff" else "/api/v1/threads"
    response = api.clients[caller].get(f"{prefix}/{api.thread.pk}/messages/?{query}")
    name = query.partition("=")[0]
    assert_error(response, 400, field=name)


@pytest.mark.parametrize("query", ["after=0&limit=1", "after=0&limit=200", "limit=", "after="])
def test_it_accepts_message_list_parameters_at_their_bounds(api: Api, query: str) -> None:
    response = api.clients["customer"].get(f"/api/v1/threads/{api.thread.pk}/messages/?{query}")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "status=OPEN",
        "responder=robot",
        "priority=critical",
        "ai_mode=manual",
        "assignee=xyz",
        "assignee=-1",
        "assignee=1.5",
        "assignee=99999999999999999999",
        pytest.param("assignee=" + "9" * 21, id="assignee=21-digits"),
        "q=%00",
        "q=abc%00def",
        pytest.param("q=" + "q" * 201, id="q=201-chars"),
        "limit=0",
        "limit=201",
        "limit=abc",
        pytest.param("limit=" + "1" * 5000, id="limit=5000-digits"),
    ],
)
def test_it_rejects_bad_desk_list_filters(api: Api, query: str) -> None:
    response = api.clients["staff"].get(f"/api/v1/desk/threads/?{query}")
    assert_error(response, 400, field=query.partition("=")[0])


@pytest.mark.parametrize(
    "query", ["assignee=me", "assignee=none", "assignee=1", "q=order", "q=%20", "limit=200"]
)
def test_it_accepts_good_desk_list_filters(api: Api, query: str) -> None:
    response = api.clients["staff"].get(f"/api/v1/desk/threads/?{query}")
    assert response.status_code == 200, response.content


def test_it_rejects_a_tampered_desk_list_cursor(api: Api) -> None:
    response = api.clients["staff"].get("/api/v1/desk/threads/?cursor=not-a-cursor")
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


# --- Staff credentials ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), STAFF_ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Token not-a-real-key", "Token", "Bearer abc"])
def test_it_answers_401_to_staff_endpoints_without_credentials(
    api: Api, method: str, path: str, authorization: str | None
) -> None:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    before = snapshot(api.thread)
    response = client.generic(
        method,
        path.format(thread=api.thread.pk),
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Token")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(("method", "path"), STAFF_ENDPOINTS)
def test_it_answers_403_to_a_user_who_is_not_staff(api: Api, method: str, path: str) -> None:
    user = UserFactory(username="customer-user", is_staff=False)
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    before = snapshot(api.thread)
    response = client.generic(
        method,
        path.format(thread=api.thread.pk),
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 403, "permission_denied")
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(("method", "path"), STAFF_ENDPOINTS)
def test_it_answers_401_to_an_inactive_staff_user(api: Api, method: str, path: str) -> None:
    user = UserFactory(username="gone", is_active=False)
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    before = snapshot(api.thread)
    response = client.generic(
        method,
        path.format(thread=api.thread.pk),
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 401)
    assert snapshot(api.thread) == before


@pytest.mark.parametrize(("method", "path"), STAFF_ENDPOINTS[1:])
def test_it_answers_404_to_staff_for_an_unknown_thread(api: Api, method: str, path: str) -> None:
    before = snapshot()
    response = api.clients["staff"].generic(
        method,
        path.format(thread=UNKNOWN_ID),
        data=b'{"content": "Hi"}',
        content_type="application/json",
    )
    assert_error(response, 404, "not_found")
    assert snapshot() == before


def test_it_keeps_the_customer_token_out_of_staff_endpoints(api: Api) -> None:
    response = api.clients["customer"].get("/api/v1/desk/threads/")
    assert_error(response, 401)


# --- Optional bodies ------------------------------------------------------------------


def _drf_request(raw: bytes) -> Request:
    factory = APIRequestFactory()
    django_request = factory.generic(
        "POST", "/api/v1/anything/", data=raw, content_type="application/json"
    )
    return Request(django_request, parsers=[StrictJSONParser()])


def test_it_reads_an_empty_optional_body_as_an_empty_object() -> None:
    assert require_object(_drf_request(b""), allow_empty=True) == {}


@pytest.mark.parametrize("raw", [b"null", b"[]", b'"x"'])
def test_it_refuses_an_optional_body_that_is_not_an_object(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        require_object(_drf_request(raw), allow_empty=True)
