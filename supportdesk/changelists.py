"""Admin changelists that stay fast on large tables (threads, messages, escalations …).

On every page view Django's admin counts the whole filtered table for its paginator,
counts the unfiltered table again for "N total" (``show_full_result_count``), and its date
hierarchy lists the years, months or days that have rows with a ``SELECT DISTINCT`` over
every row in range; facets count every filter choice; a filter on a plain field lists
its values with another ``SELECT DISTINCT``. Each reads the whole table. ``LargeTableAdmin``
(a ``ModelAdmin`` mixin) keeps the changelist's filters, search, ordering and actions and
bounds the rest by the page:

- the paginator counts at most ``COUNT_CAP`` rows; past that the count reads "10 000+",
  or "about N" from PostgreSQL's statistics for an unfiltered list, and the pages stop at
  the cap (filters, search and the date hierarchy narrow the list further);
- no second, unfiltered count; no facets;
- the date hierarchy offers every year, month or day between the first and the last row
  of the selected period (two lookups on the field's index, the other filters left
  out), rather than only those that have rows in the list;
- ``RecentValuesFilter`` lists a plain field's values from the newest rows only.

A changelist is then a constant number of queries that each read about a page of an
index, given an index that matches the admin's ordering (declare the ordering in full,
with a unique last column, so Django does not append ``-pk`` behind the index's back).
"""

from __future__ import annotations

import datetime
from functools import cached_property
from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin.utils import build_q_object_from_lookup_parameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import QuerySet, Value
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

COUNT_CAP = 10_000  # rows a changelist counts exactly; 100 pages at the admin's 100
RECENT_VALUES_ROWS = 500  # newest rows whose values RecentValuesFilter offers


def _grouped(number: int) -> str:
    # A no-break space between groups of three digits: "10 000".
    return f"{number:,}".replace(",", "\u00a0")


class CountAtLeast(int):
    """A count that stopped at a cap: the admin's arithmetic (pages, "show all", "select
    all") sees the cap, templates and messages show ``text`` ("10 000+", "about 98 000")."""

    text: str

    def __new__(cls, value: int, text: str) -> CountAtLeast:
        count = super().__new__(cls, value)
        count.text = text
        return count

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return self.text if not spec else super().__format__(spec)


def _two_figures(number: int) -> int:
    return int(float(f"{number:.2g}"))


class CappedCountPaginator(Paginator):
    """Counts at most ``cap`` rows (``SELECT COUNT(*) FROM (… LIMIT cap + 1)``), so the
    count costs the same on a thousand rows and on ten million. Past the cap the count
    is a ``CountAtLeast`` of the cap, and pages end there. On PostgreSQL an unfiltered
    list also reads the planner's row estimate of the table (``pg_class.reltuples``,
    kept by ANALYZE and autovacuum) in the same query, to show "about N"."""

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        counted, estimate = self._count(queryset)
        if counted <= self.cap:
            return counted
        if estimate is not None and estimate > self.cap:
            return CountAtLeast(self.cap, f"about {_grouped(_two_figures(estimate))}")
        return CountAtLeast(self.cap, f"{_grouped(self.cap)}+")

    def _count(self, queryset: QuerySet[Any]) -> tuple[int, int | None]:
        """The rows of ``queryset`` up to ``cap + 1``, and on PostgreSQL for an unfiltered
        list the planner's estimate of the table's rows, in one query (so a list costs
        as many queries over the cap as under it)."""
        # No ORDER BY: any cap + 1 rows will do. No columns (SELECT 1; not the page's
        # per-row annotations, not even the key): an index on the filtered columns then
        # answers alone, without visiting the table for each row counted.
        rows = queryset.order_by()
        if rows.query.distinct:  # a DISTINCT list counts its distinct keys
            capped = rows.values("pk")[: self.cap + 1]
        else:
            capped = rows.annotate(one=Value(1)).values("one")[: self.cap + 1]
        connection = connections[queryset.db]
        inner, params = capped.query.get_compiler(using=queryset.db).as_sql()
        columns, column_params = "COUNT(*)", []
        if connection.vendor == "postgresql" and not queryset.query.has_filters():
            columns += ", (SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s))"
            column_params = [connection.ops.quote_name(queryset.model._meta.db_table)]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM ({inner}) capped", [*column_params, *params])
            row = cursor.fetchone()
        # reltuples is -1 until the table is first analyzed.
        estimate = int(row[1]) if len(row) > 1 and row[1] is not None and row[1] >= 0 else None
        return int(row[0]), estimate


def date_hierarchy_context(cl: LargeTableChangeList) -> dict[str, Any]:
    """What ``admin/date_hierarchy.html`` shows for ``cl``: the periods between the
    first and the last row in the selected year, month or day (two lookups on the
    field's index), where Django's own tag runs a ``SELECT DISTINCT`` over every row of
    the list to offer only periods that have rows. The other filters are left out of the
    lookups, which would otherwise let a planner read a filter's index and sort what it
    finds: so a period without rows (in the list, or at all) can be offered."""
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field_name}__{p}" for p in ("year", "month", "day"))
    year_lookup = cl.params.get(year_field)
    month_lookup = cl.params.get(month_field)
    day_lookup = cl.params.get(day_field)

    def link(filters: dict[str, Any]) -> str:
        return str(cl.get_query_string(filters, [f"{field_name}__"]))

    def as_date(value: Any) -> datetime.date:
        if isinstance(value, datetime.datetime):
            if timezone.is_aware(value):
                value = timezone.localtime(value)
            return value.date()
        return value  # type: ignore[no-any-return]

    span: tuple[datetime.date, datetime.date] | None = None

    def first_and_last() -> tuple[datetime.date, datetime.date] | None:
        dated = cl.root_queryset.filter(
            build_q_object_from_lookup_parameters(cl.date_hierarchy_lookups),
            **{f"{field_name}__isnull": False},
        )
        first = dated.order_by(field_name).values_list(field_name, flat=True).first()
        if first is None:
            return None
        last = dated.order_by(f"-{field_name}").values_list(field_name, flat=True).first()
        return as_date(first), as_date(last)

    if not (year_lookup or month_lookup or day_lookup):
        span = first_and_last()
        if span is not None and span[0].year == span[1].year:
            year_lookup = span[0].year
            if span[0].month == span[1].month:
                month_lookup = span[0].month

    if year_lookup and month_lookup and day_lookup:
        day = datetime.date(int(year_lookup), int(month_lookup), int(day_lookup))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year_lookup, month_field: month_lookup}),
                "title": capfirst(formats.date_format(day, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(day, "MONTH_DAY_FORMAT"))}],
        }
    if span is None:
        span = first_and_last()
    first, last = span if span is not None else (None, None)
    if year_lookup and month_lookup:
        year, month = int(year_lookup), int(month_lookup)
        days = range(first.day, last.day + 1) if first and last else range(0)
        return {
            "show": True,
            "back": {"link": link({year_field: year_lookup}), "title": str(year_lookup)},
            "choices": [
                {
                    "link": link(
                        {year_field: year_lookup, month_field: month_lookup, day_field: d}
                    ),
                    "title": capfirst(
                        formats.date_format(datetime.date(year, month, d), "MONTH_DAY_FORMAT")
                    ),
                }
                for d in days
            ],
        }
    if year_lookup:
        year = int(year_lookup)
        months = range(first.month, last.month + 1) if first and last else range(0)
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year_lookup, month_field: m}),
                    "title": capfirst(
                        formats.date_format(datetime.date(year, m, 1), "YEAR_MONTH_FORMAT")
                    ),
                }
                for m in months
            ],
        }
    years = range(first.year, last.year + 1) if first and last else range(0)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in years],
    }


class LargeTableChangeList(ChangeList):
    """A changelist whose date hierarchy does not scan (``date_hierarchy_context``);
    ``templates/admin/change_list.html`` renders it in place of Django's tag."""

    # The selected year, month or day as Django turns it into a range on the field.
    date_hierarchy_lookups: dict[str, Any] = {}

    def get_filters(self, request: HttpRequest) -> Any:
        filters = super().get_filters(request)
        if self.date_hierarchy:
            lookup_params = filters[2]
            self.date_hierarchy_lookups = {
                key: lookup_params[key]
                for key in (f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt")
                if key in lookup_params
            }
        return filters

    @cached_property
    def bounded_date_hierarchy(self) -> dict[str, Any] | None:
        return date_hierarchy_context(self) if self.date_hierarchy else None


class RecentValuesFilter(admin.AllValuesFieldListFilter):
    """``AllValuesFieldListFilter`` that offers the values of the newest
    ``RECENT_VALUES_ROWS`` rows (in the admin's ordering, so read from its index) and the
    selected one, instead of a ``SELECT DISTINCT`` over the whole table."""

    def __init__(
        self,
        field: models.Field[Any, Any],
        request: HttpRequest,
        params: dict[str, Any],  # Django passes lists of values
        model: type[models.Model],
        model_admin: admin.ModelAdmin[Any],
        field_path: str,
    ) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        newest = (
            model_admin.get_queryset(request)
            .order_by(*model_admin.get_ordering(request))
            .values_list(field.name, flat=True)[:RECENT_VALUES_ROWS]
        )
        values = {value for value in newest if value is not None}
        if self.lookup_val:
            values.update(self.lookup_val)
        self.lookup_choices = sorted(values)  # type: ignore[assignment]


class LargeTableAdmin:
    """``ModelAdmin`` mixin for tables that grow with the traffic (see the module's
    docstring): a capped count, no full count, no facets, a date hierarchy that does not
    scan."""

    paginator: ClassVar[type] = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LargeTableChangeList
