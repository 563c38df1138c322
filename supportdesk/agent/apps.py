from __future__ import annotations

from django.apps import AppConfig


class AgentConfig(AppConfig):
    name = "supportdesk.agent"
    label = "agent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from supportdesk.agent import hooks

        hooks.install()
