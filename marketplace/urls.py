from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from marketplace import views, views_leases, views_market

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("orgs/new/", views.organization_create, name="organization-create"),
    path("orgs/<uuid:org_id>/", views.organization_detail, name="organization"),
    path("orgs/<uuid:org_id>/switch/", views.organization_switch, name="organization-switch"),
    path("orgs/<uuid:org_id>/invitations/", views.invitation_create, name="invitation-create"),
    path("orgs/<uuid:org_id>/api-keys/", views.api_key_create, name="api-key-create"),
    path(
        "orgs/<uuid:org_id>/api-keys/<uuid:key_id>/revoke/",
        views.api_key_revoke,
        name="api-key-revoke",
    ),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("market/", views_market.market_index, name="market-index"),
    path("market/<slug:slug>/", views_market.market_book, name="market"),
    path("orders/", views_market.order_list, name="orders"),
    path("orders/new/", views_market.order_create, name="order-create"),
    path("orders/preview/", views_market.order_preview, name="order-preview"),
    path("orders/<uuid:order_id>/", views_market.order_detail, name="order"),
    path("orders/<uuid:order_id>/cancel/", views_market.order_cancel, name="order-cancel"),
    path("supply/", views_market.supply, name="supply"),
    path("supply/sites/", views_market.site_create, name="site-create"),
    path("supply/pools/", views_market.pool_create, name="pool-create"),
    path("supply/offers/", views_market.offer_create, name="offer-create"),
    path(
        "supply/offers/<uuid:offer_id>/<slug:action>/",
        views_market.offer_action,
        name="offer-action",
    ),
    path("leases/", views_leases.lease_list, name="leases"),
    path("leases/<uuid:lease_id>/", views_leases.lease_detail, name="lease"),
    path("leases/<uuid:lease_id>/end/", views_leases.lease_end, name="lease-end"),
    path("leases/<uuid:lease_id>/reclaim/", views_leases.lease_reclaim, name="lease-reclaim"),
    path("statements/", views_leases.statement, name="statement"),
    re_path(
        r"^statements/(?P<month>[0-9]{4}-[0-9]{2})\.csv$",
        views_leases.statement_csv,
        name="statement-csv",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
