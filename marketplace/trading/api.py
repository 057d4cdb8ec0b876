"""The market API: catalog, markets, the public book and market data (rounds, prices, price
history), sites, pools, offers, orders, preview."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.api.base import (
    ERROR_RESPONSES,
    IDEMPOTENCY_PARAMETER,
    ORGANIZATION_PARAMETER,
    READ_ERRORS,
    OrganizationScoped,
)
from marketplace.api.idempotency import idempotent
from marketplace.api.pagination import EnvelopeCursorPagination
from marketplace.core import access, rows
from marketplace.core.access import Principal
from marketplace.core.errors import InvalidInput, NotFound
from marketplace.models import ClearingRound, DeviceModel, Market, Offer, Order
from marketplace.trading import market_data, queries, serializers, supply
from marketplace.trading import orders as trading_orders
from marketplace.trading.eligibility import Location
from marketplace.trading.orders import DEVICE_ORDER, DEVICES_WHERE
from marketplace.trading.supply import OFFER_TRANSITIONS

STATUS_FILTER = OpenApiParameter("status", str, description="filter by status")
MARKET_FILTER = OpenApiParameter("market", str, description="filter by market slug")


def _market(slug: str) -> Market:
    found = rows.fetch(Market, '"slug" = %s', [slug])
    if not found:
        raise InvalidInput(_("Unknown market."), code="unknown_market", field="market")
    return found[0]


def _filtered(queryset: QuerySet[Any], request: Request) -> QuerySet[Any]:
    if status_ := request.query_params.get("status"):
        queryset = queryset.filter(status=status_)
    if market := request.query_params.get("market"):
        queryset = queryset.filter(market__slug=market)
    return queryset


def order_request(data: dict[str, Any]) -> trading_orders.OrderRequest:
    """The service's request; the market and the device models in one round trip."""
    location = data.pop("buyer_location", None)
    wanted = sorted(set(data.get("device_models") or ()))
    markets, devices = rows.fetch_together(
        (Market, '"slug" = %s', [data.pop("market")], ()),
        (DeviceModel, DEVICES_WHERE, [wanted], DEVICE_ORDER),
    )
    if not markets:
        raise InvalidInput(_("Unknown market."), code="unknown_market", field="market")
    return trading_orders.OrderRequest(
        market=markets[0],
        buyer_location=Location(
            location["country"].upper(), location["region"].upper(), location["city"]
        )
        if location
        else None,
        devices=devices,
        **data,
    )


# --------------------------------------------------------------------------- public


class DeviceList(GenericAPIView[DeviceModel]):
    permission_classes = [AllowAny]
    serializer_class = serializers.DeviceOut
    queryset = DeviceModel.objects.filter(active=True).order_by("vendor", "name")
    pagination_class = None

    @extend_schema(
        operation_id="devices_list",
        description="The hardware catalog with SCU.",
        responses=serializers.DeviceOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response(serializers.DeviceOut(self.get_queryset(), many=True).data)


class MarketList(GenericAPIView[Market]):
    permission_classes = [AllowAny]
    serializer_class = serializers.MarketOut
    queryset = Market.objects.order_by("slug")
    pagination_class = None

    @extend_schema(
        operation_id="markets_list",
        description="Markets and their rules.",
        responses=serializers.MarketOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response(serializers.MarketOut(self.get_queryset(), many=True).data)


def _public_market(slug: str) -> Market:
    market = Market.objects.filter(slug=slug).first()
    if market is None:
        raise NotFound(_("No such market."))
    return market


class BookView(GenericAPIView[Any]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="book_retrieve",
        responses={200: serializers.BookOut, 404: ERROR_RESPONSES[404]},
        description="The anonymous order book: per class (site × device model), asks and the "
        "bids that could use it by price level per unit-hour, and the last clearing price.",
    )
    def get(self, request: Request, slug: str) -> Response:
        market = _public_market(slug)
        book = queries.order_book(market, now=timezone.now())
        return Response(
            serializers.BookOut(
                {"market": market.slug, "currency": market.currency, "classes": book}
            ).data
        )


# --------------------------------------------------------------------------- market data
# Public and anonymous like the book: no authentication is even looked at.


class RoundPagination(EnvelopeCursorPagination):
    ordering = "-number"  # newest slot first; unique within a market


class RoundList(GenericAPIView[ClearingRound]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    serializer_class = serializers.RoundOut
    pagination_class = RoundPagination

    @extend_schema(
        operation_id="rounds_list",
        responses={200: serializers.RoundOut(many=True), 404: ERROR_RESPONSES[404]},
        description="A market's cleared rounds, newest first: volume, welfare, payments and "
        "whether the round's certificate found no violations.",
    )
    def get(self, request: Request, slug: str) -> Response:
        rounds = market_data.rounds_of(_public_market(slug)).select_related("market")
        page = self.paginate_queryset(rounds)
        return self.get_paginated_response(serializers.RoundOut(page, many=True).data)


class RoundDetail(GenericAPIView[ClearingRound]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="rounds_retrieve",
        responses={200: serializers.RoundDetailOut, 404: ERROR_RESPONSES[404]},
        description="One round with its classes (clearing price per unit-hour and per SCU-hour, "
        "units traded and offered) and its certificate (the conditions checked and any "
        "violations).",
    )
    def get(self, request: Request, slug: str, number: int) -> Response:
        found = market_data.round_of(_public_market(slug), number)
        if found is None:
            raise NotFound(_("No such round."))
        return Response(serializers.RoundDetailOut(found).data)


class PricesView(GenericAPIView[Any]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="prices_retrieve",
        responses={200: serializers.PricesOut, 404: ERROR_RESPONSES[404]},
        description="The last round and its price per class: per unit-hour and per SCU-hour, "
        "with the units traded and offered.",
    )
    def get(self, request: Request, slug: str) -> Response:
        market = _public_market(slug)
        last = market_data.last_round(market)
        body = {
            "market": market.slug,
            "currency": market.currency,
            "round": last,
            "classes": list(last.classes.all()) if last is not None else [],
        }
        return Response(serializers.PricesOut(body).data)


class PriceHistoryView(GenericAPIView[Any]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="price_history_retrieve",
        parameters=[serializers.PriceHistoryIn],
        responses={
            200: serializers.PriceHistoryOut,
            400: ERROR_RESPONSES[400],
            404: ERROR_RESPONSES[404],
        },
        description="Clearing prices over the rounds per device model, region and unit size "
        "(SCU per unit), one point per change: the lowest and highest price among the classes "
        "priced in that round. Rounds without a price are skipped. Filter by device model, "
        "region or class key.",
    )
    def get(self, request: Request, slug: str) -> Response:
        market = _public_market(slug)
        data = serializers.PriceHistoryIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        series = market_data.price_history(market, **data.validated_data)
        return Response(
            serializers.PriceHistoryOut(
                {"market": market.slug, "currency": market.currency, "series": series}
            ).data
        )


# --------------------------------------------------------------------------- supply


class SiteListCreate(OrganizationScoped):
    serializer_class = serializers.SiteOut

    @extend_schema(
        operation_id="sites_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.SiteOut(many=True), **READ_ERRORS},
        description="Your organization's sites.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        page = self.paginate_queryset(access.sites_visible_to(acting))
        return self.get_paginated_response(serializers.SiteOut(page, many=True).data)

    @extend_schema(
        operation_id="sites_create",
        request=serializers.SiteIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: serializers.SiteOut, **ERROR_RESPONSES},
        description="Register a data centre (providers).",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = serializers.SiteIn(data=request.data)
        data.is_valid(raise_exception=True)
        site = supply.create_site(
            principal=acting, request=supply.SiteRequest(**data.validated_data)
        )
        return Response(serializers.SiteOut(site).data, status=status.HTTP_201_CREATED)


class PoolListCreate(OrganizationScoped):
    serializer_class = serializers.PoolOut

    @extend_schema(
        operation_id="pools_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.PoolOut(many=True), **READ_ERRORS},
        description="Your organization's pools.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        pools = access.pools_visible_to(acting).select_related("site", "device_model")
        page = self.paginate_queryset(pools)
        return self.get_paginated_response(serializers.PoolOut(page, many=True).data)

    @extend_schema(
        operation_id="pools_create",
        request=serializers.PoolIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: serializers.PoolOut, **ERROR_RESPONSES},
        description="Add a pool of identical units at one of your sites.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = serializers.PoolIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        site = access.one_of(
            access.sites_visible_to(acting),
            values.pop("site"),
            missing=_("No such site."),
            field="site",
        )
        pool = supply.create_pool(principal=acting, request=supply.PoolRequest(site=site, **values))
        return Response(serializers.PoolOut(pool).data, status=status.HTTP_201_CREATED)


def _offers(acting: Principal) -> QuerySet[Offer]:
    return access.offers_visible_to(acting).select_related(
        "market", "pool__device_model", "pool__site"
    )


class OfferListCreate(OrganizationScoped):
    serializer_class = serializers.OfferOut

    @extend_schema(
        operation_id="offers_list",
        parameters=[ORGANIZATION_PARAMETER, STATUS_FILTER, MARKET_FILTER],
        responses={200: serializers.OfferOut(many=True), **READ_ERRORS},
        description="Your organization's offers (asks).",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        page = self.paginate_queryset(_filtered(_offers(acting), request))
        return self.get_paginated_response(serializers.OfferOut(page, many=True).data)

    @extend_schema(
        operation_id="offers_create",
        request=serializers.OfferIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: serializers.OfferOut, **ERROR_RESPONSES},
        description="Post an ask: units of a pool for a window at a minimum price "
        "per unit-hour. Overlapping offers of a pool may not exceed its units.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = serializers.OfferIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        pool = access.one_of(
            access.pools_visible_to(acting),
            values.pop("pool"),
            missing=_("No such pool."),
            field="pool",
        )
        market = _market(values.pop("market"))
        offer = supply.create_offer(
            principal=acting,
            request=supply.OfferRequest(market=market, pool=pool, **values),
            now=timezone.now(),
        )
        return Response(serializers.OfferOut(offer).data, status=status.HTTP_201_CREATED)


class OfferDetail(OrganizationScoped):
    @extend_schema(
        operation_id="offers_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.OfferOut, **READ_ERRORS},
        description="One of your offers.",
    )
    def get(self, request: Request, offer_id: str) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        return Response(
            serializers.OfferOut(
                access.one_of(_offers(acting), offer_id, missing=_("No such offer."))
            ).data
        )


class OfferAction(OrganizationScoped):
    @extend_schema(
        operation_id="offers_change",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.OfferOut, **ERROR_RESPONSES},
        description="pause, resume or withdraw an offer.",
    )
    def post(self, request: Request, offer_id: str, action: str) -> Response:
        acting = self.acting(request)
        offer = access.one_of(_offers(acting), offer_id, missing=_("No such offer."))
        if action not in OFFER_TRANSITIONS:
            raise NotFound(_("No such action."))
        offer = supply.change_offer(
            principal=acting, offer=offer, action=action, now=timezone.now()
        )
        return Response(serializers.OfferOut(offer).data)


# --------------------------------------------------------------------------- demand


def _orders(acting: Principal) -> QuerySet[Order]:
    return (
        access.orders_visible_to(acting).select_related("market").prefetch_related("device_models")
    )


class OrderListCreate(OrganizationScoped):
    serializer_class = serializers.OrderOut

    @extend_schema(
        operation_id="orders_list",
        parameters=[ORGANIZATION_PARAMETER, STATUS_FILTER, MARKET_FILTER],
        responses={200: serializers.OrderOut(many=True), **READ_ERRORS},
        description="Your organization's orders, newest first.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        page = self.paginate_queryset(_filtered(_orders(acting), request))
        return self.get_paginated_response(serializers.OrderOut(page, many=True).data)

    @extend_schema(
        operation_id="orders_create",
        request=serializers.OrderIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: serializers.OrderOut, **ERROR_RESPONSES},
        description="Place a bid. Its maximum cost plus the maximum buyer fee is held "
        "in your wallet until it fills, is cancelled or expires. 422 "
        "`insufficient_funds` when the wallet cannot cover the hold.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = serializers.OrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = trading_orders.place_order(
            principal=acting,
            request=order_request(dict(data.validated_data)),
            now=timezone.now(),
            savepoint=False,  # @idempotent's transaction rolls back whole on any error
        )
        return Response(serializers.OrderOut(order).data, status=status.HTTP_201_CREATED)


class OrderDetail(OrganizationScoped):
    @extend_schema(
        operation_id="orders_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.OrderDetailOut, **READ_ERRORS},
        description="One of your orders with its history, its leases and why the last round "
        "left it (partly) unfilled.",
    )
    def get(self, request: Request, order_id: str) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        orders = _orders(acting).prefetch_related(
            "events", Prefetch("leases", queryset=queries.order_leases())
        )
        return Response(
            serializers.OrderDetailOut(
                access.one_of(orders, order_id, missing=_("No such order."))
            ).data
        )


class OrderCancel(OrganizationScoped):
    @extend_schema(
        operation_id="orders_cancel",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.OrderOut, **ERROR_RESPONSES},
        description="Cancel an open order and release its hold. A cancel that "
        "arrives while a clearing round of its market is running takes effect right "
        "after that round: the response then shows the order still open with "
        "`cancel_requested_at` set, and it may still fill in that round.",
    )
    def post(self, request: Request, order_id: str) -> Response:
        acting = self.acting(request)
        order = access.one_of(_orders(acting), order_id, missing=_("No such order."))
        order = trading_orders.cancel_order(principal=acting, order=order, now=timezone.now())
        return Response(serializers.OrderOut(order).data)


class OrderPreview(OrganizationScoped):
    @extend_schema(
        operation_id="orders_preview",
        request=serializers.OrderPreviewIn,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.PreviewOut, **ERROR_RESPONSES},
        description="Pre-trade feasibility for a draft: the compatible supply by "
        "class, free units, price range, and how many offers each constraint "
        "excluded. Nothing is placed or held.",
    )
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        data = serializers.OrderPreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        draft = order_request(dict(data.validated_data))
        now = timezone.now()
        devices = trading_orders.validate_order(draft, now=now)
        result = queries.preview(
            queries.draft_demand(draft, [d.slug for d in devices]),
            market=draft.market,
            limit_price=draft.limit_price,
            price_per_scu=draft.price_per == "scu",
            now=now,
        )
        body = {**result.__dict__, "hold_amount_minor": trading_orders.hold_amount(draft)}
        return Response(serializers.PreviewOut(body).data)
