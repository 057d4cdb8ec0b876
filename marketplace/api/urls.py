from django.urls import path, re_path

from marketplace.accounts import api as accounts_api
from marketplace.leases import agent_api
from marketplace.leases import api as leases_api
from marketplace.notifications import api as notifications_api
from marketplace.trading import api as trading_api

urlpatterns = [
    path("me", accounts_api.MeView.as_view(), name="api-me"),
    path("organizations", accounts_api.OrganizationListCreate.as_view(), name="api-organizations"),
    path(
        "organizations/<str:organization_id>",
        accounts_api.OrganizationDetail.as_view(),
        name="api-organization",
    ),
    path(
        "organizations/<str:organization_id>/members",
        accounts_api.MemberList.as_view(),
        name="api-members",
    ),
    path(
        "organizations/<str:organization_id>/invitations",
        accounts_api.InvitationCreate.as_view(),
        name="api-invitations",
    ),
    path("api-keys", accounts_api.ApiKeyListCreate.as_view(), name="api-keys"),
    path(
        "api-keys/<str:key_id>/revoke", accounts_api.ApiKeyRevoke.as_view(), name="api-key-revoke"
    ),
    path("webhooks", notifications_api.WebhookList.as_view(), name="api-webhooks"),
    path(
        "webhooks/<str:endpoint_id>/disable",
        notifications_api.WebhookDisable.as_view(),
        name="api-webhook-disable",
    ),
    path("devices", trading_api.DeviceList.as_view(), name="api-devices"),
    path("markets", trading_api.MarketList.as_view(), name="api-markets"),
    path("markets/<slug:slug>/book", trading_api.BookView.as_view(), name="api-book"),
    path("markets/<slug:slug>/rounds", trading_api.RoundList.as_view(), name="api-rounds"),
    path(
        "markets/<slug:slug>/rounds/<int:number>",
        trading_api.RoundDetail.as_view(),
        name="api-round",
    ),
    path("markets/<slug:slug>/prices", trading_api.PricesView.as_view(), name="api-prices"),
    path(
        "markets/<slug:slug>/price-history",
        trading_api.PriceHistoryView.as_view(),
        name="api-price-history",
    ),
    path("sites", trading_api.SiteListCreate.as_view(), name="api-sites"),
    path("pools", trading_api.PoolListCreate.as_view(), name="api-pools"),
    path("offers", trading_api.OfferListCreate.as_view(), name="api-offers"),
    path("offers/<str:offer_id>", trading_api.OfferDetail.as_view(), name="api-offer"),
    path(
        "offers/<str:offer_id>/<slug:action>",
        trading_api.OfferAction.as_view(),
        name="api-offer-action",
    ),
    path("orders", trading_api.OrderListCreate.as_view(), name="api-orders"),
    path("orders/preview", trading_api.OrderPreview.as_view(), name="api-order-preview"),
    path("orders/<str:order_id>", trading_api.OrderDetail.as_view(), name="api-order"),
    path(
        "orders/<str:order_id>/cancel", trading_api.OrderCancel.as_view(), name="api-order-cancel"
    ),
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
