"""The supervisors' admin for webhook endpoints and the notification outbox."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from escalations import services
from escalations.models import Escalation, OutboxMessage, WebhookEndpoint
from escalations.notifications import deliver_due
from tests.factories import UserFactory, make_thread

pytestmark = pytest.mark.django_db


def _closed_port_url() -> str:
    """A loopback URL nobody listens on: a delivery to it fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def _escalate(n: int) -> Escalation:
    thread, _ = make_thread(subject=f"Broken tent {n}")
    escalation, _ = services.escalation_open(thread=thread, source="tool", reason=f"torn {n}")
    return escalation


def _failed_rows(settings: Any, count: int, endpoint: WebhookEndpoint | None = None) -> list[Any]:
    """``count`` escalations whose webhook and email deliveries failed for good."""
    settings.SUPPORTDESK_OUTBOX_MAX_ATTEMPTS = 1
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    settings.EMAIL_BACKEND = "tests.escalations.test_outbox_admin.BrokenEmailBackend"
    endpoint = endpoint or WebhookEndpoint.objects.create(url=_closed_port_url())
    for n in range(count):
        _escalate(n)
    deliver_due(limit=1000)
    rows = list(OutboxMessage.objects.order_by("created_at"))
    assert {row.status for row in rows} == {"failed"}
    return rows


class BrokenEmailBackend:
    """An email backend whose server refuses every message."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise OSError("connection refused")


def _changelist(model: str) -> str:
    return reverse(f"admin:escalations_{model}_changelist")


def _action(client: Any, model: str, action: str, *rows: Any) -> Any:
    return client.post(
        _changelist(model),
        {"action": action, "_selected_action": [str(row.pk) for row in rows]},
        follow=True,
    )


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _queries_for(client: Any, url: str) -> int:
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("model", ["outboxmessage", "webhookendpoint"])
def test_it_renders_the_notification_changelists_in_constant_queries(
    admin_client: Any, settings: Any, model: str
) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    WebhookEndpoint.objects.create(url="https://hooks.example.com/a", events=["escalation.opened"])
    for n in range(2):
        _escalate(n)
    few = _queries_for(admin_client, _changelist(model))
    for n in range(4):
        WebhookEndpoint.objects.create(url=f"https://hooks.example.com/more-{n}")
    for n in range(2, 8):
        _escalate(n)
    assert OutboxMessage.objects.count() > 20
    assert _queries_for(admin_client, _changelist(model)) == few


def test_it_filters_the_outbox_by_status_and_kind(admin_client: Any, settings: Any) -> None:
    failed = _failed_rows(settings, 1)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _escalate(9)
    response = admin_client.get(_changelist("outboxmessage"), {"status": "failed", "kind": "email"})
    assert response.status_code == 200
    shown = [row.pk for row in response.context["cl"].result_list]
    assert shown == [row.pk for row in failed if row.kind == "email"]


def test_it_finds_the_deliveries_of_a_thread(admin_client: Any, settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    _escalate(1)
    wanted = _escalate(2)
    response = admin_client.get(_changelist("outboxmessage"), {"q": str(wanted.thread_id)})
    assert response.status_code == 200
    assert [row.escalation_id for row in response.context["cl"].result_list] == [wanted.pk]


def test_it_retries_failed_deliveries_from_the_admin(admin_client: Any, settings: Any) -> None:
    rows = _failed_rows(settings, 2)

    response = _action(admin_client, "outboxmessage", "retry", *rows)

    for row in rows:
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", 0)
    assert f"Queued {len(rows)} delivery(ies) to be sent again now." in _messages(response)
    # They go out with the next sender round (the receiver is still down: failed again).
    assert deliver_due(limit=1000)["outbox_failed"] == len(rows)


def test_it_retries_only_failed_deliveries(admin_client: Any, settings: Any) -> None:
    failed = next(row for row in _failed_rows(settings, 1) if row.kind == "email")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _escalate(5)
    deliver_due()
    sent = OutboxMessage.objects.get(status="sent")

    response = _action(admin_client, "outboxmessage", "retry", failed, sent)

    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.status, sent.status, sent.attempts) == ("pending", "sent", 1)
    assert "Queued 1 delivery(ies) to be sent again now. 1 not retried" in _messages(response)[0]


def test_it_refuses_to_retry_a_webhook_to_a_disabled_endpoint(
    admin_client: Any, settings: Any
) -> None:
    rows = _failed_rows(settings, 1)
    webhook = next(row for row in rows if row.kind == "webhook")
    WebhookEndpoint.objects.update(active=False)

    response = _action(admin_client, "outboxmessage", "retry", webhook)

    webhook.refresh_from_db()
    assert webhook.status == "failed"
    assert any("disabled" in text for text in _messages(response))


def test_it_disables_an_endpoint_and_fails_its_pending_deliveries(admin_client: Any) -> None:
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/a")
    other = WebhookEndpoint.objects.create(url="https://hooks.example.com/b")
    _escalate(1)

    response = _action(admin_client, "webhookendpoint", "disable_endpoints", endpoint)

    endpoint.refresh_from_db()
    assert endpoint.active is False
    assert OutboxMessage.objects.get(endpoint=endpoint).status == "failed"
    assert OutboxMessage.objects.get(endpoint=endpoint).last_error == "the endpoint was disabled"
    assert OutboxMessage.objects.get(endpoint=other).status == "pending"
    assert "Disabled 1 endpoint(s); 1 pending delivery(ies) marked failed." in _messages(response)


def test_it_enables_an_endpoint_again(admin_client: Any) -> None:
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example.com/a", active=False)

    response = _action(admin_client, "webhookendpoint", "enable_endpoints", endpoint)

    endpoint.refresh_from_db()
    assert endpoint.active is True
    assert any("Enabled 1 endpoint(s)." in text for text in _messages(response))


def test_it_adds_an_endpoint_with_a_generated_secret(admin_client: Any) -> None:
    url = reverse("admin:escalations_webhookendpoint_add")
    secret = admin_client.get(url).context["adminform"].form["secret"].value()
    response = admin_client.post(
        url,
        {
            "url": "hooks.example.com/new",
            "events": '["escalation.sla_breached"]',
            "secret": secret,
        },
    )
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.active) == ("https://hooks.example.com/new", True)
    assert (endpoint.events, endpoint.secret) == (["escalation.sla_breached"], secret)
    assert len(secret) == 64


def test_it_does_not_change_outbox_rows(admin_client: Any, settings: Any) -> None:
    settings.SUPPORTDESK_NOTIFY_EMAILS = ["desk@example.com"]
    _escalate(1)
    row = OutboxMessage.objects.get()
    url = reverse("admin:escalations_outboxmessage_change", args=[row.pk])
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"status": "sent"})

    assert response.status_code == 403
    row.refresh_from_db()
    assert row.status == "pending"


def test_it_offers_no_retry_without_the_change_permission(settings: Any) -> None:
    rows = _failed_rows(settings, 1)
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboxmessage"))
    client = Client()
    client.force_login(viewer)

    changelist = client.get(_changelist("outboxmessage"))
    assert changelist.status_code == 200
    assert changelist.context["action_form"] is None
    _action(client, "outboxmessage", "retry", *rows)

    assert {row.status for row in OutboxMessage.objects.all()} == {"failed"}
