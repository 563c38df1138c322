from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from supportdesk.agent.kb_data import ARTICLES
from supportdesk.agent.models import AgentTurn, KnowledgeArticle
from threads.models import AuthorKind, Message, Responder, Thread, ThreadStatus, Visibility

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _debug(settings: Any) -> None:
    # The demo's well-known passwords are only allowed in development.
    settings.DEBUG = True


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


def _demo_thread(external_id: str) -> Thread:
    return Thread.objects.select_related("assignee").get(customer__external_id=external_id)


def test_it_creates_the_demo_agent() -> None:
    _seed()
    agent = get_user_model().objects.get(username="demo-agent")
    assert agent.is_staff
    assert not agent.is_superuser
    assert (agent.first_name, agent.last_name) == ("Alex", "Rivera")
    assert agent.check_password("demo-agent-password")
    assert agent.groups.filter(name="agents").exists()


def test_it_creates_an_admin_superuser() -> None:
    _seed()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password("admin-password")


def test_it_takes_passwords_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("SUPPORTDESK_DEMO_PASSWORD", "agent-secret-from-env")
    monkeypatch.setenv("SUPPORTDESK_ADMIN_PASSWORD", "admin-secret-from-env")
    _seed()
    users = get_user_model().objects
    assert users.get(username="demo-agent").check_password("agent-secret-from-env")
    assert users.get(username="admin").check_password("admin-secret-from-env")


def test_it_keeps_an_existing_admin_untouched() -> None:
    existing = get_user_model().objects.create_superuser("admin", "a@example.com", "mine-123")
    _seed()
    existing.refresh_from_db()
    assert existing.check_password("mine-123")
    assert existing.email == "a@example.com"


def test_it_creates_five_demo_threads() -> None:
    _seed()
    external_ids = sorted(Thread.objects.values_list("customer__external_id", flat=True))
    assert external_ids == [f"demo-{n}" for n in range(1, 6)]


def test_it_numbers_every_thread_without_gaps() -> None:
    _seed()
    for thread in Thread.objects.all():
        seqs = list(
            Message.objects.filter(thread=thread).order_by("seq").values_list("seq", flat=True)
        )
        assert seqs == list(range(1, thread.last_seq + 1)), thread.subject
        assert thread.last_seq >= 1


def test_it_mixes_every_kind_of_author() -> None:
    _seed()
    kinds = set(Message.objects.values_list("author_kind", flat=True))
    assert kinds == set(AuthorKind.values)
    assert Message.objects.filter(visibility=Visibility.INTERNAL).count() == 1


def test_it_labels_ai_replies_with_the_offline_responder() -> None:
    _seed()
    ai_replies = Message.objects.filter(author_kind=AuthorKind.AI)
    assert ai_replies.exists()
    assert set(ai_replies.values_list("provider", "model")) == {("offline", "kb-bm25")}


def test_it_leaves_a_thread_taken_over_by_the_demo_agent() -> None:
    _seed()
    thread = _demo_thread("demo-2")
    assert thread.responder == Responder.HUMAN
    assert thread.assignee is not None
    assert thread.assignee.username == "demo-agent"
    assert thread.assignments.filter(reason="took over by replying").exists()


def test_it_sets_the_demo_statuses() -> None:
    _seed()
    statuses = {
        external_id: _demo_thread(external_id).status
        for external_id in ("demo-1", "demo-2", "demo-3", "demo-4", "demo-5")
    }
    assert statuses == {
        "demo-1": ThreadStatus.RESOLVED,
        "demo-2": ThreadStatus.OPEN,
        "demo-3": ThreadStatus.RESOLVED,
        "demo-4": ThreadStatus.CLOSED,
        "demo-5": ThreadStatus.OPEN,
    }


def test_it_seeds_the_knowledge_base() -> None:
    out = _seed()
    assert KnowledgeArticle.objects.filter(is_published=True).count() == len(ARTICLES)
    assert f"{len(ARTICLES)} knowledge article(s)" in out


def test_it_keeps_the_articles_an_admin_edited() -> None:
    _seed()
    KnowledgeArticle.objects.filter(slug="returns-policy").update(body="Edited.")
    KnowledgeArticle.objects.filter(slug="gift-cards").delete()
    out = _seed()
    assert KnowledgeArticle.objects.get(slug="returns-policy").body == "Edited."
    assert KnowledgeArticle.objects.filter(slug="gift-cards").exists()
    assert "1 knowledge article(s)" in out


def test_it_leaves_only_the_last_question_for_the_ai_worker() -> None:
    _seed()
    turn = AgentTurn.objects.select_related("trigger_message__thread").get()
    assert turn.status == "queued"
    assert turn.trigger_message is not None
    assert turn.trigger_message.thread.customer.external_id == "demo-5"
    assert turn.trigger_message.content.startswith("Do you ship to Canada")


def test_it_changes_nothing_when_run_twice() -> None:
    _seed()
    before = _row_counts()
    _seed()
    assert _row_counts() == before


def test_it_reports_what_it_created() -> None:
    out = _seed()
    assert "user 'demo-agent'" in out
    assert "5 demo thread(s)" in out


def test_it_reports_when_the_demo_data_exists() -> None:
    _seed()
    assert "already exists" in _seed()


def test_it_refuses_default_passwords_when_debug_is_off(settings: Any, monkeypatch: Any) -> None:
    settings.DEBUG = False
    monkeypatch.delenv("SUPPORTDESK_DEMO_PASSWORD", raising=False)
    monkeypatch.delenv("SUPPORTDESK_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError):
        _seed()
    assert not get_user_model().objects.filter(username="admin").exists()
