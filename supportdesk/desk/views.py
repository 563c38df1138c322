"""The desk pages: login, inbox, thread view, approvals, and the widget demo page.

The pages are thin: they check that the user is an agent, embed the first screen of data
(``supportdesk.desk.selectors``) and leave the rest to the page's script, which reads and
writes through the REST API with the session cookie and the CSRF token. The one JSON
read served here is the thread's routing decisions, which the API does not expose.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from rest_framework import exceptions as drf_exceptions

from supportdesk.api import client_ip, rate_limit
from supportdesk.desk import selectors
from threads.services import user_is_agent

View = Callable[..., HttpResponse]


def agent_required(view: View) -> View:
    """Agents only: others are sent to the desk login, or refused when signed in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("desk-login"))
        if not user_is_agent(request.user):
            return render(request, "desk/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


class DeskAuthenticationForm(AuthenticationForm):
    """The admin's login form, for agents (staff or the ``agents`` group), rate-limited."""

    def clean(self) -> dict[str, Any]:
        if self.request is not None:
            try:
                rate_limit("login_per_ip", client_ip(self.request))
            except drf_exceptions.Throttled:
                raise forms.ValidationError(
                    "Too many sign-in attempts. Wait a minute and try again.", code="throttled"
                ) from None
        return super().clean()

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user_is_agent(user):
            raise forms.ValidationError(
                "This account is not a support agent account.", code="not_agent"
            )


class DeskLoginView(auth_views.LoginView):
    template_name = "desk/login.html"
    authentication_form = DeskAuthenticationForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("desk-inbox")


class DeskLogoutView(auth_views.LogoutView):
    next_page = "desk-login"


def _page(request: HttpRequest, template: str, page: str, data: dict[str, Any]) -> HttpResponse:
    context = {
        "page": page,
        "desk_data": {"page": page, "me": selectors.me(request.user), **data},
    }
    return render(request, template, context)


INBOX_FILTERS = ("status", "responder", "assignee", "queue", "priority", "has_open_escalation", "q")


@require_GET
@never_cache
@ensure_csrf_cookie
@agent_required
def inbox(request: HttpRequest) -> HttpResponse:
    filters = {name: request.GET[name] for name in INBOX_FILTERS if request.GET.get(name)}
    try:
        threads, has_more = selectors.inbox_threads(request=request, params=filters)
    except selectors.InboxFilterError:
        filters, (threads, has_more) = {}, selectors.inbox_threads(request=request, params={})
    return _page(
        request,
        "desk/inbox.html",
        "inbox",
        {
            "filters": filters,
            "threads": threads,
            "has_more": has_more,
            "queues": selectors.inbox_queues(),
        },
    )


@require_GET
@never_cache
@ensure_csrf_cookie
@agent_required
def thread_detail(request: HttpRequest, thread_id: Any) -> HttpResponse:
    thread = selectors.staff_thread(thread_id)
    if thread is None:
        raise Http404("No such thread.")
    response = _page(request, "desk/thread.html", "thread", selectors.thread_page(thread=thread))
    return response


@require_GET
@never_cache
@agent_required
def thread_turns(request: HttpRequest, thread_id: Any) -> HttpResponse:
    """``GET /desk/threads/<id>/turns/?after=&before=``: the routing decisions, as JSON."""
    thread = selectors.staff_thread(thread_id)
    if thread is None:
        raise Http404("No such thread.")
    errors: dict[str, list[str]] = {}
    after = _seq_param(request, "after", 0, errors)
    before = _seq_param(request, "before", 1, errors)
    if errors:
        body = {"error": {"code": "invalid", "message": "Invalid input.", "fields": errors}}
        return JsonResponse(body, status=400)
    lines = selectors.turn_lines(thread=thread, after=after or 0, before=before)
    return JsonResponse({"results": lines})


def _seq_param(
    request: HttpRequest, name: str, low: int, errors: dict[str, list[str]]
) -> int | None:
    raw = request.GET.get(name)
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not low <= int(raw) < 2**31:
        errors[name] = [f"Must be an integer from {low} to {2**31 - 1}."]
        return None
    return int(raw)


@require_GET
@never_cache
@ensure_csrf_cookie
@agent_required
def approvals(request: HttpRequest) -> HttpResponse:
    return _page(
        request,
        "desk/approvals.html",
        "approvals",
        {"drafts": selectors.pending_approvals()},
    )


@require_GET
def widget_demo(request: HttpRequest) -> HttpResponse:
    """A shop page with the widget's one script tag, as a customer's site would have it."""
    return render(request, "widget/demo.html")
