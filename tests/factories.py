from __future__ import annotations

from typing import TYPE_CHECKING, Any

import factory
from django.contrib.auth import get_user_model

from threads import services
from threads.models import Customer, Thread

if TYPE_CHECKING:
    from approvals.models import ApprovalDraft


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"agent{n}")
    first_name = factory.Sequence(lambda n: f"Agent{n}")
    last_name = "Smith"
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    is_active = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-123")

    @factory.post_generation
    def _save(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


def make_thread(**kwargs: Any) -> tuple[Thread, str]:
    """A thread made through the service, as the API would; returns (thread, token)."""
    kwargs.setdefault("customer_name", "Casey Customer")
    return services.thread_create(**kwargs)


def make_pending_draft(content: str = "Proposed reply") -> ApprovalDraft:
    """A draft-mode thread with the AI's reply waiting for approval, through the services."""
    from approvals import services as approval_services

    thread, _ = make_thread(ai_mode="draft")
    message = services.message_create(
        thread=thread, role="assistant", author_kind="ai", content=content, visibility="draft"
    )
    return approval_services.approval_draft_create(thread=thread, message=message)
