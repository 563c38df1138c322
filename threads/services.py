"""The only writers of threads, messages and assignments.

Every function runs in one transaction; broadcasts go out on commit through
``threads.events``. Hooks registered in ``customer_message_hooks`` run *inside* the
transaction that stores a customer message (the AI responder uses one to schedule its
turn, so a message and its turn commit together or not at all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from threads import events
from threads.exceptions import InvalidAssignee, InvalidTier, InvalidTransition, ThreadClosed
from threads.models import (
    AIMode,
    Assignment,
    AuthorKind,
    Customer,
    Message,
    Priority,
    Responder,
    Role,
    Thread,
    ThreadStatus,
    Visibility,
)
from threads.tokens import token_hash, token_new

User = Any  # the configured user model; typed loosely to keep the services model-agnostic

customer_message_hooks: list[Callable[[Message], object]] = []
# Run inside the transaction of a public human reply (SLA clocks stop on it).
human_reply_hooks: list[Callable[[Message], object]] = []

SYSTEM_NAME = "System"


def user_display_name(user: User | None) -> str:
    if user is None:
        return SYSTEM_NAME
    full = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


def user_is_agent(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Active staff, or active members of the ``agents`` group."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_staff", False):
        return True
    return bool(user.groups.filter(name="agents").exists())  # type: ignore[union-attr,attr-defined]


def _next_seq(thread: Thread) -> int:
    """Reserve the thread's next seq with one atomic increment.

    The UPDATE takes the row lock on PostgreSQL (and the database write lock on SQLite,
    whose transactions begin IMMEDIATE), so concurrent posters queue here and each gets
    the next number: no repeats, no gaps.
    """
    now = timezone.now()
    table = connection.ops.quote_name(Thread._meta.db_table)
    pk = Thread._meta.pk
    assert pk is not None
    updated_at = Thread._meta.get_field("updated_at")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, updated_at = %s "
            f"WHERE {connection.ops.quote_name(pk.column)} = %s RETURNING last_seq",
            [
                updated_at.get_db_prep_value(now, connection),
                pk.get_db_prep_value(thread.pk, connection),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise Thread.DoesNotExist(f"Thread {thread.pk} does not exist.")
    thread.last_seq = int(row[0])
    thread.updated_at = now
    return thread.last_seq


# No savepoint: every caller is already inside a transaction it rolls back as a whole,
# and two extra statements per message add up on the hottest write path.
@transaction.atomic(savepoint=False)
def message_create(
    *,
    thread: Thread,
    role: str,
    author_kind: str,
    content: str,
    author_user: User | None = None,
    author_name: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    visibility: str = Visibility.PUBLIC,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    usage: dict[str, Any] | None = None,
    message_id: Any = None,
) -> Message:
    """Store one message with the thread's next ``seq``.

    Broadcasts ``message.created`` on commit. Does not check the thread's status: the
    entry-point services below do.
    """
    if author_name is None:
        author_name = _default_author_name(thread, author_kind, author_user)
    seq = _next_seq(thread)
    extra = {"id": message_id} if message_id is not None else {}
    message = Message.objects.create(
        **extra,
        thread=thread,
        seq=seq,
        role=role,
        author_kind=author_kind,
        author_user=author_user,
        author_name=author_name,
        content=content,
        provider=provider,
        model=model,
        visibility=visibility,
        tool_calls=tool_calls or [],
        tool_call_id=tool_call_id,
        usage=usage,
    )
    events.emit(
        "message.created",
        thread_id=str(thread.pk),
        payload=events.MessageCreatedPayload(
            message_id=str(message.pk), seq=seq, visibility=visibility
        ),
    )
    return message


def _default_author_name(thread: Thread, author_kind: str, user: User | None) -> str:
    if author_kind == AuthorKind.CUSTOMER:
        return thread.customer.display_name
    if author_kind == AuthorKind.AI:
        from django.conf import settings

        return str(settings.SUPPORTDESK_AI_NAME)
    if author_kind == AuthorKind.HUMAN:
        return user_display_name(user)
    return SYSTEM_NAME


@transaction.atomic
def thread_create(
    *,
    customer_name: str = "",
    customer_email: str = "",
    customer_external_id: str = "",
    customer_verified: bool = False,
    customer_tier: str | None = None,
    subject: str = "",
    message: str | None = None,
    ai_mode: str | None = None,
) -> tuple[Thread, str]:
    """Open a thread; returns the thread and its bearer token.

    An unverified customer gets a new Customer row (default tier; ``customer_tier`` is
    not taken from them). A verified one (``customer_verified``: the caller checked the
    site's signature of ``customer_external_id``) gets their existing row, created on
    first sight; a signed ``customer_tier`` is stored on it. The token is returned once
    and stored only as a hash. With ``message`` the first customer message is stored too
    (and answered like any other). Broadcasts ``thread.created`` on commit.
    """
    from django.conf import settings

    if customer_verified:
        customer = _verified_customer(
            external_id=customer_external_id,
            name=customer_name,
            email=customer_email,
            tier=customer_tier,
        )
    else:
        customer = Customer.objects.create(
            name=customer_name, email=customer_email, external_id=customer_external_id
        )
    token = token_new()
    thread = Thread.objects.create(
        customer=customer,
        token_hash=token_hash(token),
        subject=subject,
        ai_mode=ai_mode or settings.SUPPORTDESK_AI_MODE,
    )
    Assignment.objects.create(thread=thread, responder=Responder.AI, reason="thread created")
    events.emit("thread.created", thread_id=str(thread.pk), payload={})
    if message is not None:
        customer_message_create(thread=thread, content=message)
    return thread, token


def _verified_customer(*, external_id: str, name: str, email: str, tier: str | None) -> Customer:
    """The one row of a verified ``external_id`` (created on first sight). Unsigned name
    and email only fill blanks: they never overwrite what is stored."""
    if not external_id:
        raise ValueError("a verified customer needs an external_id")
    if tier is not None:
        _check_tier(tier)
    customer = Customer.objects.filter(external_id=external_id, verified=True).first()
    if customer is None:
        fields: dict[str, Any] = {"name": name, "email": email}
        if tier is not None:
            fields["tier"] = tier
        try:
            with transaction.atomic():
                return Customer.objects.create(external_id=external_id, verified=True, **fields)
        except IntegrityError:
            # A concurrent first thread of the same customer created the row.
            customer = Customer.objects.get(external_id=external_id, verified=True)
    changes: dict[str, Any] = {}
    if tier is not None and tier != customer.tier:
        changes["tier"] = tier
    if name and not customer.name:
        changes["name"] = name
    if email and not customer.email:
        changes["email"] = email
    if changes:
        Customer.objects.filter(pk=customer.pk).update(**changes)
        for field, value in changes.items():
            setattr(customer, field, value)
    return customer


def _check_tier(tier: str) -> None:
    from django.conf import settings

    if tier not in settings.SUPPORTDESK_CUSTOMER_TIERS:
        raise InvalidTier(
            f"Unknown tier {tier!r}; use one of {', '.join(settings.SUPPORTDESK_CUSTOMER_TIERS)}."
        )


@transaction.atomic
def customer_set_tier(*, customer: Customer, tier: str) -> Customer:
    """Set a customer's routing tier (staff only: the admin and the desk API call this;
    a customer never can). Raises InvalidTier for a name not in
    SUPPORTDESK_CUSTOMER_TIERS. Broadcasts ``thread.updated`` for the customer's threads
    that are not closed, whose staff view shows the tier."""
    _check_tier(tier)
    if Customer.objects.filter(pk=customer.pk).exclude(tier=tier).update(tier=tier):
        for thread_id in (
            Thread.objects.filter(customer=customer)
            .exclude(status=ThreadStatus.CLOSED)
            .order_by("-updated_at")
            .values_list("pk", flat=True)[:TIER_BROADCAST_THREADS]
        ):
            events.emit("thread.updated", thread_id=str(thread_id), payload={"reason": "updated"})
    customer.tier = tier
    return customer


# A tier change re-broadcasts at most this many of the customer's active threads.
TIER_BROADCAST_THREADS = 50


@transaction.atomic
def customer_message_create(*, thread: Thread, content: str) -> Message:
    """Store a customer's message and hand it to whoever responds next.

    Raises ThreadClosed on a closed thread. A resolved thread reopens. Runs the
    registered ``customer_message_hooks`` inside the same transaction.
    """
    if thread.status == ThreadStatus.CLOSED:
        raise ThreadClosed()
    message = message_create(
        thread=thread,
        role=Role.USER,
        author_kind=AuthorKind.CUSTOMER,
        content=content,
    )
    if thread.status == ThreadStatus.RESOLVED:
        _set_status(thread, ThreadStatus.OPEN)
    for hook in customer_message_hooks:
        hook(message)
    return message


@transaction.atomic
def human_reply_create(*, thread: Thread, user: User, content: str) -> Message:
    """Store a human agent's public reply; on an AI-owned thread it is a takeover.

    The takeover is a conditional update (responder ai → human, assignee = the replier)
    with one Assignment row; if another agent took the thread first, the reply is still
    stored and the thread stays theirs. Raises ThreadClosed on a closed thread.
    Broadcasts ``message.created`` and, on takeover, ``thread.updated``.
    """
    if thread.status == ThreadStatus.CLOSED:
        raise ThreadClosed()
    message = message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.HUMAN,
        author_user=user,
        content=content,
        provider="human",
    )
    now = timezone.now()
    took_over = Thread.objects.filter(pk=thread.pk, responder=Responder.AI).update(
        responder=Responder.HUMAN, assignee=user, updated_at=now
    )
    if not took_over:
        # Human-owned but nobody assigned yet: the replier picks it up.
        took_over = Thread.objects.filter(
            pk=thread.pk, responder=Responder.HUMAN, assignee__isnull=True
        ).update(assignee=user, updated_at=now)
    if took_over:
        Assignment.objects.create(
            thread=thread,
            responder=Responder.HUMAN,
            assignee=user,
            assigned_by=user,
            reason="took over by replying",
        )
    reopened = thread.status in (ThreadStatus.WAITING_ON_HUMAN, ThreadStatus.RESOLVED)
    if reopened:
        Thread.objects.filter(pk=thread.pk).update(status=ThreadStatus.OPEN, updated_at=now)
    thread.refresh_from_db(fields=["responder", "assignee", "status", "updated_at"])
    if took_over or reopened:
        # The desk's and the widget's header follow the thread (a claimed escalation's
        # first reply takes nothing over, but the thread is no longer waiting on a person).
        reason = "takeover" if took_over else "status"
        events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": reason})
    for hook in human_reply_hooks:
        hook(message)
    return message


@transaction.atomic
def internal_note_create(*, thread: Thread, user: User, content: str) -> Message:
    """Store a note visible to staff only; it changes nothing else about the thread."""
    return message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.HUMAN,
        author_user=user,
        content=content,
        provider="human",
        visibility=Visibility.INTERNAL,
    )


@transaction.atomic
def system_notice_create(*, thread: Thread, content: str) -> Message:
    """A short public notice from the system (e.g. "A member of our team will reply")."""
    return message_create(
        thread=thread,
        role=Role.SYSTEM,
        author_kind=AuthorKind.SYSTEM,
        content=content,
        provider="system",
    )


@transaction.atomic
def thread_assign(
    *,
    thread: Thread,
    responder: str,
    assignee: User | None = None,
    assigned_by: User | None = None,
    reason: str = "",
) -> Thread:
    """Set who responds on the thread and append one Assignment row.

    ``responder="ai"`` hands the thread back to the AI (no assignee). The assignee must
    be an active agent (InvalidAssignee otherwise). Broadcasts ``thread.updated``.
    """
    if responder not in Responder.values:
        raise InvalidTransition(f"Unknown responder {responder!r}.")
    if responder == Responder.AI:
        if assignee is not None:
            raise InvalidAssignee("A thread handed to the AI cannot have a human assignee.")
    elif assignee is not None and not user_is_agent(assignee):
        raise InvalidAssignee()
    fields = {"responder": responder, "assignee": assignee, "updated_at": timezone.now()}
    if responder == Responder.AI and thread.status == ThreadStatus.WAITING_ON_HUMAN:
        fields["status"] = ThreadStatus.OPEN
    Thread.objects.filter(pk=thread.pk).update(**fields)
    Assignment.objects.create(
        thread=thread,
        responder=responder,
        assignee=assignee,
        assigned_by=assigned_by,
        reason=reason,
    )
    thread.refresh_from_db()
    events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "assigned"})
    return thread


_STAFF_STATUSES = {ThreadStatus.OPEN, ThreadStatus.RESOLVED, ThreadStatus.CLOSED}


def _set_status(thread: Thread, status: str) -> None:
    now = timezone.now()
    Thread.objects.filter(pk=thread.pk).update(status=status, updated_at=now)
    thread.status = status
    thread.updated_at = now
    events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "status"})


@transaction.atomic
def thread_set_status(*, thread: Thread, status: str, actor: User | None = None) -> Thread:
    """Move the thread to ``open``, ``resolved`` or ``closed`` (staff actions).

    Broadcasts ``thread.updated``. Raises InvalidTransition for any other status.
    """
    if status not in _STAFF_STATUSES:
        raise InvalidTransition(f"Staff cannot set the status {status!r}.")
    if thread.status != status:
        _set_status(thread, status)
    return thread


@transaction.atomic
def thread_update(
    *,
    thread: Thread,
    ai_mode: str | None = None,
    priority: str | None = None,
    subject: str | None = None,
) -> Thread:
    """Change the thread's AI mode, priority or subject. Broadcasts ``thread.updated``."""
    fields: dict[str, Any] = {}
    if ai_mode is not None:
        if ai_mode not in AIMode.values:
            raise InvalidTransition(f"Unknown ai_mode {ai_mode!r}.")
        fields["ai_mode"] = ai_mode
    if priority is not None:
        if priority not in Priority.values:
            raise InvalidTransition(f"Unknown priority {priority!r}.")
        fields["priority"] = priority
    if subject is not None:
        fields["subject"] = subject
    if fields:
        fields["updated_at"] = timezone.now()
        Thread.objects.filter(pk=thread.pk).update(**fields)
        for name, value in fields.items():
            setattr(thread, name, value)
        events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "updated"})
    return thread


@transaction.atomic(savepoint=False)  # all or nothing with its caller: no savepoint needed
def thread_assign_unowned(*, thread: Thread, assignee: User, reason: str = "") -> bool:
    """Hand ``thread`` to the human agent ``assignee`` if nobody holds it and it is not
    closed (the escalations auto-assigner, for one escalation); returns whether it did.

    One conditional UPDATE checked by row count — a human who took the thread over by
    replying in the meantime keeps it — then one Assignment row; ``thread.updated`` is
    broadcast. The assignee must be an active agent (InvalidAssignee otherwise).
    """
    if not user_is_agent(assignee):
        raise InvalidAssignee()
    now = timezone.now()
    won = (
        Thread.objects.filter(pk=thread.pk, assignee__isnull=True)
        .exclude(status=ThreadStatus.CLOSED)
        .update(responder=Responder.HUMAN, assignee=assignee, updated_at=now)
    )
    if not won:
        return False
    thread.responder = Responder.HUMAN
    thread.assignee = assignee
    thread.updated_at = now
    Assignment.objects.create(
        thread=thread, responder=Responder.HUMAN, assignee=assignee, reason=reason[:500]
    )
    events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "assigned"})
    return True


@transaction.atomic(savepoint=False)  # all or nothing with its caller: no savepoint needed
def thread_assign_many(
    *,
    assignments: Sequence[tuple[Thread, User, str]],
    assigned_by: User | None = None,
) -> None:
    """Hand many threads to human agents at once (the escalations auto-assigner).

    Each ``(thread, assignee, reason)`` is what ``thread_assign(responder="human",
    assignee=assignee, reason=reason)`` does — one Assignment row, ``thread.updated``
    broadcast — but in a constant number of queries. Every assignee must be an active
    agent (InvalidAssignee otherwise).
    """
    if not assignments:
        return
    checked: set[Any] = set()
    for _, user, _ in assignments:
        if user.pk not in checked:
            if not user_is_agent(user):
                raise InvalidAssignee()
            checked.add(user.pk)
    now = timezone.now()
    for thread, user, _ in assignments:
        thread.responder = Responder.HUMAN
        thread.assignee = user
        thread.updated_at = now
    Thread.objects.bulk_update(
        [thread for thread, _, _ in assignments], ["responder", "assignee", "updated_at"]
    )
    Assignment.objects.bulk_create(
        [
            Assignment(
                thread=thread,
                responder=Responder.HUMAN,
                assignee=user,
                assigned_by=assigned_by,
                reason=reason[:500],
            )
            for thread, user, reason in assignments
        ]
    )
    for thread, _, _ in assignments:
        events.emit("thread.updated", thread_id=str(thread.pk), payload={"reason": "assigned"})
