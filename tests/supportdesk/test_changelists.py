"""Admin changelists of large tables (supportdesk.changelists): a capped count, and a date
hierarchy and value filter that read a page of an index rather than the whole table."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals import services as approval_services
from escalations import services as escalation_services
from supportdesk import changelists
from supportdesk.changelists import CappedCountPaginator, CountAtLeast, RecentValuesFilter
from tests.factories import make_thread
from threads import services
from threads.admin import ThreadAdmin
from threads.models import AuthorKind, Message, Role, Thread, Visibility

pytestmark = pytest.mark.django_db

THREADS = "admin:threads_thread_changelist"
MESSAGES = "admin:threads_message_changelist"
# Each large table's changelist, and a filter a supervisor narrows it by.
FILTERS = {
    "admin:threads_thread_changelist": {"status__exact": "open"},
    "admin:threads_message_changelist": {"visibility__exact": "public"},
    "admin:threads_assignment_changelist": {"responder__exact": "ai"},
    "admin:threads_customer_changelist": {"q": "Casey"},
    "admin:escalations_escalation_changelist": {"status__exact": "open"},
    "admin:escalations_humanrequest_changelist": {"status__exact": "pending"},
    "admin:approvals_approvaldraft_changelist": {"status__exact": "pending"},
}
CHANGELISTS = list(FILTERS)
# No filter, the filter, a month of the date hierarchy, a search.
NARROWING = ["all", "filtered", "dated", "searched"]


def _params(name: str, narrowing: str) -> dict[str, str]:
    return {
        "all": {},
        "filtered": FILTERS[name],
        "dated": {"created_at__year": "2025", "created_at__month": "3"},
        "searched": {"q": "tent"},
    }[narrowing]


@pytest.fixture
def cap(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    return 3


def _threads(count: int) -> list[Thread]:
    return [make_thread(subject=f"Tent question {n}")[0] for n in range(count)]


def _rows(count: int) -> None:
    """``count`` threads, each with an escalation, a question to a human and an AI draft."""
    for thread in _threads(count):
        escalation_services.escalation_open(thread=thread, source="tool", reason="tent torn")
        escalation_services.human_request_create(
            thread=thread, turn_id=uuid.uuid4(), question="Refund the tent?", tool_call_id="c1"
        )
        draft = services.message_create(
            thread=thread,
            role=Role.ASSISTANT,
            author_kind=AuthorKind.AI,
            content="We can refund the tent.",
            provider="offline",
            visibility=Visibility.DRAFT,
        )
        approval_services.approval_draft_create(thread=thread, message=draft, confidence=0.5)


def _dated(day: datetime, subject: str = "Tent question") -> Thread:
    thread, _ = make_thread(subject=subject)
    Thread.objects.filter(pk=thread.pk).update(created_at=day)
    return thread


def _sql(client: Any, url: str, params: dict[str, str]) -> list[str]:
    assert client.get(url, params).status_code == 200  # warm-up
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return [q["sql"].upper() for q in captured.captured_queries]


def _hierarchy(response: Any) -> list[str]:
    return [choice["title"] for choice in response.context["cl"].bounded_date_hierarchy["choices"]]


# --- the paginator ------------------------------------------------------------------


def test_it_counts_exactly_up_to_the_cap(cap: int) -> None:
    _threads(3)
    count = CappedCountPaginator(Thread.objects.all(), 2).count
    assert count == 3
    assert type(count) is int


def test_it_stops_counting_past_the_cap(cap: int) -> None:
    _threads(5)
    paginator = CappedCountPaginator(Thread.objects.filter(status="open"), 2)
    assert paginator.count == 3
    assert isinstance(paginator.count, CountAtLeast)
    assert paginator.num_pages == 2


def test_it_reads_at_most_one_row_past_the_cap(cap: int) -> None:
    _threads(5)
    with CaptureQueriesContext(connection) as captured:
        assert CappedCountPaginator(Thread.objects.filter(status="open"), 2).count == 3
    [sql] = [q["sql"] for q in captured.captured_queries]
    assert re.search(r"\bLIMIT 4\b", sql)
    assert "ORDER BY" not in sql


def test_it_counts_the_rows_of_a_distinct_list(cap: int) -> None:
    for thread in _threads(2):
        _message(thread, "offline")
        _message(thread, "openai")
    with_messages = Thread.objects.filter(messages__provider__isnull=False)
    assert CappedCountPaginator(with_messages, 2).count == 3  # 4 joined rows, capped
    assert CappedCountPaginator(with_messages.distinct(), 2).count == 2


def test_it_shows_a_count_past_the_cap_as_at_least_the_cap(cap: int) -> None:
    _threads(5)
    count = CappedCountPaginator(Thread.objects.filter(status="open"), 2).count
    assert str(count) == "3+"
    assert f"{count} threads" == "3+ threads"
    # The admin's "All %(total_count)s selected" is %-formatted.
    assert "%(n)s selected" % {"n": count} == "3+ selected"  # noqa: UP031


def test_it_groups_the_digits_of_a_large_cap() -> None:
    count = CountAtLeast(10_000, f"{changelists._grouped(10_000)}+")
    assert str(count) == "10\u00a0000+"
    assert count + 1 == 10_001


def test_it_shows_postgresqls_estimate_for_an_unfiltered_list(cap: int) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's table statistics")
    _threads(5)
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "threads_thread"')
    with CaptureQueriesContext(connection) as captured:
        count = CappedCountPaginator(Thread.objects.all(), 2).count
    assert count == 3
    assert str(count) == "about 5"
    assert len(captured.captured_queries) == 1  # the count and the estimate together


# --- the changelists ----------------------------------------------------------------


def test_it_shows_the_capped_count_in_the_changelist(
    admin_client: Any, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ThreadAdmin, "list_per_page", 2)
    _threads(5)
    response = admin_client.get(reverse(THREADS), {"status__exact": "open"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 3
    body = response.content.decode()
    assert "3+ threads" in body
    assert "Select all 3+ threads" in body


def test_it_pages_no_further_than_the_cap(
    admin_client: Any, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ThreadAdmin, "list_per_page", 2)
    _threads(5)
    assert admin_client.get(reverse(THREADS), {"p": "2"}).status_code == 200
    response = admin_client.get(reverse(THREADS), {"p": "3"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize("name", CHANGELISTS)
@pytest.mark.parametrize("narrowing", NARROWING)
def test_it_lists_without_an_unbounded_count_or_a_distinct(
    admin_client: Any, name: str, narrowing: str
) -> None:
    _rows(3)
    sql = _sql(admin_client, reverse(name), _params(name, narrowing))
    totals = [q for q in sql if re.match(r"\s*SELECT COUNT\(", q)]
    assert len(totals) == 1  # the paginator's, and no second, unfiltered one
    assert all(re.search(r"\bLIMIT \d+", q) for q in totals)
    assert not [q for q in sql if re.match(r"\s*SELECT DISTINCT", q)]


@pytest.mark.parametrize("name", CHANGELISTS)
def test_it_lists_in_the_same_queries_past_the_cap(admin_client: Any, cap: int, name: str) -> None:
    _rows(2)
    under = len(_sql(admin_client, reverse(name), {}))
    _rows(4)
    over = len(_sql(admin_client, reverse(name), {}))
    assert over == under


# --- the date hierarchy -------------------------------------------------------------


def test_it_offers_every_month_between_the_first_and_the_last_row(admin_client: Any) -> None:
    _dated(datetime(2025, 1, 15, tzinfo=UTC))
    _dated(datetime(2025, 3, 10, tzinfo=UTC))
    response = admin_client.get(reverse(THREADS))
    assert _hierarchy(response) == ["January 2025", "February 2025", "March 2025"]
    assert "created_at__month=2&amp;created_at__year=2025" in response.content.decode()


def test_it_offers_every_year_between_the_first_and_the_last_row(admin_client: Any) -> None:
    _dated(datetime(2023, 6, 1, tzinfo=UTC))
    _dated(datetime(2025, 2, 1, tzinfo=UTC))
    response = admin_client.get(reverse(THREADS))
    assert _hierarchy(response) == ["2023", "2024", "2025"]


def test_it_offers_the_days_of_the_selected_month(admin_client: Any) -> None:
    _dated(datetime(2025, 2, 27, tzinfo=UTC))
    _dated(datetime(2025, 3, 3, tzinfo=UTC))
    _dated(datetime(2025, 3, 5, tzinfo=UTC))
    _dated(datetime(2025, 4, 1, tzinfo=UTC))
    response = admin_client.get(
        reverse(THREADS), {"created_at__year": "2025", "created_at__month": "3"}
    )
    assert _hierarchy(response) == ["March 3", "March 4", "March 5"]
    assert response.context["cl"].result_count == 2


def test_it_bounds_the_hierarchy_by_the_date_alone(admin_client: Any) -> None:
    _dated(datetime(2025, 1, 15, tzinfo=UTC))
    closed = _dated(datetime(2025, 3, 10, tzinfo=UTC))
    Thread.objects.filter(pk=closed.pk).update(status="closed")
    response = admin_client.get(reverse(THREADS), {"status__exact": "open"})
    # The open thread is January's; the months run to the table's last row regardless.
    assert _hierarchy(response) == ["January 2025", "February 2025", "March 2025"]
    assert response.context["cl"].result_count == 1


def test_it_shows_the_selected_day(admin_client: Any) -> None:
    _dated(datetime(2025, 3, 3, tzinfo=UTC))
    response = admin_client.get(
        reverse(THREADS),
        {"created_at__year": "2025", "created_at__month": "3", "created_at__day": "3"},
    )
    assert _hierarchy(response) == ["March 3"]
    assert response.context["cl"].result_count == 1


# --- the recent-values filter -------------------------------------------------------


def _message(thread: Thread, provider: str) -> Message:
    return services.message_create(
        thread=thread,
        role=Role.ASSISTANT,
        author_kind=AuthorKind.AI,
        content="Here is your tracking link.",
        provider=provider,
    )


def _provider_choices(response: Any) -> list[str]:
    [spec] = [s for s in response.context["cl"].filter_specs if isinstance(s, RecentValuesFilter)]
    return list(spec.lookup_choices)


def test_it_offers_the_providers_of_recent_messages(admin_client: Any) -> None:
    thread, _ = make_thread(message="Where is my tent?")
    _message(thread, "offline")
    _message(thread, "openai")
    response = admin_client.get(reverse(MESSAGES))
    assert _provider_choices(response) == ["offline", "openai"]


def test_it_offers_only_the_newest_rows_providers(
    admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelists, "RECENT_VALUES_ROWS", 1)
    thread, _ = make_thread()
    _message(thread, "offline")
    _message(thread, "openai")
    response = admin_client.get(reverse(MESSAGES))
    assert _provider_choices(response) == ["openai"]


def test_it_keeps_the_selected_provider_among_the_choices(
    admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changelists, "RECENT_VALUES_ROWS", 1)
    thread, _ = make_thread()
    offline = _message(thread, "offline")
    _message(thread, "openai")
    response = admin_client.get(reverse(MESSAGES), {"provider": "offline"})
    assert _provider_choices(response) == ["offline", "openai"]
    assert [m.pk for m in response.context["cl"].result_list] == [offline.pk]
