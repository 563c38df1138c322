"""``manage.py seed_demo``: demo users and a handful of realistic support threads.

Everything is written through ``threads.services``, as the API would. The command is
idempotent: users are found by username and demo threads by their customer's fixed
``external_id`` (``demo-1`` …) and subject, so a second run creates nothing.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from threads import services
from threads.models import AuthorKind, Priority, Responder, Role, Thread, ThreadStatus

DEMO_AGENT_USERNAME = "demo-agent"
ADMIN_USERNAME = "admin"
AGENTS_GROUP = "agents"
AI_PROVIDER = "offline"
AI_MODEL = "kb-bm25"


class Command(BaseCommand):
    help = "Create the demo agent, an admin user and a few demo threads (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.created: list[str] = []
        agent = self.ensure_demo_agent()
        self.ensure_admin()
        demo_threads = [
            ("demo-1", "Where is my order #10482?", self.seed_order_status),
            ("demo-2", "Blender arrived damaged", self.seed_damaged_item),
            ("demo-3", "Can't log in after resetting my password", self.seed_login_problem),
            ("demo-4", "Update my billing address", self.seed_billing_address),
            ("demo-5", "Do you ship to Canada?", self.seed_unanswered_question),
        ]
        threads_created = 0
        for external_id, subject, seed in demo_threads:
            if Thread.objects.filter(customer__external_id=external_id, subject=subject).exists():
                continue
            # One thread per transaction: an interrupted run leaves no half-told story
            # that the existence check above would then mistake for a finished one.
            with transaction.atomic():
                seed(external_id, subject, agent)
            threads_created += 1
        if threads_created:
            self.created.append(f"{threads_created} demo thread(s)")
        if self.created:
            self.stdout.write(self.style.SUCCESS("Created " + ", ".join(self.created) + "."))
        else:
            self.stdout.write("The demo data already exists; nothing to do.")

    # Users

    def ensure_demo_agent(self) -> Any:
        User = get_user_model()
        agent = User.objects.filter(username=DEMO_AGENT_USERNAME).first()
        if agent is None:
            agent = User.objects.create_user(
                username=DEMO_AGENT_USERNAME,
                email="demo-agent@example.com",
                password=self.password("SUPPORTDESK_DEMO_PASSWORD", "demo-agent-password"),
                first_name="Alex",
                last_name="Rivera",
                is_staff=True,
            )
            self.created.append(f"user {DEMO_AGENT_USERNAME!r}")
        group, group_created = Group.objects.get_or_create(name=AGENTS_GROUP)
        if group_created:
            self.created.append(f"group {AGENTS_GROUP!r}")
        if not group.user_set.filter(pk=agent.pk).exists():
            group.user_set.add(agent)
        return agent

    def ensure_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(username=ADMIN_USERNAME).exists():
            return
        User.objects.create_superuser(
            username=ADMIN_USERNAME,
            email="admin@example.com",
            password=self.password("SUPPORTDESK_ADMIN_PASSWORD", "admin-password"),
        )
        self.created.append(f"superuser {ADMIN_USERNAME!r}")

    def password(self, variable: str, default: str) -> str:
        value = os.environ.get(variable)
        if value:
            return value
        if not settings.DEBUG:
            # A well-known password on a production superuser is an open door.
            raise CommandError(f"{variable} must be set to seed the demo users when DEBUG is off.")
        self.stderr.write(f"{variable} is not set; using the well-known demo password.")
        return default

    # Threads: one method per conversation

    def open_thread(self, external_id: str, subject: str, name: str, email: str) -> Thread:
        thread, _token = services.thread_create(
            customer_name=name,
            customer_email=email,
            customer_external_id=external_id,
            subject=subject,
        )
        return thread

    def customer(self, thread: Thread, content: str) -> None:
        # Past customer messages are stored without the customer_message_create hooks:
        # their replies are part of the script, and a live AI turn would answer again.
        services.message_create(
            thread=thread, role=Role.USER, author_kind=AuthorKind.CUSTOMER, content=content
        )

    def ai(self, thread: Thread, content: str) -> None:
        services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content=content,
            provider=AI_PROVIDER,
            model=AI_MODEL,
        )

    def seed_order_status(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Maya Chen", "maya.chen@example.com")
        self.customer(
            thread,
            "Hi, I ordered a pair of running shoes last Monday (order #10482) and the "
            "tracking page hasn't changed in three days. Is it lost?",
        )
        self.ai(
            thread,
            "Sorry for the wait, Maya. Order #10482 left our warehouse on Tuesday and is "
            "with the carrier. Tracking often pauses while a parcel is between depots; "
            "the estimated delivery is this Friday. If it hasn't moved by Saturday, reply "
            "here and we'll open a trace with the carrier.",
        )
        self.customer(thread, "Great, thanks for checking!")
        self.ai(thread, "You're welcome! Enjoy the new shoes.")
        services.thread_set_status(thread=thread, status=ThreadStatus.RESOLVED)

    def seed_damaged_item(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Jordan Patel", "jordan.p@example.com")
        services.thread_update(thread=thread, priority=Priority.HIGH)
        self.customer(
            thread,
            "My blender (order #10377) arrived with a cracked jug. I'd like a refund, not "
            "a replacement.",
        )
        self.ai(
            thread,
            "I'm sorry it arrived damaged, Jordan. Could you send a photo of the crack and "
            "of the shipping box? That lets us process the refund without a return.",
        )
        self.customer(thread, "Photos are uploaded to the order page. Box was crushed too.")
        services.system_notice_create(
            thread=thread, content="A member of our team will take it from here."
        )
        services.internal_note_create(
            thread=thread,
            user=agent,
            content="Photos confirm transit damage. Full refund is within policy; no return "
            "needed. Filing a carrier claim separately.",
        )
        services.human_reply_create(
            thread=thread,
            user=agent,
            content="Hi Jordan, I'm Alex. Thanks for the photos: I've issued a full refund of "
            "$89.00 to your card, and you don't need to send the blender back. You should see "
            "it within 3 to 5 business days.",
        )
        self.customer(thread, "That was quick, thank you Alex!")

    def seed_login_problem(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Sam Okafor", "sam.okafor@example.com")
        self.customer(
            thread,
            "I reset my password this morning but the app still says 'invalid credentials'.",
        )
        self.ai(
            thread,
            "Let's sort that out. Please sign out on every device, clear the app's cache, "
            "and sign in with the new password. Reset links also expire after 30 minutes, "
            "so if the reset page showed an error, request a fresh link.",
        )
        self.customer(thread, "Tried all of that. Still locked out.")
        services.human_reply_create(
            thread=thread,
            user=agent,
            content="Hi Sam, Alex here. Your account was locked after several failed "
            "attempts; I've unlocked it. Please try once more with the new password.",
        )
        services.thread_assign(
            thread=thread,
            responder=Responder.AI,
            assigned_by=agent,
            reason="account unlocked; the AI can handle follow-ups",
        )
        self.customer(thread, "It works now, thanks.")
        self.ai(thread, "Glad you're back in! Anything else I can help with?")
        services.thread_set_status(thread=thread, status=ThreadStatus.RESOLVED, actor=agent)

    def seed_billing_address(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Lena Fischer", "lena.fischer@example.com")
        self.customer(thread, "I moved. How do I change the billing address on my account?")
        self.ai(
            thread,
            "You can change it under Account → Billing → Address. The new address applies "
            "from your next invoice; invoices already issued keep the old one.",
        )
        self.customer(thread, "Done, found it. Thanks.")
        services.thread_set_status(thread=thread, status=ThreadStatus.CLOSED, actor=agent)

    def seed_unanswered_question(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Noah Tremblay", "noah.t@example.com")
        # The one live message: with the AI worker running, it gets answered for real.
        services.customer_message_create(
            thread=thread,
            content="Do you ship to Canada, and are duties included in the price?",
        )
