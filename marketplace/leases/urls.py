"""The URLs of leases (leases, statements and the provider agent's API): ``urlpatterns`` are portal
pages, included at the site root by ``marketplace/urls.py``; ``api_urlpatterns`` are API
operations, included under ``/api/v1/`` by ``marketplace/api/urls.py``."""

from django.urls import path, re_path

from marketplace.leases import agent_api
from marketplace.leases import api as leases_api
from marketplace.leases import views as leases_views

urlpatterns = [
    path("leases/", leases_views.lease_list, name="leases"),
    path("leases/<uuid:lease_id>/", leases_views.lease_detail, name="lease"),
    path("leases/<uuid:lease_id>/end/", leases_views.lease_end, name="lease-end"),
    path("leases/<uuid:lease_id>/reclaim/", leases_views.lease_reclaim, name="lease-reclaim"),
    path("statements/", leases_views.statement, name="statement"),
    re_path(
        r"^statements/(?P<month>[0-9]{4}-[0-9]{2})\.csv$",
        leases_views.statement_csv,
        name="statement-csv",
    ),
]

api_urlpatterns = [
    # The provider agent API (API keys with the provider-agent scope).
    path("agent/leases", agent_api.AgentLeaseList.as_view(), name="api-agent-leases"),
    path(
        "agent/leases/<str:lease_id>/acknowledge",
        agent_api.AgentLeaseAcknowledge.as_view(),
        name="api-agent-lease-acknowledge",
    ),
    path(
        "agent/leases/<str:lease_id>/ready",
        agent_api.AgentLeaseReady.as_view(),
        name="api-agent-lease-ready",
    ),
    path(
        "agent/leases/<str:lease_id>/fail",
        agent_api.AgentLeaseFail.as_view(),
        name="api-agent-lease-fail",
    ),
    path("agent/events", agent_api.AgentEvents.as_view(), name="api-agent-events"),
    path("leases", leases_api.LeaseList.as_view(), name="api-leases"),
    path("leases/<str:lease_id>", leases_api.LeaseDetail.as_view(), name="api-lease"),
    path("leases/<str:lease_id>/access", leases_api.LeaseAccess.as_view(), name="api-lease-access"),
    path("leases/<str:lease_id>/end", leases_api.LeaseEnd.as_view(), name="api-lease-end"),
    path(
        "leases/<str:lease_id>/reclaim", leases_api.LeaseReclaim.as_view(), name="api-lease-reclaim"
    ),
    re_path(
        r"^statements/(?P<month>[0-9]{4}-[0-9]{2})\.csv$",
        leases_api.StatementCsv.as_view(),
        name="api-statement-csv",
    ),
    re_path(
        r"^statements/(?P<month>[0-9]{4}-[0-9]{2})$",
        leases_api.StatementView.as_view(),
        name="api-statement",
    ),
]
