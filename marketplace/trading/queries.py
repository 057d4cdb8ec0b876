"""Reads of market state. Views and the API call these; nothing here writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import (
    QuerySet,
    Sum,
)

from marketplace.models import (
    LIVE_LEASE_STATUSES,
    OPEN_ORDER_STATUSES,
    Lease,
    Market,
    Offer,
    OfferStatus,
    Order,
    Site,
)
from marketplace.trading.eligibility import REASONS, Demand, Location, Supply, exclusion
from marketplace.trading.orders import OrderRequest

# --------------------------------------------------------------------------- market


def supply_of(market: Market, *, now: dt.datetime) -> list[Supply]:
    """Active offers of a market still open at ``now``, with their free units then (the offer's
    units minus those its live leases hold at ``now``)."""
    offers = (
        Offer.objects.filter(market=market, status=OfferStatus.ACTIVE, available_until__gt=now)
        .select_related("pool__site", "pool__device_model")
        .order_by("min_price", "pk")
    )
    leased = leased_units(market, at=now)
    return [
        Supply(
            offer_id=offer.pk,
            pool_id=offer.pool_id,
            site_id=offer.pool.site_id,
            device_slug=offer.pool.device_model.slug,
            memory_gb_per_unit=offer.pool.memory_gb_per_unit,
            scu_per_unit=offer.pool.scu_per_unit,
            location=Location(
                offer.pool.site.country, offer.pool.site.region, offer.pool.site.city
            ),
            jurisdiction=offer.pool.site.jurisdiction,
            pue=offer.pool.site.pue,
            renewable_share=offer.pool.site.renewable_share,
            verified=offer.pool.verified,
            free_units=offer.units - leased.get(offer.pk, 0),
            min_price=offer.min_price,
            available_from=offer.available_from,
            available_until=offer.available_until,
            min_lease_hours=offer.min_lease_hours,
            max_lease_hours=offer.max_lease_hours,
        )
        for offer in offers
    ]


def leased_units(market: Market, *, at: dt.datetime) -> dict[int, int]:
    """Offer id → units its live leases hold at ``at``."""
    rows = (
        Lease.objects.filter(
            market=market,
            status__in=LIVE_LEASE_STATUSES,
            starts_at__lte=at,
            ends_at__gt=at,
        )
        .values("offer_id")
        .annotate(units=Sum("units"))
        .values_list("offer_id", "units")
    )
    return dict(rows)


_DEMAND_FIELDS = (
    "min_memory_gb",
    "min_scu_per_unit",
    "duration_hours",
    "earliest_start",
    "latest_start",
    "allowed_regions",
    "allowed_jurisdictions",
    "max_latency_tier",
    "min_renewable_share",
    "max_pue",
    "verified_only",
)


def _demand(
    source: Order | OrderRequest, location: Location | None, device_slugs: Sequence[str]
) -> Demand:
    fields = {name: getattr(source, name) for name in _DEMAND_FIELDS}
    return Demand(device_slugs=device_slugs, location=location, **fields)


def demand_of(order: Order, device_slugs: Sequence[str]) -> Demand:
    """The constraints of a placed order."""
    location = Location(order.buyer_country, order.buyer_region, order.buyer_city)
    return _demand(order, location if order.buyer_country else None, device_slugs)


@dataclass(frozen=True)
class ClassKey:
    site_id: int
    device_slug: str


@dataclass
class PreviewClass:
    site: str
    region: str
    device: str
    scu_per_unit: Decimal
    free_units: int
    min_price: Decimal
    max_price: Decimal


@dataclass
class Preview:
    classes: list[PreviewClass]
    excluded: dict[str, int]  # reason → number of offers it excluded
    compatible_units: int
    affordable_units: int  # free units at or below the order's limit price


def preview(
    demand: Demand,
    *,
    market: Market,
    limit_price: Decimal | None,
    price_per_scu: bool,
    now: dt.datetime,
) -> Preview:
    """What supply an order draft could use now, and why the rest is excluded."""
    excluded = dict.fromkeys(REASONS, 0)
    classes: dict[ClassKey, PreviewClass] = {}
    affordable = 0
    sites = {s.pk: s for s in Site.objects.filter(pools__offers__market=market).distinct()}
    for supply in supply_of(market, now=now):
        reason = exclusion(demand, supply)
        if reason is not None:
            excluded[reason] += 1
            continue
        unit_limit = (
            (limit_price * supply.scu_per_unit if price_per_scu else limit_price)
            if (limit_price is not None)
            else None
        )
        if unit_limit is None or supply.min_price <= unit_limit:
            affordable += supply.free_units
        key = ClassKey(supply.site_id, supply.device_slug)
        site = sites[supply.site_id]
        found = classes.get(key)
        if found is None:
            classes[key] = PreviewClass(
                site.name,
                site.region,
                supply.device_slug,
                supply.scu_per_unit,
                supply.free_units,
                supply.min_price,
                supply.min_price,
            )
        else:
            found.free_units += supply.free_units
            found.min_price = min(found.min_price, supply.min_price)
            found.max_price = max(found.max_price, supply.min_price)
    ordered = sorted(classes.values(), key=lambda c: (c.min_price, c.site, c.device))
    return Preview(
        ordered,
        {k: v for k, v in excluded.items() if v},
        sum(c.free_units for c in ordered),
        affordable,
    )


@dataclass
class Level:
    price: Decimal
    units: int
    count: int


@dataclass
class BookClass:
    site: str
    region: str
    device: str
    scu_per_unit: Decimal
    asks: list[Level]
    bids: list[Level]
    last_price: Decimal | None


def open_demands(market: Market, *, now: dt.datetime) -> list[tuple[Order, Demand]]:
    """Open, unexpired orders of a market with their constraints."""
    orders = Order.objects.filter(
        market=market, status__in=OPEN_ORDER_STATUSES, expires_at__gt=now
    ).prefetch_related("device_models")
    return [
        (order, demand_of(order, [d.slug for d in order.device_models.all()])) for order in orders
    ]


def bid_terms(order: Order, scu: Decimal) -> tuple[Decimal, int]:
    """An order's limit per unit-hour for units of ``scu`` SCU (SCU-priced bids converted), and
    how many such units it still wants."""
    per_unit = order.limit_price * scu if order.price_per == "scu" else order.limit_price
    left = order.quantity - order.filled_quantity
    if order.quantity_kind == "units":
        return per_unit, int(left)
    return per_unit, int(left / scu) if scu else 0


def _last_prices(market: Market) -> dict[tuple[int, str], Decimal]:
    """(site id, device slug) → the price of the latest lease cleared there."""
    latest = (
        Lease.objects.filter(market=market)
        .order_by("pool__site_id", "pool__device_model__slug", "-round__number", "-pk")
        .distinct("pool__site_id", "pool__device_model__slug")
        .values_list("pool__site_id", "pool__device_model__slug", "price")
    )
    return {(site_id, slug): price for site_id, slug, price in latest}


def order_book(market: Market, *, now: dt.datetime) -> list[BookClass]:
    """The anonymous book per class (site × device model): asks and the bids that could use
    the class, by price per unit-hour (SCU-priced bids are converted at the class's SCU)."""
    supplies = [
        s for s in supply_of(market, now=now) if s.free_units > 0
    ]  # leased out: not for sale
    sites = {s.pk: s for s in Site.objects.filter(pk__in={s.site_id for s in supplies})}
    grouped: dict[ClassKey, list[Supply]] = {}
    for supply in supplies:
        grouped.setdefault(ClassKey(supply.site_id, supply.device_slug), []).append(supply)
    demands = open_demands(market, now=now)
    last_prices = _last_prices(market)
    book = []
    for key, members in sorted(grouped.items(), key=lambda kv: (kv[0].site_id, kv[0].device_slug)):
        asks: dict[Decimal, Level] = {}
        for supply in members:
            level = asks.setdefault(supply.min_price, Level(supply.min_price, 0, 0))
            level.units += supply.free_units
            level.count += 1
        bids: dict[Decimal, Level] = {}
        scu = members[0].scu_per_unit
        for order, demand in demands:
            if all(exclusion(demand, supply) is not None for supply in members):
                continue
            per_unit, units = bid_terms(order, scu)
            level = bids.setdefault(per_unit, Level(per_unit, 0, 0))
            level.units += units
            level.count += 1
        site = sites[key.site_id]
        book.append(
            BookClass(
                site.name,
                site.region,
                key.device_slug,
                scu,
                sorted(asks.values(), key=lambda lv: lv.price),
                sorted(bids.values(), key=lambda lv: -lv.price),
                last_prices.get((key.site_id, key.device_slug)),
            )
        )
    return book


def draft_demand(draft: OrderRequest, device_slugs: Sequence[str]) -> Demand:
    """The constraints of an order draft (not yet placed), for the preview."""
    return _demand(draft, draft.buyer_location, device_slugs)


# --------------------------------------------------------------------------- market data


def order_leases() -> QuerySet[Lease]:
    """Leases as an order shows them: by start, with their round and market."""
    return Lease.objects.select_related("round", "market").order_by("starts_at", "pk")
