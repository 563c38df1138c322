"""Custom admin pages for supervisors: a thread's conversation (transcript with reply,
approve, reject and answer forms) and the dashboard. Wired into the Thread admin's
``get_urls`` (threads/admin.py).

The forms validate with the REST API's own input serializers (the same limits and
character rules) and act through the services, so an admin decision is the same single,
race-safe transition as one made on the desk; every POST redirects back (post/redirect/get).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.text import Truncator
from rest_framework import serializers

from approvals import services as approval_services
from approvals.api import approval_queryset
from approvals.models import ApprovalDraft, DraftStatus
from approvals.serializers import ApproveInputSerializer, RejectInputSerializer
from escalations import selectors as escalation_selectors
from escalations import services as escalation_services
from escalations.models import EscalationSource, HumanRequest, HumanRequestStatus
from escalations.serializers import AnswerInputSerializer
from supportdesk.desk import charts, dashboard, selectors
from threads import selectors as thread_selectors
from threads import services as thread_services
from threads.exceptions import DomainError
from threads.models import Thread
from threads.serializers import ReplyInputSerializer

TRANSCRIPT_PAGE = 200
# Short names for the dashboard's "By source" line (the desk's wording, shortened).
SOURCE_LABELS: dict[str, str] = {
    EscalationSource.TOOL.value: "AI escalated",
    EscalationSource.LOW_CONFIDENCE.value: "AI not confident",
    EscalationSource.REQUIRES_HUMAN.value: "AI said a person must answer",
    EscalationSource.CUSTOMER_REQUEST.value: "customer asked",
    EscalationSource.CLASSIFIER.value: "classifier",
    EscalationSource.AI_FAILURE.value: "AI failed",
    EscalationSource.STAFF.value: "staff",
}
AI_COLOR = "#0b5cad"
HUMAN_COLOR = "#1a7f37"
CUSTOMER_COLOR = "#8c959f"
SYSTEM_COLOR = "#b08800"
ALERT_COLOR = "#b42318"


def thread_admin_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The extra URLs of the Thread admin (listed before its own catch-all patterns)."""
    site = model_admin.admin_site
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"

    def conversation(request: HttpRequest, object_id: Any) -> HttpResponse:
        return conversation_view(model_admin, request, object_id)

    def board(request: HttpRequest) -> HttpResponse:
        return dashboard_view(model_admin, request)

    return [
        path("dashboard/", site.admin_view(board), name=f"{prefix}_dashboard"),
        path(
            "<uuid:object_id>/conversation/",
            site.admin_view(conversation),
            name=f"{prefix}_conversation",
        ),
    ]


# --- Conversation ---------------------------------------------------------------------


def _can(request: HttpRequest, action: str, model: type[Model]) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def _first_error(serializer: serializers.Serializer) -> str:
    for field, errors in serializer.errors.items():
        text = " ".join(str(error) for error in errors)
        return text if field == "non_field_errors" else f"{field}: {text}"
    return "Invalid input."


def _act(request: HttpRequest, data: Any) -> str | None:
    """Run the POSTed action through its service; the error text, or None on success."""
    action = request.POST.get("action")
    thread = data["thread"]
    if action == "reply":
        if not _can(request, "change", Thread):
            raise PermissionDenied
        reply = ReplyInputSerializer(
            data={
                "content": request.POST.get("content", ""),
                "internal": request.POST.get("internal") == "on",
            }
        )
        if not reply.is_valid():
            return _first_error(reply)
        content = reply.validated_data["content"]
        if reply.validated_data["internal"]:
            thread_services.internal_note_create(thread=thread, user=request.user, content=content)
            messages.success(request, "Internal note added.")
        else:
            thread_services.human_reply_create(thread=thread, user=request.user, content=content)
            messages.success(request, "Reply sent to the customer.")
        return None
    if action in ("approve", "reject"):
        if not _can(request, "change", ApprovalDraft):
            raise PermissionDenied
        draft_id = _uuid(request.POST.get("draft"))
        drafts = approval_queryset().filter(thread=thread)
        draft = drafts.filter(pk=draft_id).first() if draft_id else None
        if draft is None:
            return "That draft no longer exists."
        if action == "approve":
            edited = request.POST.get("content")
            if edited is not None:
                # Browsers send a textarea's line breaks as CRLF.
                edited = edited.replace("\r\n", "\n")
            body = {} if edited is None or edited == draft.content else {"content": edited}
            approve = ApproveInputSerializer(data=body)
            if not approve.is_valid():
                return _first_error(approve)
            approval_services.approval_approve(
                draft=draft, user=request.user, content=approve.validated_data.get("content")
            )
            messages.success(request, "Approved and sent" + (" with your edit." if body else "."))
            return None
        reject = RejectInputSerializer(
            data={"review": request.POST.get("review", ""), "next": request.POST.get("next")}
        )
        if not reject.is_valid():
            return _first_error(reject)
        approval_services.approval_reject(
            draft=draft,
            user=request.user,
            review=reject.validated_data["review"],
            next_action=reject.validated_data["next"],
        )
        messages.success(request, "Draft rejected.")
        return None
    if action == "answer":
        if not _can(request, "change", HumanRequest):
            raise PermissionDenied
        question_id = _uuid(request.POST.get("question"))
        questions = escalation_selectors.human_request_list().filter(thread=thread)
        question = questions.filter(pk=question_id).first() if question_id else None
        if question is None:
            return "That question no longer exists."
        answer = AnswerInputSerializer(data={"answer": request.POST.get("answer", "")})
        if not answer.is_valid():
            return _first_error(answer)
        escalation_services.human_request_answer(
            request=question, user=request.user, answer=answer.validated_data["answer"]
        )
        messages.success(request, "Answer sent; the AI continues.")
        return None
    return "Unknown action."


def conversation_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: Any
) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    thread = selectors.staff_thread(object_id)
    if thread is None:
        raise Http404("No such thread.")
    here = reverse(
        f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_conversation",
        args=[thread.pk],
    )
    if request.method == "POST":
        try:
            error = _act(request, {"thread": thread})
        except DomainError as domain_error:  # already decided, thread closed, …
            error = domain_error.message
        if error:
            messages.error(request, error)
        return HttpResponseRedirect(here)

    before = _positive_int(request.GET.get("before"))
    rows, has_older = thread_selectors.message_list_before(
        thread=thread,
        before=before or thread.last_seq + 1,
        after=0,
        limit=TRANSCRIPT_PAGE,
        public_only=False,
    )
    drafts = approval_queryset().filter(thread=thread, status=DraftStatus.PENDING)
    questions = escalation_selectors.human_request_list().filter(
        thread=thread, status=HumanRequestStatus.PENDING
    )
    escalations = escalation_selectors.escalation_list().filter(thread=thread)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Conversation: {Truncator(str(thread)).chars(80)}",
        "subtitle": None,
        "thread": thread,
        "older_url": f"{here}?before={rows[0].seq}" if has_older and rows else None,
        "newest_url": here if before else None,
        "drafts": list(drafts.order_by("created_at")),
        "questions": list(questions.order_by("created_at")),
        "escalations": list(escalations.order_by("-created_at")[:5]),
        "assignments": list(thread_selectors.assignment_list(thread=thread).order_by("id")),
        "entries": _entries(thread, rows),
        "can_reply": _can(request, "change", Thread),
        "can_decide": _can(request, "change", ApprovalDraft),
        "can_answer": _can(request, "change", HumanRequest),
        "change_url": reverse(
            f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}_change",
            args=[thread.pk],
        ),
        "desk_url": reverse("desk-thread", args=[thread.pk]),
    }
    return TemplateResponse(request, "admin/threads/thread/conversation.html", context)


def _entries(thread: Thread, rows: list[Any]) -> list[dict[str, Any]]:
    """Each message with the routing decisions of the turns it triggered."""
    turns: dict[int, list[dict[str, Any]]] = {}
    if rows:
        lines = selectors.turn_lines(thread=thread, after=rows[0].seq - 1, before=rows[-1].seq + 1)
        for line in lines:
            turns.setdefault(line["seq"], []).append(line)
    return [{"message": row, "turns": turns.get(row.seq, [])} for row in rows]


def _uuid(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw or "")
    except ValueError:
        return None


def _positive_int(raw: str | None) -> int | None:
    if raw and raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) < 2**31:
        return int(raw)
    return None


# --- Dashboard ------------------------------------------------------------------------


def dashboard_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    raw = request.GET.get("days", "")
    days = int(raw) if raw.isdigit() and int(raw) in dashboard.WINDOWS else dashboard.DEFAULT_DAYS
    board = dashboard.build(days=days)
    labels = board.days
    messages_chart = charts.bar_chart(
        chart_id="chart-messages",
        title="Public messages per day",
        labels=labels,
        series=[
            charts.Series("Customer", board.messages["customer"], CUSTOMER_COLOR),
            charts.Series("AI", board.messages["ai"], AI_COLOR),
            charts.Series("Human agents", board.messages["human"], HUMAN_COLOR),
            charts.Series("System notices", board.messages["system"], SYSTEM_COLOR),
        ],
    )
    cards: list[dict[str, Any]] = [
        {
            "id": "messages",
            "title": "Messages per day",
            "chart": messages_chart,
            "rows": _rows(
                labels, board.messages["customer"], board.messages["ai"], board.messages["human"]
            ),
            "columns": ["Customer", "AI", "Human"],
        },
        {
            "id": "escalations",
            "title": "Escalations per day",
            "chart": charts.bar_chart(
                chart_id="chart-escalations",
                title="Escalations per day",
                labels=labels,
                series=[charts.Series("Escalations", board.escalations, ALERT_COLOR)],
            ),
            "rows": _rows(labels, board.escalations),
            "columns": ["Escalations"],
        },
        {
            "id": "handled",
            "title": "New threads: handled by the AI alone vs. by people",
            "share": charts.share_bar(
                chart_id="share-handled",
                title="Share of new threads",
                parts=[
                    ("AI alone", sum(board.threads_ai), AI_COLOR),
                    ("People involved", sum(board.threads_human), HUMAN_COLOR),
                ],
            ),
            "chart": charts.bar_chart(
                chart_id="chart-handled",
                title="New threads per day by who handled them",
                labels=labels,
                series=[
                    charts.Series("AI alone", board.threads_ai, AI_COLOR),
                    charts.Series("People involved", board.threads_human, HUMAN_COLOR),
                ],
            ),
            "rows": _rows(labels, board.threads_ai, board.threads_human),
            "columns": ["AI alone", "People involved"],
        },
        {
            "id": "approvals",
            "title": "Draft decisions per day",
            "chart": charts.bar_chart(
                chart_id="chart-approvals",
                title="Approved and rejected drafts per day",
                labels=labels,
                series=[
                    charts.Series("Approved", board.approved, HUMAN_COLOR),
                    charts.Series("Rejected", board.rejected, ALERT_COLOR),
                ],
            ),
            "rows": _rows(labels, board.approved, board.rejected),
            "columns": ["Approved", "Rejected"],
        },
    ]
    if board.sla_breaches is not None:
        cards.append(
            {
                "id": "sla",
                "title": "SLA breaches per day",
                "chart": charts.bar_chart(
                    chart_id="chart-sla",
                    title="SLA breaches per day",
                    labels=labels,
                    series=[charts.Series("Breaches", board.sla_breaches, ALERT_COLOR)],
                ),
                "rows": _rows(labels, board.sla_breaches),
                "columns": ["Breaches"],
            }
        )
    cards += [
        {
            "id": "cost",
            "title": "LLM cost per day (USD)",
            "chart": charts.bar_chart(
                chart_id="chart-cost",
                title="LLM cost per day in US dollars",
                labels=labels,
                series=[charts.Series("LLM cost", board.cost, AI_COLOR)],
                fmt=_money,
            ),
            "rows": _rows(labels, [_money(v) for v in board.cost]),
            "columns": ["USD"],
        },
        {
            "id": "handle",
            "title": "Human time per day (minutes)",
            "chart": charts.bar_chart(
                chart_id="chart-handle",
                title="Human handle time and active reply time per day, in minutes",
                labels=labels,
                series=[
                    charts.Series("Escalation handle time", board.handle_minutes, HUMAN_COLOR),
                    charts.Series("Active reply time", board.active_minutes, "#4ac26b"),
                ],
                stacked=False,
            ),
            "rows": _rows(labels, board.handle_minutes, board.active_minutes),
            "columns": ["Handle min", "Active min"],
        },
    ]
    decided = sum(board.approved) + sum(board.rejected)
    totals = [
        ("Customer messages", str(sum(board.messages["customer"]))),
        ("AI replies", str(sum(board.messages["ai"]))),
        ("Human replies", str(sum(board.messages["human"]))),
        ("Escalations", str(sum(board.escalations))),
        ("Handled by AI alone", _share(board.ai_share)),
        (
            "Approval rate",
            _share(board.approval_rate) + (f" of {decided}" if decided else ""),
        ),
        ("Median time to approve", dashboard.duration(board.median_approve_seconds)),
        ("LLM cost", _money(sum(board.cost))),
        ("Human handle time", dashboard.duration(sum(board.handle_minutes) * 60)),
    ]
    if board.sla_breaches is not None:
        totals.insert(4, ("SLA breaches", str(sum(board.sla_breaches))))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Support dashboard",
        "subtitle": None,
        "board": board,
        "cards": cards,
        "totals": totals,
        "days": days,
        "windows": dashboard.WINDOWS,
        # Most frequent first, then by name: a stable line whatever order the rows came in.
        "sources": dict(
            sorted(
                (
                    (SOURCE_LABELS.get(source, source), count)
                    for source, count in board.escalation_sources.items()
                ),
                key=lambda item: (-item[1], item[0]),
            )
        ),
    }
    return TemplateResponse(request, "admin/threads/thread/dashboard.html", context)


def _rows(labels: list[str], *columns: Any) -> list[list[Any]]:
    return [[label, *(column[index] for column in columns)] for index, label in enumerate(labels)]


def _money(value: float) -> str:
    return f"${value:,.4f}" if 0 < value < 0.01 else f"${value:,.2f}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"
