"""A small desk with one real object behind every path parameter of the URLconf, and the
principals the authorisation matrix tries: anonymous, a customer, a non-staff user, an
inactive staff user, a member of the ``agents`` group, staff and a superuser."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.utils import timezone
from rest_framework.authtoken.models import Token, TokenProxy

from approvals import services as approval_services
from approvals.models import ApprovalDraft
from escalations import services as escalation_services
from escalations.models import (
    AgentProfile,
    BusinessHours,
    Escalation,
    HumanRequest,
    OutboxMessage,
    Queue,
    RoutingRule,
    SLABreach,
    SLAPolicy,
    WebhookEndpoint,
)
from supportdesk.agent.models import AgentTurn, KnowledgeArticle, ModelCall, WorkerHeartbeat
from tests.factories import UserFactory, make_thread
from threads import services as thread_services
from threads.models import Assignment, AuthorKind, Message, Role, Thread, Visibility


@dataclass
class World:
    thread: Thread
    token: str
    other_thread: Thread
    other_token: str
    escalation: Escalation
    human_request: HumanRequest
    draft: ApprovalDraft
    staff: Any
    superuser: Any
    agent_member: Any  # not is_staff, in the "agents" group
    plain: Any  # authenticated, neither staff nor an agent
    inactive: Any  # is_staff but not active
    tokens: dict[str, str] = field(default_factory=dict)

    def path_values(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread.pk,
            "escalation_id": self.escalation.pk,
            "request_id": self.human_request.pk,
            "draft_id": self.draft.pk,
            "customer_id": self.thread.customer_id,
        }


def build_world() -> World:
    """Every object the URLconf's parameters refer to, made through the services."""
    thread, token = make_thread(subject="Matrix thread", message="Where is my parcel?")
    other_thread, other_token = make_thread(subject="Someone else's thread", message="Hello")
    staff = UserFactory(username="matrix-staff")
    superuser = UserFactory(username="matrix-root", is_superuser=True)
    agent_member = UserFactory(username="matrix-member", is_staff=False)
    agent_member.groups.add(Group.objects.get_or_create(name="agents")[0])
    plain = UserFactory(username="matrix-plain", is_staff=False)
    inactive = UserFactory(username="matrix-gone", is_active=False)

    escalated, _ = make_thread(subject="Escalated", message="I need a person")
    escalation, _ = escalation_services.escalation_open(
        thread=escalated, source="staff", reason="matrix escalation"
    )
    waiting, _ = make_thread(subject="Question", message="Is my order shipped?")
    turn = AgentTurn.objects.filter(thread=waiting).first()
    human_request = escalation_services.human_request_create(
        thread=waiting,
        turn_id=turn.pk if turn else thread.pk,
        question="matrix question",
        tool_call_id="call_matrix",
    )
    drafted, _ = make_thread(subject="Draft", message="Can I return this?", ai_mode="draft")
    proposed = thread_services.message_create(
        thread=drafted,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.AI,
        content="matrix draft",
        provider="offline",
        model="kb-bm25",
        visibility=Visibility.DRAFT,
    )
    draft = approval_services.approval_draft_create(thread=drafted, message=proposed)

    # Rows for the admin pages that no flow above makes.
    turn = AgentTurn.objects.filter(thread=thread).first()
    assert turn is not None
    ModelCall.objects.create(turn=turn, thread=thread, provider="offline", model="kb-bm25")
    WorkerHeartbeat.objects.create(worker_id="matrix-worker", last_seen_at=timezone.now())
    KnowledgeArticle.objects.create(slug="matrix", title="Matrix", body="Matrix article.")
    hours = BusinessHours.objects.create(name="Matrix hours")
    policy = SLAPolicy.objects.create(name="Matrix policy")
    queue = Queue.objects.create(name="Matrix queue")
    RoutingRule.objects.create(queue=queue)
    AgentProfile.objects.get_or_create(user=staff)
    SLABreach.objects.create(
        escalation=escalation,
        target="first_response",
        priority="normal",
        due_at=timezone.now() - timedelta(minutes=5),
        breached_at=timezone.now(),
    )
    endpoint = WebhookEndpoint.objects.create(url="https://hooks.example/matrix")
    OutboxMessage.objects.create(
        kind="webhook",
        endpoint=endpoint,
        event="escalation.created",
        payload={"matrix": True},
        next_attempt_at=timezone.now(),
    )
    assert hours.pk and policy.pk

    world = World(
        thread=thread,
        token=token,
        other_thread=other_thread,
        other_token=other_token,
        escalation=escalation,
        human_request=human_request,
        draft=draft,
        staff=staff,
        superuser=superuser,
        agent_member=agent_member,
        plain=plain,
        inactive=inactive,
    )
    for name in ("staff", "superuser", "agent_member", "plain", "inactive"):
        user = getattr(world, name)
        world.tokens[name] = Token.objects.get_or_create(user=user)[0].key
    return world


def admin_object_values(route_name: str, world: World) -> dict[str, Any]:
    """The path parameters of an admin route: the pk of a real row of its model."""
    values: dict[str, Any] = {
        "app_label": "threads",
        "url": "no-such-admin-page/",
        "id": world.staff.pk,
        "content_type_id": ContentType.objects.get_for_model(Thread).pk,
    }
    model = admin_model(route_name)
    if model is not None:
        row = model._default_manager.order_by("pk").first()
        assert row is not None, f"no {model.__name__} row: add one to build_world()"
        # DRF's token admin addresses a token by its user's id.
        values["object_id"] = row.user_id if isinstance(row, TokenProxy) else row.pk
    elif route_name == "admin:view_on_site":
        values["object_id"] = world.thread.pk
    else:
        values["object_id"] = world.thread.pk  # the thread admin's custom views
    return values


def admin_model(route_name: str) -> type[Model] | None:
    """The model a ModelAdmin route name (``admin:<app>_<model>_<view>``) belongs to."""
    for model in admin.site._registry:
        opts = model._meta
        if route_name.startswith(f"admin:{opts.app_label}_{opts.model_name}_"):
            if route_name.endswith(("_dashboard", "_conversation")):
                return None
            return model
    return None


def registered_models() -> list[type[Model]]:
    return list(admin.site._registry)


# Row counts and thread fields: a denied request must leave all of them as they were.
_COUNTED: list[type[Model]] = [
    Message,
    Escalation,
    HumanRequest,
    ApprovalDraft,
    Assignment,
    AgentTurn,
    Token,
]


def snapshot() -> tuple[Any, ...]:
    counts = tuple(model._default_manager.count() for model in _COUNTED)
    threads = tuple(
        Thread.objects.order_by("pk").values_list(
            "pk", "status", "priority", "responder", "assignee_id", "ai_mode", "last_seq"
        )
    )
    decisions = (
        tuple(Escalation.objects.order_by("pk").values_list("pk", "status")),
        tuple(HumanRequest.objects.order_by("pk").values_list("pk", "status")),
        tuple(ApprovalDraft.objects.order_by("pk").values_list("pk", "status")),
        tuple(apps.get_model("auth", "User").objects.order_by("pk").values_list("pk", "password")),
    )
    return counts, threads, decisions
