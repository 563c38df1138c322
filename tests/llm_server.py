"""A scripted, OpenAI-compatible Chat Completions server for tests and benchmarks.

The point is to exercise the real ``openai`` SDK path (``openai.OpenAI(base_url=...)`` and
``client.chat.completions.create(...)``) against a server whose answers a test decides::

    with ScriptedLLMServer() as server:
        server.push(tool_call("search_kb", {"query": "refund"}))
        server.push(final("Refunds take 5 days.", confidence=0.8))
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        ...
        assert server.last_request().messages[-1]["role"] == "tool"

Scripted replies are consumed in FIFO order, one per request. Entries pushed with a
``model=`` or ``when=`` filter are *routed*: a request takes the oldest routed entry that
matches it before it takes the oldest unrouted one, so a classifier call never eats the
main model's reply. With the queue empty the ``mode`` decides: ``"echo"`` answers
``final("You said: <last user message>")``, ``"error"`` answers 500.

``faults=Faults(rate=0.2, seed=7)`` makes that share of chat requests fail at random
(429, 500, a stall past the client's timeout, a stream cut mid-way), drawn from a seeded
generator before the script is consulted: a failed request consumes no scripted reply,
so the client's retry gets it. ``server.faulted`` counts them by kind.

Also runnable as a process (benchmarks, kill -9 tests); the base URL is the first line on
stdout::

    python tests/llm_server.py --port 0 --delay 1.0 --mode echo
    python tests/llm_server.py --mode echo --fault-rate 0.2 --fault-seed 7

Plain module: no Django, no third-party imports, no outbound network. It only listens
(on loopback by default), caps request bodies at 1 MiB and keeps a bounded record.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeAlias, cast

__all__ = [
    "FAULT_KINDS",
    "MAX_BODY_BYTES",
    "CutStreamReply",
    "DelayReply",
    "ErrorReply",
    "Faults",
    "InvalidJSONReply",
    "RecordedRequest",
    "Reply",
    "ScriptedLLMServer",
    "TextReply",
    "ToolCall",
    "ToolCallsReply",
    "cut_stream",
    "delay",
    "error",
    "estimate_tokens",
    "final",
    "final_json",
    "invalid_json",
    "openai_error_body",
    "prompt_tokens_for",
    "text",
    "tool_call",
    "tool_calls",
]

MAX_BODY_BYTES = 1024 * 1024
"""Request bodies above this size are refused with 413 (and the connection closed)."""

_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")
_MAX_DISCARD_BYTES = 16 * MAX_BODY_BYTES
_ARGUMENT_PIECE = 12  # characters of tool-call arguments per streamed delta
_FINGERPRINT = "fp_scripted"

Usage: TypeAlias = tuple[int, int]
"""``(prompt_tokens, completion_tokens)`` overriding the estimated counts."""


# --- replies --------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReplyBase:
    usage: Usage | None = field(default=None, kw_only=True)

    def with_usage(self, prompt_tokens: int, completion_tokens: int) -> Self:
        """A copy of this reply reporting these token counts."""
        return dataclasses.replace(self, usage=(prompt_tokens, completion_tokens))


@dataclass(frozen=True)
class TextReply(_ReplyBase):
    """An assistant message with content; finish_reason ``"stop"``."""

    content: str


@dataclass(frozen=True)
class ToolCall:
    """One function call inside a :class:`ToolCallsReply` (not a reply by itself)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments  # deliberately raw (e.g. malformed arguments)
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class ToolCallsReply(_ReplyBase):
    """An assistant message with ``tool_calls``; content null unless given."""

    calls: tuple[ToolCall, ...]
    content: str | None = None


@dataclass(frozen=True)
class ErrorReply(_ReplyBase):
    """An HTTP error. ``body`` dict → JSON; str/bytes → sent as is (text/plain)."""

    status: int
    body: dict[str, Any] | str | bytes | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class DelayReply(_ReplyBase):
    """Sleep ``seconds``, then answer ``then`` (or the default reply when None)."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class CutStreamReply(_ReplyBase):
    """Send ``after_chunks`` SSE events of ``reply`` (default: the echo reply), then drop
    the connection mid-body. A non-streaming request gets half of its JSON body."""

    after_chunks: int = 2
    reply: TextReply | ToolCallsReply | None = None


@dataclass(frozen=True)
class InvalidJSONReply(_ReplyBase):
    """A 200 declared as JSON (or one SSE event) whose body is not JSON."""

    body: str = '{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind'


Reply: TypeAlias = (
    TextReply | ToolCallsReply | ErrorReply | DelayReply | CutStreamReply | InvalidJSONReply
)
_Terminal: TypeAlias = TextReply | ToolCallsReply | ErrorReply | CutStreamReply | InvalidJSONReply


def text(content: str, *, usage: Usage | None = None) -> TextReply:
    return TextReply(content, usage=usage)


def final_json(reply: str, confidence: float = 0.9, requires_human: bool = False) -> str:
    """``{"confidence": ..., "requires_human": ..., "reply": ...}`` in exactly that order."""
    return json.dumps(
        {"confidence": confidence, "requires_human": requires_human, "reply": reply},
        ensure_ascii=False,
    )


def final(
    reply: str,
    confidence: float = 0.9,
    requires_human: bool = False,
    *,
    usage: Usage | None = None,
) -> TextReply:
    """The desk's final-answer JSON as assistant content."""
    return TextReply(final_json(reply, confidence, requires_human), usage=usage)


def tool_call(
    name: str,
    arguments: dict[str, Any] | str | None = None,
    id: str | None = None,
    *,
    usage: Usage | None = None,
) -> ToolCallsReply:
    """One tool call (``arguments`` a dict, or a raw string to send malformed JSON)."""
    call = ToolCall(name, {} if arguments is None else arguments, id)
    return ToolCallsReply((call,), usage=usage)


def tool_calls(
    calls: Iterable[ToolCallsReply | ToolCall | tuple[str, dict[str, Any]]],
    content: str | None = None,
    *,
    usage: Usage | None = None,
) -> ToolCallsReply:
    """Several tool calls in one message: ``tool_calls([tool_call(...), tool_call(...)])``
    (``ToolCall`` objects and ``(name, arguments)`` pairs are accepted too)."""
    flat: list[ToolCall] = []
    for item in calls:
        if isinstance(item, ToolCallsReply):
            flat.extend(item.calls)
        elif isinstance(item, ToolCall):
            flat.append(item)
        else:
            name, arguments = item
            flat.append(ToolCall(name, arguments))
    if not flat:
        raise ValueError("tool_calls() needs at least one call")
    return ToolCallsReply(tuple(flat), content, usage=usage)


_ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    413: ("Request body too large.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def openai_error_body(
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as the OpenAI API sends it."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error(
    status: int,
    body: dict[str, Any] | str | bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    message: str | None = None,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    usage: Usage | None = None,
) -> ErrorReply:
    """An HTTP error; without ``body``, an OpenAI-style error body for ``status``
    (``message``/``type``/``param``/``code`` override its fields)."""
    if body is None:
        default_message, default_type, default_code = _ERROR_DEFAULTS.get(
            status,
            ("Error.", "server_error" if status >= 500 else "invalid_request_error", None),
        )
        body = openai_error_body(
            message or default_message, type or default_type, param, code or default_code
        )
    return ErrorReply(status, body, dict(headers or {}), usage=usage)


def delay(seconds: float, then: Reply | str | None = None) -> DelayReply:
    """Sleep before answering ``then`` (a reply, a str for ``text()``, None: default)."""
    return DelayReply(seconds, text(then) if isinstance(then, str) else then)


def cut_stream(
    after_chunks: int = 2, reply: TextReply | ToolCallsReply | None = None
) -> CutStreamReply:
    if after_chunks < 0:
        raise ValueError("after_chunks must be >= 0")
    return CutStreamReply(after_chunks, reply)


def invalid_json(body: str | None = None) -> InvalidJSONReply:
    return InvalidJSONReply() if body is None else InvalidJSONReply(body)


# --- random faults --------------------------------------------------------------------

FAULT_KINDS = ("429", "500", "timeout", "cut")


@dataclass(frozen=True)
class Faults:
    """Fail ``rate`` of the chat requests at random, with a seeded generator.

    ``kinds`` are drawn uniformly: ``"429"`` and ``"500"`` (OpenAI error bodies),
    ``"timeout"`` (the answer comes ``stall`` seconds late; set the client's timeout below
    it) and ``"cut"`` (the reply the request would have got, streamed for 1 to
    ``max_cut_chunks`` events, then the connection dropped; half a body when not
    streaming).
    """

    rate: float
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    stall: float = 5.0
    max_cut_chunks: int = 12

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be some of {FAULT_KINDS}, not {self.kinds!r}")


# --- token estimates ------------------------------------------------------------------


def estimate_tokens(value: str) -> int:
    """About four characters a token: ``ceil(len(value) / 4)``."""
    return math.ceil(len(value) / 4)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def prompt_tokens_for(body: dict[str, Any]) -> int:
    """Estimated prompt tokens: all message contents plus tool-call names and arguments."""
    chars = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        chars += len(_content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                chars += len(str(function.get("name", ""))) + len(
                    str(function.get("arguments", ""))
                )
    return math.ceil(chars / 4)


def _completion_tokens(reply: TextReply | ToolCallsReply) -> int:
    if isinstance(reply, TextReply):
        return estimate_tokens(reply.content)
    chars = len(reply.content or "")
    for call in reply.calls:
        chars += len(call.name) + len(call.arguments_json())
    return math.ceil(chars / 4)


# --- recording ------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One received request. Indexing (``request["model"]``), ``.get()`` and ``in`` read
    the JSON body; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float
    raw: bytes | None = None  # kept only when the body was not a JSON object
    reply: Reply | None = None  # the scripted/default reply it got, once chosen
    fault: str | None = None  # the random fault it got (one of FAULT_KINDS), if any
    client_port: int = 0  # the client's side of the TCP connection it came over

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def __contains__(self, key: object) -> bool:
        return key in self.body

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def response_format(self) -> dict[str, Any] | None:
        value = self.body.get("response_format")
        return value if isinstance(value, dict) else None

    @property
    def response_format_type(self) -> str | None:
        value = self.response_format
        return value.get("type") if value is not None else None

    @property
    def prompt_tokens(self) -> int:
        return prompt_tokens_for(self.body)

    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""


@dataclass
class _Entry:
    reply: Reply
    model: str | None
    when: Callable[[RecordedRequest], bool] | None

    @property
    def routed(self) -> bool:
        return self.model is not None or self.when is not None

    def matches(self, request: RecordedRequest) -> bool:
        if self.model is not None and request.model != self.model:
            return False
        return self.when is None or bool(self.when(request))


# --- the server -----------------------------------------------------------------------


class ScriptedLLMServer:
    """An OpenAI-compatible Chat Completions server answering from a script.

    ``mode``: ``"echo"`` or ``"error"`` when no scripted reply matches (or pass
    ``default=callable(request) -> Reply``). ``delay``: seconds slept before every chat
    request is answered. ``chunk_delay``: seconds between streamed events. ``api_key``:
    when set, requests without ``Authorization: Bearer <api_key>`` get 401. The flags
    ``reject_json_schema`` / ``reject_response_format`` make such requests fail with 400
    (param ``response_format``) without consuming a scripted reply. ``faults``: random
    failures (see :class:`Faults`). Attributes may be changed while the server runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "echo",
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        default: Callable[[RecordedRequest], Reply] | None = None,
        api_key: str | None = None,
        reject_json_schema: bool = False,
        reject_response_format: bool = False,
        max_recorded: int | None = 10_000,
        models: Iterable[str] = ("gpt-test", "classifier-mini"),
        faults: Faults | None = None,
    ) -> None:
        if mode not in ("echo", "error"):
            raise ValueError(f"mode must be 'echo' or 'error', not {mode!r}")
        self.host = host
        self.port = port
        self.mode = mode
        self.delay = delay
        self.chunk_delay = chunk_delay
        self.default = default
        self.api_key = api_key
        self.reject_json_schema = reject_json_schema
        self.reject_response_format = reject_response_format
        self.models = list(models)
        self.faults = faults
        self.faulted: collections.Counter[str] = collections.Counter()
        self._fault_random = random.Random(faults.seed if faults else 0)
        self.errors: list[BaseException] = []  # unexpected exceptions inside the server
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[_Entry] = []
        self._requests: collections.deque[RecordedRequest] = collections.deque(maxlen=max_recorded)
        self._received = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> ScriptedLLMServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # wakes delayed handlers
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def url(self) -> str:
        """``http://host:port`` (no ``/v1``)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started (use start() or `with`)")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``: ``http://host:port/v1``."""
        return f"{self.url}/v1"

    # --- scripting

    def push(
        self,
        reply: Reply | str,
        *,
        model: str | None = None,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Queue a reply for one request (a str is ``text(str)``). With ``model`` and/or
        ``when`` the entry is routed: only matching requests take it, and before any
        unrouted entry."""
        entry = _Entry(text(reply) if isinstance(reply, str) else reply, model, when)
        with self._lock:
            self._queue.append(entry)

    def push_many(
        self,
        replies: Iterable[Reply | str],
        *,
        model: str | None = None,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        for reply in replies:
            self.push(reply, model=model, when=when)

    def pending(self) -> list[Reply]:
        """Scripted replies not consumed yet, oldest first."""
        with self._lock:
            return [entry.reply for entry in self._queue]

    def clear(self) -> None:
        """Drop unconsumed replies and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._received = 0

    # --- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests (all paths), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def received(self) -> int:
        """How many requests arrived (not bounded by ``max_recorded``)."""
        with self._lock:
            return self._received

    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise LookupError("no request has been received")
            return self._requests[-1]

    def requests_for(self, model: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self._requests if request.model == model]

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self._requests if request.path in _CHAT_PATHS]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self._received < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self._received} of {count} requests arrived in {timeout}s"
                    )
                self._arrived.wait(left)
            return list(self._requests)

    # --- internals used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(request)
            self._received += 1
            self._arrived.notify_all()

    def _take(self, request: RecordedRequest) -> Reply:
        with self._lock:
            chosen: int | None = None
            for index, entry in enumerate(self._queue):
                if entry.routed and entry.matches(request):
                    chosen = index
                    break
            if chosen is None:
                for index, entry in enumerate(self._queue):
                    if not entry.routed:
                        chosen = index
                        break
            if chosen is not None:
                return self._queue.pop(chosen).reply
        return self._default_reply(request)

    def _draw_fault(self, request: RecordedRequest) -> Reply | None:
        """A random fault for this request (consuming nothing), or None."""
        faults = self.faults
        if faults is None or faults.rate <= 0:
            return None
        with self._lock:
            if self._fault_random.random() >= faults.rate:
                return None
            kind = self._fault_random.choice(faults.kinds)
            chunks = self._fault_random.randint(1, max(1, faults.max_cut_chunks))
            self.faulted[kind] += 1
            upcoming = self._peek(request)
        request.fault = kind
        if kind == "429":
            return error(429)
        if kind == "500":
            return error(500)
        if kind == "timeout":
            return delay(faults.stall)
        if upcoming is None:
            upcoming = self._default_reply(request)
        inner = upcoming if isinstance(upcoming, TextReply | ToolCallsReply) else None
        return cut_stream(chunks, inner)

    def _peek(self, request: RecordedRequest) -> Reply | None:
        """The scripted reply ``_take`` would return, left in the queue (lock held)."""
        for entry in self._queue:
            if entry.routed and entry.matches(request):
                return entry.reply
        for entry in self._queue:
            if not entry.routed:
                return entry.reply
        return None

    def _default_reply(self, request: RecordedRequest) -> Reply:
        if self.default is not None:
            return self.default(request)
        if self.mode == "error":
            return error(500, message="No scripted reply left for this request (mode='error').")
        return self._echo(request)

    def _echo(self, request: RecordedRequest) -> TextReply:
        return final(f"You said: {request.last_user_message()}", 0.9)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024  # benchmarks open hundreds of connections at once
    owner: ScriptedLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | TimeoutError):
            return  # the client went away (timeout, cut test); nothing to report
        if exc is not None:
            self.owner.errors.append(exc)
        super().handle_error(request, client_address)


class _Disconnect(Exception):
    """Raised to abandon a connection on purpose (cut_stream)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedLLM/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections give up eventually
    # As real model servers do: on a kept-alive connection, Nagle's algorithm would hold
    # each small write (a header block, an SSE event) until the client's delayed ACK.
    disable_nagle_algorithm = True

    @property
    def owner(self) -> ScriptedLLMServer:
        return cast(_HTTPServer, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; tests read server.requests instead

    # --- routing

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if method == "GET" and path in _MODELS_PATHS:
                self._record_request(method, path, {}, None)
                self._models()
            elif method == "POST" and path in _CHAT_PATHS:
                self._chat(path)
            else:
                self._drain_body()
                self._record_request(method, path, {}, None)
                self._send_json(
                    404,
                    openai_error_body(f"Unknown request URL: {method} {path}.", code="unknown_url"),
                )
        except _Disconnect:
            self._abort()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as exc:
            self.owner.errors.append(exc)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(
                    500, openai_error_body(f"scripted server bug: {exc!r}", "server_error")
                )

    def _models(self) -> None:
        data = [
            {"id": model, "object": "model", "created": 1700000000, "owned_by": "scripted"}
            for model in self.owner.models
        ]
        self._send_json(200, {"object": "list", "data": data})

    def _drain_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413 itself."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send_json(411, openai_error_body("A Content-Length request body is required."))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            # Discard a moderately oversized body (never kept) so the client reads the 413
            # instead of a reset; beyond that, just answer and hang up.
            left = length if length <= _MAX_DISCARD_BYTES else 0
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
            self._send_json(
                413,
                openai_error_body(
                    f"Request body over {MAX_BODY_BYTES} bytes.", code="body_too_large"
                ),
            )
            return None
        return self.rfile.read(length) if length else b""

    def _record_request(
        self, method: str, path: str, body: dict[str, Any], raw: bytes | None
    ) -> RecordedRequest:
        request = RecordedRequest(
            method=method,
            path=path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            received_at=time.time(),
            raw=raw,
            client_port=int(self.client_address[1]),
        )
        self.owner._record(request)
        return request

    # --- chat completions

    def _chat(self, path: str) -> None:
        owner = self.owner
        raw = self._read_body()
        if raw is None:
            return
        try:
            parsed: Any = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        request = self._record_request(
            "POST", path, body, None if isinstance(parsed, dict) else raw
        )
        owner._sleep(owner.delay)

        if not isinstance(parsed, dict):
            self._send_json(
                400,
                openai_error_body(
                    "We could not parse the JSON body of your request.", code="invalid_json"
                ),
            )
            return
        if (
            owner.api_key is not None
            and self.headers.get("Authorization") != f"Bearer {owner.api_key}"
        ):
            self._send_error_reply(error(401))
            return
        problem = self._validate(request)
        if problem is not None:
            message, param = problem
            self._send_json(400, openai_error_body(message, param=param))
            return
        fmt = request.response_format_type
        if fmt is not None and (
            owner.reject_response_format or (owner.reject_json_schema and fmt == "json_schema")
        ):
            self._send_json(
                400,
                openai_error_body(
                    f"Invalid parameter: 'response_format' of type '{fmt}' is not supported with this model.",
                    param="response_format",
                    code="unsupported_parameter" if owner.reject_response_format else None,
                ),
            )
            return

        fault = owner._draw_fault(request)
        reply = fault if fault is not None else owner._take(request)
        request.reply = reply
        usage: Usage | None = None
        while isinstance(reply, DelayReply):
            usage = usage or reply.usage
            owner._sleep(reply.seconds)
            reply = reply.then if reply.then is not None else owner._default_reply(request)
        self._answer(request, cast(_Terminal, reply), usage)

    @staticmethod
    def _validate(request: RecordedRequest) -> tuple[str, str] | None:
        if not request.model:
            return "you must provide a model parameter", "model"
        messages = request.body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty array", "messages"
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                return (
                    f"Invalid message at index {index}: a 'role' is required",
                    f"messages.[{index}]",
                )
        return None

    def _answer(
        self, request: RecordedRequest, reply: _Terminal, outer_usage: Usage | None
    ) -> None:
        if isinstance(reply, ErrorReply):
            self._send_error_reply(reply)
        elif isinstance(reply, InvalidJSONReply):
            if request.stream:
                self._start_stream()
                self._write_chunk(f"data: {reply.body}\n\n".encode())
                self._write_chunk(b"data: [DONE]\n\n")
                self._end_stream()
            else:
                self._send_bytes(200, reply.body.encode(), "application/json")
        elif isinstance(reply, CutStreamReply):
            inner = reply.reply if reply.reply is not None else self.owner._echo(request)
            usage = reply.usage or inner.usage or outer_usage
            if request.stream:
                self._start_stream()
                for sent, event in enumerate(self._events(request, inner, usage)):
                    if sent >= reply.after_chunks:
                        break
                    self._write_chunk(event)
                    self.owner._sleep(self.owner.chunk_delay)
                raise _Disconnect
            payload = json.dumps(self._completion(request, inner, usage)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            raise _Disconnect
        else:
            usage = reply.usage or outer_usage
            if request.stream:
                self._start_stream()
                for event in self._events(request, reply, usage):
                    self._write_chunk(event)
                    self.owner._sleep(self.owner.chunk_delay)
                self._end_stream()
            else:
                self._send_json(200, self._completion(request, reply, usage))

    def _send_error_reply(self, reply: ErrorReply) -> None:
        if isinstance(reply.body, dict):
            payload, content_type = json.dumps(reply.body).encode(), "application/json"
        elif isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, content_type = reply.body or b"", "text/plain; charset=utf-8"
        self._send_bytes(reply.status, payload, content_type, reply.headers)

    # --- response bodies

    @staticmethod
    def _usage(
        request: RecordedRequest, reply: TextReply | ToolCallsReply, usage: Usage | None
    ) -> dict[str, Any]:
        prompt, completion = usage or (request.prompt_tokens, _completion_tokens(reply))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _call_ids(reply: ToolCallsReply) -> list[str]:
        return [call.id or f"call_{uuid.uuid4().hex[:24]}" for call in reply.calls]

    def _completion(
        self, request: RecordedRequest, reply: TextReply | ToolCallsReply, usage: Usage | None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
        if isinstance(reply, TextReply):
            message["content"] = reply.content
            finish_reason = "stop"
        else:
            message["content"] = reply.content
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for call, call_id in zip(reply.calls, self._call_ids(reply), strict=True)
            ]
            finish_reason = "tool_calls"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": self._usage(request, reply, usage),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }

    def _events(
        self, request: RecordedRequest, reply: TextReply | ToolCallsReply, usage: Usage | None
    ) -> Iterator[bytes]:
        """The SSE events of a streamed completion, as OpenAI sends them."""
        include_usage = request.include_usage
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n".encode()

        if isinstance(reply, TextReply):
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in re.findall(r"\s*\S+\s*|\s+", reply.content):
                yield chunk({"content": piece})
            finish_reason = "stop"
        else:
            first: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
            if reply.content:
                first["content"] = ""
                yield chunk(first)
                for piece in re.findall(r"\s*\S+\s*|\s+", reply.content):
                    yield chunk({"content": piece})
                first = {}
            for index, (call, call_id) in enumerate(
                zip(reply.calls, self._call_ids(reply), strict=True)
            ):
                opening = {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                yield chunk({**first, "tool_calls": [opening]})
                first = {}
                arguments = call.arguments_json()
                for start in range(0, len(arguments), _ARGUMENT_PIECE):
                    piece = arguments[start : start + _ARGUMENT_PIECE]
                    yield chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
            finish_reason = "tool_calls"
        yield chunk({}, finish_reason)
        if include_usage:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
                "choices": [],
                "usage": self._usage(request, reply, usage),
            }
            yield f"data: {json.dumps(data)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    # --- wire helpers

    def _common_headers(self) -> None:
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        self.send_header("openai-processing-ms", "1")

    def _send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self._common_headers()
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(data).encode(), "application/json", headers)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Drop the connection without finishing the body (no terminating chunk)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# --- command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible chat server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE events")
    parser.add_argument("--mode", choices=("echo", "error"), default="echo")
    parser.add_argument("--reject-json-schema", action="store_true")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of calls that fail")
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument(
        "--fault-kinds", default=",".join(FAULT_KINDS), help="comma-separated: 429,500,timeout,cut"
    )
    parser.add_argument(
        "--fault-stall", type=float, default=5.0, help="seconds a 'timeout' fault stalls"
    )
    args = parser.parse_args(argv)
    faults = None
    if args.fault_rate > 0:
        faults = Faults(
            rate=args.fault_rate,
            seed=args.fault_seed,
            kinds=tuple(kind for kind in args.fault_kinds.split(",") if kind),
            stall=args.fault_stall,
        )

    server = ScriptedLLMServer(
        host=args.host,
        port=args.port,
        mode=args.mode,
        delay=args.delay,
        chunk_delay=args.chunk_delay,
        reject_json_schema=args.reject_json_schema,
        max_recorded=1000,
        faults=faults,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with server:
        print(server.base_url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
