from django.urls import path, re_path

from marketplace.api import agent_views as agent
from marketplace.api import lease_views as lease
from marketplace.api import market_views as market
from marketplace.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="api-me"),
    path("organizations", views.OrganizationListCreate.as_view(), name="api-organizations"),
    path(
        "organizations/<str:organization_id>",
        views.OrganizationDetail.as_view(),
        name="api-organization",
    ),
    path(
        "organizations/<str:organization_id>/members",
        views.MemberList.as_view(),
        name="api-members",
    ),
    path(
        "organizations/<str:organization_id>/invitations",
        views.InvitationCreate.as_view(),
        name="api-invitations",
    ),
    path("api-keys", views.ApiKeyListCreate.as_view(), name="api-keys"),
    path("api-keys/<str:key_id>/revoke", views.ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("webhooks", views.WebhookList.as_view(), name="api-webhooks"),
    path(
        "webhooks/<str:endpoint_id>/disable",
        views.WebhookDisable.as_view(),
        name="api-webhook-disable",
    ),
    path("devices", market.DeviceList.as_view(), name="api-devices"),
    path("markets", market.MarketList.as_view(), name="api-markets"),
    path("markets/<slug:slug>/book", market.BookView.as_view(), name="api-book"),
    path("markets/<slug:slug>/rounds", market.RoundList.as_view(), name="api-rounds"),
    path("markets/<slug:slug>/rounds/<int:number>", market.RoundDetail.as_view(), name="api-round"),
    path("markets/<slug:slug>/prices", market.PricesView.as_view(), name="api-prices"),
    path(
        "markets/<slug:slug>/price-history",
        market.PriceHistoryView.as_view(),
        name="api-price-history",
    ),
    path("sites", market.SiteListCreate.as_view(), name="api-sites"),
    path("pools", market.PoolListCreate.as_view(), name="api-pools"),
    path("offers", market.OfferListCreate.as_view(), name="api-offers"),
    path("offers/<str:offer_id>", market.OfferDetail.as_view(), name="api-offer"),
    path(
        "offers/<str:offer_id>/<slug:action>", market.OfferAction.as_view(), name="api-offer-action"
    ),
    path("orders", market.OrderListCreate.as_view(), name="api-orders"),
    path("orders/preview", market.OrderPreview.as_view(), name="api-order-preview"),
    path("orders/<str:order_id>", market.OrderDetail.as_view(), name="api-order"),
    path("orders/<str:order_id>/cancel", market.OrderCancel.as_view(), name="api-order-cancel"),
    # The provider agent API (API keys with the provider-agent scope).
    path("agent/leases", agent.AgentLeaseList.as_view(), name="api-agent-leases"),
    path(
        "agent/leases/<str:lease_id>/acknowledge",
        agent.AgentLeaseAcknowledge.as_view(),
        name="api-agent-lease-acknowledge",
    ),
    path(
        "agent/leases/<str:lease_id>/ready",
        agent.AgentLeaseReady.as_view(),
        name="api-agent-lease-ready",
    ),
    path(
        "agent/leases/<str:lease_id>/fail",
        agent.AgentLeaseFail.as_view(),
        name="api-agent-lease-fail",
    ),
    path("agent/events", agent.AgentEvents.as_view(), name="api-agent-events"),
    path("leases", lease.LeaseList.as_view(), name="api-leases"),
    path("leases/<str:lease_id>", lease.LeaseDetail.as_view(), name="api-lease"),
    path("leases/<str:lease_id>/access", lease.LeaseAccess.as_view(), name="api-lease-access"),
    path("leases/<str:lease_id>/end", lease.LeaseEnd.as_view(), name="api-lease-end"),
    path("leases/<str:lease_id>/reclaim", lease.LeaseReclaim.as_view(), name="api-lease-reclaim"),
    re_path(
        r"^statements/(?P<month>[0-9]{4}-[0-9]{2})\.csv$",
        lease.StatementCsv.as_view(),
        name="api-statement-csv",
    ),
    re_path(
        r"^statements/(?P<month>[0-9]{4}-[0-9]{2})$",
        lease.StatementView.as_view(),
        name="api-statement",
    ),
]
