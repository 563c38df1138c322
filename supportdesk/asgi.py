"""ASGI entry point: HTTP through Django, websockets through Channels (``/ws/``)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from supportdesk.cors import SocketOriginValidator  # noqa: E402
from supportdesk.env import env_bool  # noqa: E402
from supportdesk.routing import websocket_urlpatterns  # noqa: E402

if env_bool("SUPPORTDESK_EMBEDDED_WORKER", False):
    # `make run` without Redis: see supportdesk/embedded_worker.py.
    from supportdesk import embedded_worker

    embedded_worker.start()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SocketOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
