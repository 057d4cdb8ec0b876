"""The URLs of trading (the market pages, orders and supply): ``urlpatterns`` are portal pages,
included at the site root by ``marketplace/urls.py``; ``api_urlpatterns`` are API operations,
included under ``/api/v1/`` by ``marketplace/api/urls.py``."""

from django.urls import path

from marketplace.trading import api as trading_api
from marketplace.trading import supply_views
from marketplace.trading import views as trading_views

urlpatterns = [
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
]

api_urlpatterns = [
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
]
