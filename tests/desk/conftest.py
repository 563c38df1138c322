"""Browser-test fixtures: a real ASGI server and AI worker against the test database,
and Chromium driven by Playwright.

pytest-django's ``live_server`` speaks HTTP only, and the desk and the widget need
websockets, so the server here is uvicorn (the production ASGI server) running the
project's application plus static files (``tests/desk/asgi_static.py``) in a subprocess,
pointed at the test database with ``DATABASE_URL``. The
AI worker is ``manage.py agent_worker`` beside it (the offline knowledge-base responder,
or the scripted OpenAI-compatible server). Tests that use them run with
``transaction=True`` so that both processes see the rows the test writes.

Without a shared channel layer (no ``REDIS_URL``) the worker's events cannot reach the
server's sockets; the pages then see the AI's work through their polling safety net,
which is what these tests exercise on SQLite. With ``REDIS_URL`` both processes share a
channels-redis layer under a prefix of their own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client

from tests.realtime.servers import database_url

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Other sites, served from this machine (shop_site): the widget is embedded on SHOP_HOST,
# which the server lists in SUPPORTDESK_WIDGET_ORIGINS, and on OTHER_HOST, which it does not.
SHOP_HOST = "shop.example"
OTHER_HOST = "elsewhere.example"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    f"--host-resolver-rules=MAP {SHOP_HOST} 127.0.0.1, MAP {OTHER_HOST} 127.0.0.1",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
ACCESSIBILITY = ROOT / "artifacts" / "accessibility"
LAPTOP = {"width": 1366, "height": 860}
TABLET = {"width": 820, "height": 1180}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_env(prefix: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        # The same key as this process: the session cookies it mints must be valid there.
        "SECRET_KEY": str(settings.SECRET_KEY),
        "DEBUG": "0",
        "SUPPORTDESK_LLM": "offline",
        "CHANNEL_LAYER_PREFIX": prefix,
        "CACHE_KEY_PREFIX": prefix,
        "SUPPORTDESK_COPILOT": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(extra)
    return env


class Processes:
    """Subprocesses started for one test (or module), stopped in reverse order."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(
        self, args: list[str], env: dict[str, str], log_name: str, manage: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start ``manage.py <args>`` (or ``python <args>``); its output goes to
        artifacts/<log_name>-<pid>.log (anew each start)."""
        SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
        # One file per test process: parallel runs on one machine do not mix their logs.
        path = SCREENSHOTS.parent / f"{log_name}-{os.getpid()}.log"
        log = open(path, "wb")  # noqa: SIM115 - closed in stop_all
        command = [sys.executable, *(["manage.py"] if manage else []), *args]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        self.running.append((process, log))
        return process

    def stop_all(self) -> None:
        for process, log in reversed(self.running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            log.close()
        self.running.clear()


class LiveServer:
    def __init__(self, url: str, prefix: str, shop_port: int) -> None:
        self.url = url
        self.prefix = prefix
        # Where shop_site serves its page; the server allows http://SHOP_HOST:<port>.
        self.shop_port = shop_port

    def __str__(self) -> str:
        return self.url


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see artifacts/")
        try:
            with urllib.request.urlopen(f"{url}/desk/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not come up")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Chromium, or a skip (a failure in CI: there the browser tests must run)."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import axe_playwright_python  # noqa: F401
        import playwright  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright or axe-playwright-python is missing (pip install -e '.[dev]')")
        pytest.skip("playwright or axe-playwright-python is missing")
    return CHROMIUM


@pytest.fixture(scope="module")
def asgi_server(
    chromium_path: str, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[LiveServer]:
    """uvicorn (HTTP and websockets, as in production) on the test database, for one
    test module; stopped before the test database is dropped."""
    prefix = f"sdbrowser{os.getpid()}{uuid.uuid4().hex[:6]}"
    port = free_port()
    shop_port = free_port()
    processes = Processes()
    with django_db_blocker.unblock():
        env = process_env(prefix, SUPPORTDESK_WIDGET_ORIGINS=f"http://{SHOP_HOST}:{shop_port}")
    server = processes.start(
        [
            "-m",
            "uvicorn",
            "tests.desk.asgi_static:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env,
        "browser-server",
        manage=False,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server)
        yield LiveServer(url, prefix, shop_port)
    finally:
        processes.stop_all()


SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another shop</title></head>
<body><main><h1>Another shop</h1><p>The support widget, embedded from its own server.</p></main>
<script src="{server}/static/widget/widget.js" data-title="Shop support"
  data-name="Robin Shopper" async></script></body></html>
"""


@pytest.fixture
def shop_site(asgi_server: LiveServer) -> Iterator[int]:
    """Another website, on another origin, that embeds the widget from the server with its
    one script tag (any path serves that page). Yields the port; open
    http://SHOP_HOST:<port>/ (allowed by the server) or http://OTHER_HOST:<port>/ (not)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = SHOP_PAGE.format(server=asgi_server.url).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", asgi_server.shop_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield asgi_server.shop_port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ai_worker(asgi_server: LiveServer, transactional_db: Any) -> Iterator[Processes]:
    """An AI worker with the offline knowledge-base responder, for one test."""
    processes = Processes()
    processes.start(
        ["agent_worker", "--interval", "0.05", "--sweep-every", "1"],
        process_env(asgi_server.prefix),
        "browser-worker",
    )
    yield processes
    processes.stop_all()


@pytest.fixture
def scripted_worker(asgi_server: LiveServer, transactional_db: Any) -> Iterator[Any]:
    """An AI worker talking to the scripted OpenAI-compatible server (tests/llm_server.py)."""
    from tests.llm_server import ScriptedLLMServer

    with ScriptedLLMServer(mode="error") as llm:
        processes = Processes()
        processes.start(
            ["agent_worker", "--interval", "0.05", "--sweep-every", "1"],
            process_env(
                asgi_server.prefix,
                SUPPORTDESK_LLM="openai",
                OPENAI_API_KEY="test-key",
                OPENAI_BASE_URL=llm.base_url,
                SUPPORTDESK_MODEL="gpt-test",
                SUPPORTDESK_LLM_BACKOFF="0.01",
            ),
            "browser-worker-scripted",
        )
        yield llm
        processes.stop_all()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which Django takes for an
    # async context; the ORM calls the tests (and the database flush) make between browser
    # steps are plain synchronous code all the same. Module scope: the loop is gone before
    # the asyncio tests of other modules run.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def pages(browser: Any, asgi_server: LiveServer) -> Iterator[Any]:
    """Opens browser contexts (one per person) and closes them after the test; each page
    records its script errors and dialogs (an ``alert`` from injected markup), which fail
    the test."""
    opened: list[Any] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        errors.append(f"a dialog opened: {dialog.message}")
        dialog.dismiss()

    def open_page(user: Any = None, viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(viewport=viewport or LAPTOP, base_url=asgi_server.url)
        context.set_default_timeout(15_000)
        if user is not None:
            client = Client()
            client.force_login(user)
            context.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "url": asgi_server.url,
                    }
                ]
            )
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("dialog", lambda dialog: on_dialog(dialog))
        opened.append(context)
        return page

    yield open_page
    for context in opened:
        context.close()
    _wait_for_desk_sockets_to_close()
    assert not errors, errors


def _wait_for_desk_sockets_to_close(timeout: float = 10.0) -> None:
    """The server marks an agent offline when their desk socket closes (a write): let it
    finish before the test's rows are flushed, or the two race (a deadlock on PostgreSQL,
    a foreign-key error in the server's log)."""
    try:
        presence = apps.get_model("escalations", "AgentPresence")
    except LookupError:
        return
    deadline = time.monotonic() + timeout
    while presence.objects.filter(connections__gt=0).exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


# axe-core's rules for WCAG 2.1 A and AA plus its best practices (landmarks, headings).
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
AXE_FAILING_IMPACTS = ("serious", "critical")


def accessibility_violations(page: Any, name: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (open shadow roots included), of
    every impact; they are saved to artifacts/accessibility/<name>.json."""
    import json

    from axe_playwright_python.sync_playwright import Axe

    violations = list(Axe().run(page, options=AXE_OPTIONS).response["violations"])
    ACCESSIBILITY.mkdir(parents=True, exist_ok=True)
    (ACCESSIBILITY / f"{name}.json").write_text(json.dumps(violations, indent=1))
    return violations


def assert_accessible(page: Any, name: str) -> None:
    """No serious or critical axe-core violation on the page."""
    import json

    violations = accessibility_violations(page, name)
    failing = [v for v in violations if v["impact"] in AXE_FAILING_IMPACTS]
    assert not failing, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(json.dumps(node["target"]) for node in v["nodes"][:5])
        for v in failing
    )
