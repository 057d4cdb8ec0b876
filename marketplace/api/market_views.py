"""The market API: catalog, markets, the public book and market data (rounds, prices, price
history), sites, pools, offers, orders, preview."""

from __future__ import annotations

import uuid
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

from marketplace import queries, rows, services
from marketplace.access import Principal
from marketplace.api import market_serializers as s
from marketplace.api.idempotency import idempotent
from marketplace.api.pagination import EnvelopeCursorPagination
from marketplace.api.views import (
    ERROR_RESPONSES,
    IDEMPOTENCY_PARAMETER,
    ORGANIZATION_PARAMETER,
    READ_ERRORS,
    OrganizationScoped,
)
from marketplace.compat import Location
from marketplace.errors import InvalidInput, NotFound
from marketplace.models import ClearingRound, DeviceModel, Market, Offer, Order, Pool, Site
from marketplace.services.market import DEVICE_ORDER, DEVICES_WHERE, OFFER_TRANSITIONS

STATUS_FILTER = OpenApiParameter("status", str, description="filter by status")
MARKET_FILTER = OpenApiParameter("market", str, description="filter by market slug")


def _market(slug: str) -> Market:
    found = rows.fetch(Market, '"slug" = %s', [slug])
    if not found:
        raise InvalidInput(_("Unknown market."), code="unknown_market", field="market")
    return found[0]


def _uuid(value: str | uuid.UUID, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(_("No such %(what)s.") % {"what": what}) from None


def _filtered(queryset: QuerySet[Any], request: Request) -> QuerySet[Any]:
    if status_ := request.query_params.get("status"):
        queryset = queryset.filter(status=status_)
    if market := request.query_params.get("market"):
        queryset = queryset.filter(market__slug=market)
    return queryset


def order_request(data: dict[str, Any]) -> services.OrderRequest:
    """The service's request; the market and the device models in one round trip."""
    location = data.pop("buyer_location", None)
    wanted = sorted(set(data.get("device_models") or ()))
    markets, devices = rows.fetch_together(
        (Market, '"slug" = %s', [data.pop("market")], ()),
        (DeviceModel, DEVICES_WHERE, [wanted], DEVICE_ORDER),
    )
    if not markets:
        raise InvalidInput(_("Unknown market."), code="unknown_market", field="market")
    return services.OrderRequest(
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
    serializer_class = s.DeviceOut
    queryset = DeviceModel.objects.filter(active=True).order_by("vendor", "name")
    pagination_class = None

    @extend_schema(
        operation_id="devices_list",
        description="The hardware catalog with SCU.",
        responses=s.DeviceOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response(s.DeviceOut(self.get_queryset(), many=True).data)


class MarketList(GenericAPIView[Market]):
    permission_classes = [AllowAny]
    serializer_class = s.MarketOut
    queryset = Market.objects.order_by("slug")
    pagination_class = None

    @extend_schema(
        operation_id="markets_list",
        description="Markets and their rules.",
        responses=s.MarketOut(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response(s.MarketOut(self.get_queryset(), many=True).data)


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
        responses={200: s.BookOut, 404: ERROR_RESPONSES[404]},
        description="The anonymous order book: per class (site × device model), asks and the "
        "bids that could use it by price level per unit-hour, and the last clearing price.",
    )
    def get(self, request: Request, slug: str) -> Response:
        market = _public_market(slug)
        book = queries.order_book(market, now=timezone.now())
        return Response(
            s.BookOut({"market": market.slug, "currency": market.currency, "classes": book}).data
        )


# --------------------------------------------------------------------------- market data
# Public and anonymous like the book: no authentication is even looked at.


class RoundPagination(EnvelopeCursorPagination):
    ordering = "-number"  # newest slot first; unique within a market


class RoundList(GenericAPIView[ClearingRound]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    serializer_class = s.RoundOut
    pagination_class = RoundPagination

    @extend_schema(
        operation_id="rounds_list",
        responses={200: s.RoundOut(many=True), 404: ERROR_RESPONSES[404]},
        description="A market's cleared rounds, newest first: volume, welfare, payments and "
        "whether the round's certificate found no violations.",
    )
    def get(self, request: Request, slug: str) -> Response:
        rounds = queries.rounds_of(_public_market(slug)).select_related("market")
        page = self.paginate_queryset(rounds)
        return self.get_paginated_response(s.RoundOut(page, many=True).data)


class RoundDetail(GenericAPIView[ClearingRound]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="rounds_retrieve",
        responses={200: s.RoundDetailOut, 404: ERROR_RESPONSES[404]},
        description="One round with its classes (clearing price per unit-hour and per SCU-hour, "
        "units traded and offered) and its certificate (the conditions checked and any "
        "violations).",
    )
    def get(self, request: Request, slug: str, number: int) -> Response:
        found = queries.round_of(_public_market(slug), number)
        if found is None:
            raise NotFound(_("No such round."))
        return Response(s.RoundDetailOut(found).data)


class PricesView(GenericAPIView[Any]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="prices_retrieve",
        responses={200: s.PricesOut, 404: ERROR_RESPONSES[404]},
        description="The last round and its price per class: per unit-hour and per SCU-hour, "
        "with the units traded and offered.",
    )
    def get(self, request: Request, slug: str) -> Response:
        market = _public_market(slug)
        last = queries.last_round(market)
        body = {
            "market": market.slug,
            "currency": market.currency,
            "round": last,
            "classes": list(last.classes.all()) if last is not None else [],
        }
        return Response(s.PricesOut(body).data)


class PriceHistoryView(GenericAPIView[Any]):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="price_history_retrieve",
        parameters=[s.PriceHistoryIn],
        responses={200: s.PriceHistoryOut, 400: ERROR_RESPONSES[400], 404: ERROR_RESPONSES[404]},
        description="Clearing prices over the rounds per device model, region and unit size "
        "(SCU per unit), one point per change: the lowest and highest price among the classes "
        "priced in that round. Rounds without a price are skipped. Filter by device model, "
        "region or class key.",
    )
    def get(self, request: Request, slug: str) -> Response:
        market = _public_market(slug)
        data = s.PriceHistoryIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        series = queries.price_history(market, **data.validated_data)
        return Response(
            s.PriceHistoryOut(
                {"market": market.slug, "currency": market.currency, "series": series}
            ).data
        )


# --------------------------------------------------------------------------- supply


class SiteListCreate(OrganizationScoped):
    serializer_class = s.SiteOut

    @extend_schema(
        operation_id="sites_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.SiteOut(many=True), **READ_ERRORS},
        description="Your organization's sites.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        page = self.paginate_queryset(Site.objects.filter(organization=acting.organization))
        return self.get_paginated_response(s.SiteOut(page, many=True).data)

    @extend_schema(
        operation_id="sites_create",
        request=s.SiteIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: s.SiteOut, **ERROR_RESPONSES},
        description="Register a data centre (providers).",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = s.SiteIn(data=request.data)
        data.is_valid(raise_exception=True)
        site = services.create_site(
            principal=acting, request=services.SiteRequest(**data.validated_data)
        )
        return Response(s.SiteOut(site).data, status=status.HTTP_201_CREATED)


class PoolListCreate(OrganizationScoped):
    serializer_class = s.PoolOut

    @extend_schema(
        operation_id="pools_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.PoolOut(many=True), **READ_ERRORS},
        description="Your organization's pools.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        pools = Pool.objects.filter(site__organization=acting.organization).select_related(
            "site", "device_model"
        )
        page = self.paginate_queryset(pools)
        return self.get_paginated_response(s.PoolOut(page, many=True).data)

    @extend_schema(
        operation_id="pools_create",
        request=s.PoolIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: s.PoolOut, **ERROR_RESPONSES},
        description="Add a pool of identical units at one of your sites.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = s.PoolIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        site = _owned(
            Site.objects.filter(organization=acting.organization),
            values.pop("site"),
            _("site"),
            field="site",
        )
        pool = services.create_pool(
            principal=acting, request=services.PoolRequest(site=site, **values)
        )
        return Response(s.PoolOut(pool).data, status=status.HTTP_201_CREATED)


def _owned(queryset: QuerySet[Any], public_id: Any, what: str, field: str | None = None) -> Any:
    """One of the organization's objects; another organization's is simply not found."""
    found = queryset.filter(public_id=_uuid(public_id, what)).first()
    if found is None:
        if field is not None:
            raise InvalidInput(
                _("No such %(what)s.") % {"what": what}, code="not_found", field=field
            )
        raise NotFound(_("No such %(what)s.") % {"what": what})
    return found


def _offers(acting: Principal) -> QuerySet[Offer]:
    return Offer.objects.filter(pool__site__organization=acting.organization).select_related(
        "market", "pool__device_model", "pool__site"
    )


class OfferListCreate(OrganizationScoped):
    serializer_class = s.OfferOut

    @extend_schema(
        operation_id="offers_list",
        parameters=[ORGANIZATION_PARAMETER, STATUS_FILTER, MARKET_FILTER],
        responses={200: s.OfferOut(many=True), **READ_ERRORS},
        description="Your organization's offers (asks).",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        page = self.paginate_queryset(_filtered(_offers(acting), request))
        return self.get_paginated_response(s.OfferOut(page, many=True).data)

    @extend_schema(
        operation_id="offers_create",
        request=s.OfferIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: s.OfferOut, **ERROR_RESPONSES},
        description="Post an ask: units of a pool for a window at a minimum price "
        "per unit-hour. Overlapping offers of a pool may not exceed its units.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = s.OfferIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        pool = _owned(
            Pool.objects.filter(site__organization=acting.organization),
            values.pop("pool"),
            _("pool"),
            field="pool",
        )
        market = _market(values.pop("market"))
        offer = services.create_offer(
            principal=acting,
            request=services.OfferRequest(market=market, pool=pool, **values),
            now=timezone.now(),
        )
        return Response(s.OfferOut(offer).data, status=status.HTTP_201_CREATED)


class OfferDetail(OrganizationScoped):
    @extend_schema(
        operation_id="offers_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.OfferOut, **READ_ERRORS},
        description="One of your offers.",
    )
    def get(self, request: Request, offer_id: str) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        return Response(s.OfferOut(_owned(_offers(acting), offer_id, _("offer"))).data)


class OfferAction(OrganizationScoped):
    @extend_schema(
        operation_id="offers_change",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.OfferOut, **ERROR_RESPONSES},
        description="pause, resume or withdraw an offer.",
    )
    def post(self, request: Request, offer_id: str, action: str) -> Response:
        acting = self.acting(request)
        offer = _owned(_offers(acting), offer_id, _("offer"))
        if action not in OFFER_TRANSITIONS:
            raise NotFound(_("No such action."))
        offer = services.change_offer(
            principal=acting, offer=offer, action=action, now=timezone.now()
        )
        return Response(s.OfferOut(offer).data)


# --------------------------------------------------------------------------- demand


def _orders(acting: Principal) -> QuerySet[Order]:
    return (
        Order.objects.filter(organization=acting.organization)
        .select_related("market")
        .prefetch_related("device_models")
    )


class OrderListCreate(OrganizationScoped):
    serializer_class = s.OrderOut

    @extend_schema(
        operation_id="orders_list",
        parameters=[ORGANIZATION_PARAMETER, STATUS_FILTER, MARKET_FILTER],
        responses={200: s.OrderOut(many=True), **READ_ERRORS},
        description="Your organization's orders, newest first.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        page = self.paginate_queryset(_filtered(_orders(acting), request))
        return self.get_paginated_response(s.OrderOut(page, many=True).data)

    @extend_schema(
        operation_id="orders_create",
        request=s.OrderIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: s.OrderOut, **ERROR_RESPONSES},
        description="Place a bid. Its maximum cost plus the maximum buyer fee is held "
        "in your wallet until it fills, is cancelled or expires. 422 "
        "`insufficient_funds` when the wallet cannot cover the hold.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        data = s.OrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.place_order(
            principal=acting,
            request=order_request(dict(data.validated_data)),
            now=timezone.now(),
            savepoint=False,  # @idempotent's transaction rolls back whole on any error
        )
        return Response(s.OrderOut(order).data, status=status.HTTP_201_CREATED)


class OrderDetail(OrganizationScoped):
    @extend_schema(
        operation_id="orders_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.OrderDetailOut, **READ_ERRORS},
        description="One of your orders with its history, its leases and why the last round "
        "left it (partly) unfilled.",
    )
    def get(self, request: Request, order_id: str) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        orders = _orders(acting).prefetch_related(
            "events", Prefetch("leases", queryset=queries.order_leases())
        )
        return Response(s.OrderDetailOut(_owned(orders, order_id, _("order"))).data)


class OrderCancel(OrganizationScoped):
    @extend_schema(
        operation_id="orders_cancel",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.OrderOut, **ERROR_RESPONSES},
        description="Cancel an open order and release its hold. A cancel that "
        "arrives while a clearing round of its market is running takes effect right "
        "after that round: the response then shows the order still open with "
        "`cancel_requested_at` set, and it may still fill in that round.",
    )
    def post(self, request: Request, order_id: str) -> Response:
        acting = self.acting(request)
        order = _owned(_orders(acting), order_id, _("order"))
        order = services.cancel_order(principal=acting, order=order, now=timezone.now())
        return Response(s.OrderOut(order).data)


class OrderPreview(OrganizationScoped):
    @extend_schema(
        operation_id="orders_preview",
        request=s.OrderPreviewIn,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.PreviewOut, **ERROR_RESPONSES},
        description="Pre-trade feasibility for a draft: the compatible supply by "
        "class, free units, price range, and how many offers each constraint "
        "excluded. Nothing is placed or held.",
    )
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        data = s.OrderPreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        draft = order_request(dict(data.validated_data))
        now = timezone.now()
        devices = services.validate_order(draft, now=now)
        result = queries.preview(
            queries.draft_demand(draft, [d.slug for d in devices]),
            market=draft.market,
            limit_price=draft.limit_price,
            price_per_scu=draft.price_per == "scu",
            now=now,
        )
        body = {**result.__dict__, "hold_amount_minor": services.hold_amount(draft)}
        return Response(s.PreviewOut(body).data)
