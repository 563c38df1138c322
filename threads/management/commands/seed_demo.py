"""``manage.py seed_demo``: demo users, the knowledge base and a handful of support threads.

The threads are conversations with customers of Northwind Outfitters, the fictional
outdoor-gear retailer of the demo knowledge base (``supportdesk.agent.kb_data``); what the
AI and the agent tell customers matches its policies. Everything is written through
``threads.services``, as the API would. The command is idempotent: users are found by
username, articles by slug (``knowledge_seed``) and demo threads by their customer's fixed
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

from supportdesk.agent.kb_data import knowledge_seed
from threads import services
from threads.models import AuthorKind, Priority, Responder, Role, Thread, ThreadStatus

DEMO_AGENT_USERNAME = "demo-agent"
ADMIN_USERNAME = "admin"
AGENTS_GROUP = "agents"
AI_PROVIDER = "offline"
AI_MODEL = "kb-bm25"


class Command(BaseCommand):
    help = (
        "Create the demo agent, an admin user, the knowledge base and a few demo threads "
        "(idempotent)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.created: list[str] = []
        agent = self.ensure_demo_agent()
        self.ensure_admin()
        articles = knowledge_seed()
        if articles:
            self.created.append(f"{articles} knowledge article(s)")
        demo_threads = [
            ("demo-1", "Returning hiking boots that don't fit", self.seed_boot_return),
            ("demo-2", "Tent arrived with a broken pole", self.seed_damaged_tent),
            ("demo-3", "Still waiting for my refund", self.seed_refund_timing),
            ("demo-4", "How do I wash my down jacket?", self.seed_down_jacket_care),
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

    def seed_boot_return(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Maya Chen", "maya.chen@example.com")
        self.customer(
            thread,
            "Hi! My Ridgeline hiking boots (order NW10482) arrived last week. I've only "
            "tried them on at home, but they pinch at the toes. Can I still send them back?",
        )
        self.ai(
            thread,
            "Yes, Maya: you can return them within 30 days of delivery. Boots must only "
            "have been tried on indoors and go back in their original box. Go to Account → "
            "Orders, choose Return items, print the free prepaid label and drop the parcel "
            "at any UPS location. If you'd rather have a bigger size, choose Exchange "
            "instead: exchanges are free, and we ship the new pair as soon as the carrier "
            "scans your return.",
        )
        self.customer(thread, "I'll exchange them for half a size up then. Thanks!")
        self.ai(
            thread,
            "Good choice: half a size up usually fits best with thick hiking socks. Enjoy "
            "the trail!",
        )
        services.thread_set_status(thread=thread, status=ThreadStatus.RESOLVED)

    def seed_damaged_tent(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Jordan Patel", "jordan.p@example.com")
        services.thread_update(thread=thread, priority=Priority.HIGH)
        self.customer(
            thread,
            "My Summit 2 tent (order NW10377) arrived yesterday with one of the poles "
            "snapped in two. We leave on a camping trip next Friday.",
        )
        self.ai(
            thread,
            "I'm sorry it arrived damaged, Jordan. Please report it within 14 days of "
            "delivery from Account → Orders → Report a problem, with photos of the pole "
            "and of the shipping box. We then send a free replacement or a full refund, "
            "whichever you prefer, and in most cases you don't need to send the tent back.",
        )
        self.customer(
            thread,
            "Photos are uploaded; the box was crushed on one corner too. A replacement, "
            "please: I need it before the trip.",
        )
        services.system_notice_create(
            thread=thread, content="A member of our team will take it from here."
        )
        services.internal_note_create(
            thread=thread,
            user=agent,
            content="Photos confirm transit damage. Replacement is within policy, no return "
            "needed. Upgraded to expedited at no charge because of the trip; filing a "
            "carrier claim separately.",
        )
        services.human_reply_create(
            thread=thread,
            user=agent,
            content="Hi Jordan, I'm Alex. Thanks for the photos. A replacement tent ships "
            "today by expedited shipping at no cost to you, so it should arrive within 2–3 "
            "business days, well before Friday. You don't need to send the damaged one "
            "back; the tracking number is on its way by email.",
        )
        self.customer(thread, "That was quick, thank you Alex!")

    def seed_refund_timing(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Sam Okafor", "sam.okafor@example.com")
        self.customer(
            thread,
            "I returned a rain jacket and UPS says it was delivered to you 8 days ago, but "
            "I still haven't got my refund.",
        )
        self.ai(
            thread,
            "Thanks for checking, Sam. We process a refund within 3 business days of the "
            "return arriving at our warehouse and email you when it's done; your bank or "
            "card issuer then takes 5–10 business days to show it on your statement. "
            "Refunds always go back to the original payment method.",
        )
        self.customer(thread, "I never got that email. Can someone check it actually arrived?")
        services.human_reply_create(
            thread=thread,
            user=agent,
            content="Hi Sam, Alex here. Your return for order NW10291 arrived safely, and "
            "we refunded $129.00 to your Visa card 5 days ago. The confirmation went to an "
            "old email address on the order, which I've now updated. Your bank should show "
            "the refund within 5–10 business days of that date.",
        )
        services.thread_assign(
            thread=thread,
            responder=Responder.AI,
            assigned_by=agent,
            reason="refund confirmed; the AI can handle follow-ups",
        )
        self.customer(thread, "That explains it, thanks.")
        self.ai(thread, "Glad that's cleared up! Anything else I can help with?")
        services.thread_set_status(thread=thread, status=ThreadStatus.RESOLVED, actor=agent)

    def seed_down_jacket_care(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Lena Fischer", "lena.fischer@example.com")
        self.customer(
            thread,
            "My down jacket has gone flat after a winter of use. Can I put it in the "
            "washing machine?",
        )
        self.ai(
            thread,
            "Yes, and washing usually brings the loft back. Use a front-loading machine on "
            "a gentle cycle at 30 °C (86 °F) with a down-specific wash, never regular "
            "detergent or fabric softener. Tumble dry on low heat with two or three clean "
            "tennis balls for 2–3 hours, until no clumps are left, and store it loosely in "
            "a large breathable bag rather than compressed in its stuff sack.",
        )
        self.customer(thread, "Worked like a charm, it's puffy again. Thanks!")
        services.thread_set_status(thread=thread, status=ThreadStatus.CLOSED, actor=agent)

    def seed_unanswered_question(self, external_id: str, subject: str, agent: Any) -> None:
        thread = self.open_thread(external_id, subject, "Noah Tremblay", "noah.t@example.com")
        # The one live message: with the AI worker running, it gets answered for real.
        services.customer_message_create(
            thread=thread,
            content="Do you ship to Canada, and are duties included in the price?",
        )
