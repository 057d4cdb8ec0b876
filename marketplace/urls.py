from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from marketplace.accounts import views as accounts_views
from marketplace.core import health
from marketplace.leases import views as leases_views
from marketplace.portal import views as portal_views
from marketplace.trading import supply_views
from marketplace.trading import views as trading_views

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/signup/", accounts_views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("orgs/new/", accounts_views.organization_create, name="organization-create"),
    path("orgs/<uuid:org_id>/", accounts_views.organization_detail, name="organization"),
    path(
        "orgs/<uuid:org_id>/switch/", accounts_views.organization_switch, name="organization-switch"
    ),
    path(
        "orgs/<uuid:org_id>/invitations/",
        accounts_views.invitation_create,
        name="invitation-create",
    ),
    path("orgs/<uuid:org_id>/api-keys/", accounts_views.api_key_create, name="api-key-create"),
    path(
        "orgs/<uuid:org_id>/api-keys/<uuid:key_id>/revoke/",
        accounts_views.api_key_revoke,
        name="api-key-revoke",
    ),
    path("invitations/<str:token>/", accounts_views.invitation_accept, name="invitation-accept"),
    path("market/", trading_views.market_index, name="market-index"),
    path("market/<slug:slug>/", trading_views.market_book, name="market"),
    path("orders/", trading_views.order_list, name="orders"),
    path("orders/new/", trading_views.order_create, name="order-create"),
    path("orders/preview/", trading_views.order_preview, name="order-preview"),
    path("orders/<uuid:order_id>/", trading_views.order_detail, name="order"),
    path("orders/<uuid:order_id>/cancel/", trading_views.order_cancel, name="order-cancel"),
    path("supply/", supply_views.supply, name="supply"),
    path("supply/sites/", supply_views.site_create, name="site-create"),
    path("supply/pools/", supply_views.pool_create, name="pool-create"),
    path("supply/offers/", supply_views.offer_create, name="offer-create"),
    path(
        "supply/offers/<uuid:offer_id>/<slug:action>/",
        supply_views.offer_action,
        name="offer-action",
    ),
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
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
