"""How escalations, human requests and agent presence look on the desk socket.

Registered at start-up (``EscalationsConfig.ready``) into :mod:`threads.realtime`, which
sits below this app and cannot import it.
"""

from __future__ import annotations

from typing import Any, cast

from escalations import services
from escalations.models import AgentPresence, Escalation, HumanRequest
from escalations.serializers import EscalationSerializer, HumanRequestSerializer
from threads import events, realtime
from threads.serializers import user_ref


def render_escalation(event: events.Event) -> dict[str, Any] | None:
    payload = cast(events.EscalationPayload, event.payload)
    escalation = (
        Escalation.objects.select_related("claimed_by", "queue")
        .filter(pk=payload["escalation_id"])
        .first()
    )
    if escalation is None:
        return None
    return {
        "type": event.type,
        "thread": event.thread_id,
        "escalation": EscalationSerializer(escalation).data,
    }


def render_human_request(event: events.Event) -> dict[str, Any] | None:
    payload = cast(events.HumanRequestPayload, event.payload)
    request = (
        HumanRequest.objects.select_related("answered_by")
        .filter(pk=payload["human_request_id"])
        .first()
    )
    if request is None:
        return None
    return {
        "type": event.type,
        "thread": event.thread_id,
        "human_request": HumanRequestSerializer(request).data,
    }


def render_presence(event: events.Event) -> dict[str, Any] | None:
    payload = cast(events.PresenceUpdatedPayload, event.payload)
    presence = (
        AgentPresence.objects.select_related("user").filter(user_id=payload["user_id"]).first()
    )
    if presence is None:
        return None
    return dict(
        realtime.PresenceFrame(
            type="presence.updated",
            agent=user_ref(presence.user) or {},
            status=presence.status,
            last_seen_at=presence.last_seen_at.isoformat() if presence.last_seen_at else None,
        )
    )


class Presence:
    """The desk socket's presence calls (``threads.realtime.PresenceHooks``)."""

    def connected(self, user: Any) -> None:
        services.presence_expire_stale()
        services.presence_connect(user=user)

    def disconnected(self, user: Any) -> None:
        services.presence_disconnect(user=user)

    def heartbeat(self, user: Any) -> None:
        services.presence_heartbeat(user=user)

    def set(self, user: Any, status: str) -> None:
        services.presence_set(user=user, status=status)


def register() -> None:
    for event_type in ("escalation.created", "escalation.updated"):
        realtime.desk_renderers[event_type] = render_escalation
    for event_type in ("human_request.created", "human_request.updated"):
        realtime.desk_renderers[event_type] = render_human_request
    realtime.desk_renderers["presence.updated"] = render_presence
    realtime.presence_hooks = Presence()
