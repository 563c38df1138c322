"""The desk pages and the widget demo (included at the site root by supportdesk.urls)."""

from __future__ import annotations

from django.urls import path

from supportdesk.desk import views

urlpatterns = [
    path("desk/", views.inbox, name="desk-inbox"),
    path("desk/login/", views.DeskLoginView.as_view(), name="desk-login"),
    path("desk/logout/", views.DeskLogoutView.as_view(), name="desk-logout"),
    path("desk/approvals/", views.approvals, name="desk-approvals"),
    path("desk/threads/<uuid:thread_id>/", views.thread_detail, name="desk-thread"),
    path("desk/threads/<uuid:thread_id>/turns/", views.thread_turns, name="desk-thread-turns"),
    path("widget/demo/", views.widget_demo, name="widget-demo"),
]
