from __future__ import annotations

from django.apps import AppConfig


class ThreadsConfig(AppConfig):
    name = "threads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the drf-spectacular extensions before any schema is generated.
        from supportdesk import schema  # noqa: F401
        from threads import events, realtime

        # Committed events go out on the websockets (threads/realtime.py).
        events.register(realtime.broadcast)
