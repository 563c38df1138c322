from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from approvals import api as approval_api
from escalations import api as escalation_api
from supportdesk import views
from supportdesk.agent import api as agent_api
from threads import api_customer, api_desk

api_v1 = [
    path("threads/", api_customer.ThreadCreateView.as_view(), name="thread-create"),
    path(
        "threads/<uuid:thread_id>/", api_customer.ThreadDetailView.as_view(), name="thread-detail"
    ),
    path(
        "threads/<uuid:thread_id>/messages/",
        api_customer.ThreadMessagesView.as_view(),
        name="thread-messages",
    ),
    path("auth/token/", views.TokenLoginView.as_view(), name="auth-token"),
    path("desk/threads/", api_desk.DeskThreadListView.as_view(), name="desk-thread-list"),
    path(
        "desk/threads/<uuid:thread_id>/",
        api_desk.DeskThreadDetailView.as_view(),
        name="desk-thread-detail",
    ),
    path(
        "desk/threads/<uuid:thread_id>/messages/",
        api_desk.DeskThreadMessagesView.as_view(),
        name="desk-thread-messages",
    ),
    path(
        "desk/threads/<uuid:thread_id>/reply/",
        api_desk.DeskReplyView.as_view(),
        name="desk-thread-reply",
    ),
    path(
        "desk/threads/<uuid:thread_id>/assign/",
        api_desk.DeskAssignView.as_view(),
        name="desk-thread-assign",
    ),
    path(
        "desk/threads/<uuid:thread_id>/assignments/",
        api_desk.DeskAssignmentListView.as_view(),
        name="desk-thread-assignments",
    ),
    path(
        "desk/threads/<uuid:thread_id>/status/",
        api_desk.DeskStatusView.as_view(),
        name="desk-thread-status",
    ),
    path(
        "desk/customers/<int:customer_id>/",
        api_desk.DeskCustomerDetailView.as_view(),
        name="desk-customer-detail",
    ),
    path(
        "threads/<uuid:thread_id>/handoff/",
        escalation_api.HandoffView.as_view(),
        name="thread-handoff",
    ),
    path("desk/escalations/", escalation_api.EscalationListView.as_view(), name="desk-escalations"),
    path(
        "desk/escalations/<uuid:escalation_id>/claim/",
        escalation_api.EscalationClaimView.as_view(),
        name="desk-escalation-claim",
    ),
    path(
        "desk/escalations/<uuid:escalation_id>/resolve/",
        escalation_api.EscalationResolveView.as_view(),
        name="desk-escalation-resolve",
    ),
    path(
        "desk/human-requests/",
        escalation_api.HumanRequestListView.as_view(),
        name="desk-human-requests",
    ),
    path(
        "desk/human-requests/<uuid:request_id>/answer/",
        escalation_api.HumanRequestAnswerView.as_view(),
        name="desk-human-request-answer",
    ),
    path("desk/approvals/", approval_api.ApprovalListView.as_view(), name="desk-approvals"),
    path(
        "desk/approvals/<uuid:draft_id>/approve/",
        approval_api.ApprovalApproveView.as_view(),
        name="desk-approval-approve",
    ),
    path(
        "desk/approvals/<uuid:draft_id>/reject/",
        approval_api.ApprovalRejectView.as_view(),
        name="desk-approval-reject",
    ),
    path("desk/usage/", agent_api.UsageView.as_view(), name="desk-usage"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

if settings.SUPPORTDESK_BENCH_ENDPOINTS:
    api_v1.append(path("bench/bare/", views.BenchBareView.as_view(), name="bench-bare"))

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("", include("supportdesk.desk.urls")),
]

handler400 = "supportdesk.views.json_bad_request"
handler403 = "supportdesk.views.json_forbidden"
handler404 = "supportdesk.views.json_not_found"
handler500 = "supportdesk.views.json_server_error"
