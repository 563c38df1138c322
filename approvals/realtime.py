"""How approval drafts look on the desk socket; registered in ``ApprovalsConfig.ready``."""

from __future__ import annotations

from typing import Any, cast

from approvals.models import ApprovalDraft
from approvals.serializers import ApprovalDraftSerializer
from threads import events, realtime


def render_approval(event: events.Event) -> dict[str, Any] | None:
    payload = cast(events.ApprovalPayload, event.payload)
    draft = (
        ApprovalDraft.objects.select_related("decided_by", "message")
        .filter(pk=payload["approval_id"])
        .first()
    )
    if draft is None:
        return None
    return {
        "type": event.type,
        "thread": event.thread_id,
        "approval": ApprovalDraftSerializer(draft).data,
    }


def register() -> None:
    for event_type in ("approval.created", "approval.updated"):
        realtime.desk_renderers[event_type] = render_approval
