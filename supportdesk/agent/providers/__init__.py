"""Provider selection: ``SUPPORTDESK_LLM`` picks ``openai`` or ``offline``."""

from __future__ import annotations

import threading

from django.conf import settings

from supportdesk.agent.providers.base import Provider

_lock = threading.Lock()
_cache: dict[tuple[str, str, str, str], Provider] = {}


def get_provider(purpose: str = "reply") -> Provider | None:
    """The provider for ``reply`` or ``classifier`` calls (None: no classifier configured).

    Instances are cached per configuration so the OpenAI client's connection pool and the
    structured-output fallback level are reused across turns.
    """
    kind = settings.SUPPORTDESK_LLM
    if purpose == "classifier":
        model = settings.SUPPORTDESK_CLASSIFIER_MODEL
        if not model:
            return None
    else:
        model = settings.SUPPORTDESK_MODEL
    key = (kind, purpose, str(model), str(settings.OPENAI_BASE_URL))
    with _lock:
        provider = _cache.get(key)
        if provider is None:
            provider = _build(kind, str(model))
            _cache[key] = provider
        return provider


def _build(kind: str, model: str) -> Provider:
    if kind == "openai":
        from supportdesk.agent.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(model=model)
    from supportdesk.agent.providers.offline import OfflineProvider

    return OfflineProvider()


def reset_providers() -> None:
    """Forget cached providers (tests that change settings call this)."""
    with _lock:
        _cache.clear()
