from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from supportdesk.agent import knowledge
from supportdesk.agent.models import AgentTurn, KnowledgeArticle, ModelCall, WorkerHeartbeat
from supportdesk.agent.worker import sweep_once
from tests.factories import make_thread
from tests.turns import drain

pytestmark = pytest.mark.django_db

READ_ONLY_MODELS = [AgentTurn, ModelCall, WorkerHeartbeat]


@pytest.fixture(autouse=True)
def _offline_ai(settings: Any) -> Iterator[None]:
    # Turns run with the knowledge-base responder: real turns and model calls, no network.
    settings.SUPPORTDESK_LLM = "offline"
    settings.SUPPORTDESK_CLASSIFIER_MODEL = None
    knowledge.clear_cache()
    yield
    knowledge.clear_cache()


def _article(n: int, **fields: Any) -> KnowledgeArticle:
    values: dict[str, Any] = {
        "slug": f"article-{n}",
        "title": f"Article {n}",
        "body": f"Everything about topic {n}.",
    }
    values.update(fields)
    return KnowledgeArticle.objects.create(**values)


def _make_rows(count: int) -> None:
    """``count`` articles, answered threads (a turn and a model call each) and workers."""
    start = KnowledgeArticle.objects.count()
    for n in range(start, start + count):
        _article(n, title=f"Returns policy {n}", body="You can return items within 30 days.")
        make_thread(subject=f"Question {n}", message="How long do I have to return items?")
        sweep_once(f"worker-{n}")
    drain()


def _queries_for(client: Any, url: str) -> int:
    """The number of queries one GET of ``url`` runs (after a warm-up request)."""
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries)


def _url(model: type[Any], view: str, *args: Any) -> str:
    return reverse(f"admin:agent_{model._meta.model_name}_{view}", args=args)


def _article_form(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "Bike rental",
        "slug": "bike-rental",
        "body": "Every Northwind store rents mountain bikes by the day.",
        "tags": "bike, rental, hire",
        "is_published": "on",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


@pytest.mark.parametrize("model", [KnowledgeArticle, *READ_ONLY_MODELS])
def test_it_renders_each_changelist_in_constant_queries(
    admin_client: Any, model: type[Any]
) -> None:
    _make_rows(3)
    with_three = _queries_for(admin_client, _url(model, "changelist"))
    _make_rows(7)
    with_ten = _queries_for(admin_client, _url(model, "changelist"))
    assert with_ten == with_three


@pytest.mark.parametrize("model", [KnowledgeArticle, *READ_ONLY_MODELS])
def test_it_lists_every_row_in_each_changelist(admin_client: Any, model: type[Any]) -> None:
    _make_rows(4)
    response = admin_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    rows = model._default_manager.count()
    assert rows >= 4
    assert response.context["cl"].result_count == rows


def test_it_filters_model_calls_by_provider(admin_client: Any) -> None:
    _make_rows(2)
    response = admin_client.get(_url(ModelCall, "changelist"), {"provider": "offline"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 2
    response = admin_client.get(_url(ModelCall, "changelist"), {"provider": "openai"})
    assert response.context["cl"].result_count == 0


def test_it_shows_a_turn_with_its_model_calls(admin_client: Any) -> None:
    _make_rows(1)
    turn = AgentTurn.objects.get()
    call = ModelCall.objects.get(turn=turn)

    response = admin_client.get(_url(AgentTurn, "change", turn.pk))

    assert response.status_code == 200
    inline = response.context["inline_admin_formsets"][0]
    assert [form.original.pk for form in inline] == [call.pk]
    assert "kb-bm25" in response.content.decode()


def test_it_prepopulates_the_slug_from_the_title(admin_client: Any) -> None:
    response = admin_client.get(_url(KnowledgeArticle, "add"))
    assert response.status_code == 200
    prepopulated = response.context["adminform"].prepopulated_fields
    assert [(p["field"].name, [d.name for d in p["dependencies"]]) for p in prepopulated] == [
        ("slug", ["title"])
    ]


def test_it_adds_an_article_that_search_then_finds(admin_client: Any) -> None:
    assert knowledge.search("rent a mountain bike") == []

    response = admin_client.post(_url(KnowledgeArticle, "add"), _article_form())

    assert response.status_code == 302
    article = KnowledgeArticle.objects.get(slug="bike-rental")
    assert article.is_published
    hits = knowledge.search("can I rent a mountain bike?")
    assert [hit.slug for hit in hits] == ["bike-rental"]


def test_it_sees_an_edited_article_without_a_restart(admin_client: Any) -> None:
    article = _article(1, title="Store hours", body="Stores open at 9 a.m.")
    assert knowledge.search("kayak lessons") == []  # builds and caches the index

    response = admin_client.post(
        _url(KnowledgeArticle, "change", article.pk),
        _article_form(
            title="Store hours",
            slug=article.slug,
            body="Stores open at 9 a.m. and offer kayak lessons on Saturdays.",
        ),
    )

    assert response.status_code == 302
    article.refresh_from_db()
    assert "kayak lessons" in article.body
    assert [hit.slug for hit in knowledge.search("kayak lessons")] == [article.slug]


def test_it_hides_an_unpublished_article_from_search(admin_client: Any) -> None:
    article = _article(1, title="Bike rental", body="Stores rent mountain bikes.")
    assert [hit.slug for hit in knowledge.search("mountain bike")] == [article.slug]

    response = admin_client.post(
        _url(KnowledgeArticle, "change", article.pk),
        _article_form(title=article.title, slug=article.slug, body=article.body, is_published=None),
    )

    assert response.status_code == 302
    article.refresh_from_db()
    assert not article.is_published
    assert knowledge.search("mountain bike") == []


def test_it_refuses_a_duplicate_slug(admin_client: Any) -> None:
    _article(1, slug="bike-rental")
    response = admin_client.post(_url(KnowledgeArticle, "add"), _article_form())
    assert response.status_code == 200
    assert "slug" in response.context["adminform"].form.errors
    assert KnowledgeArticle.objects.count() == 1


def test_it_escapes_article_text_in_the_changelist(admin_client: Any) -> None:
    _article(1, title="<script>alert('x')</script>")
    body = admin_client.get(_url(KnowledgeArticle, "changelist")).content.decode()
    assert "<script>alert(" not in body
    assert "&lt;script&gt;alert(" in body


@pytest.mark.parametrize("model", READ_ONLY_MODELS)
def test_it_does_not_add_runtime_rows(admin_client: Any, model: type[Any]) -> None:
    _make_rows(1)
    before = model._default_manager.count()
    changelist = admin_client.get(_url(model, "changelist"))
    assert changelist.context["has_add_permission"] is False
    assert admin_client.get(_url(model, "add")).status_code == 403
    assert admin_client.post(_url(model, "add"), {}).status_code == 403
    assert model._default_manager.count() == before


def test_it_does_not_change_turns(admin_client: Any) -> None:
    _make_rows(1)
    turn = AgentTurn.objects.get()
    url = _url(AgentTurn, "change", turn.pk)
    assert admin_client.get(url).status_code == 200  # view-only page

    response = admin_client.post(url, {"status": "queued", "attempts": 0, "steps": 0})

    assert response.status_code == 403
    turn.refresh_from_db()
    assert (turn.status, turn.attempts) == ("done", 1)


def test_it_does_not_change_model_calls(admin_client: Any) -> None:
    _make_rows(1)
    call = ModelCall.objects.get()
    url = _url(ModelCall, "change", call.pk)
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"model": "edited", "prompt_tokens": 1})

    assert response.status_code == 403
    call.refresh_from_db()
    assert call.model == "kb-bm25"


def test_it_does_not_change_worker_heartbeats(admin_client: Any) -> None:
    sweep_once("worker-1")
    beat = WorkerHeartbeat.objects.get()
    url = _url(WorkerHeartbeat, "change", beat.pk)
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"turns_swept": 99})

    assert response.status_code == 403
    beat.refresh_from_db()
    assert beat.turns_swept == 0


@pytest.mark.parametrize("model", READ_ONLY_MODELS)
def test_it_does_not_delete_runtime_rows(admin_client: Any, model: type[Any]) -> None:
    _make_rows(1)
    row = model._default_manager.first()
    response = admin_client.post(_url(model, "delete", row.pk), {"post": "yes"})
    assert response.status_code == 403
    assert model._default_manager.filter(pk=row.pk).exists()
