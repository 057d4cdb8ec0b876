"""Public market data (reads): cleared rounds with their class prices, the price history per device,
region and unit size, and the depth per device model and unit size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import (
    CharField,
    F,
    Max,
    Min,
    Prefetch,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Cast, Concat, Lag

from marketplace.models import (
    ClearingRound,
    Market,
    RoundClass,
)
from marketplace.trading.eligibility import Supply, exclusion
from marketplace.trading.queries import bid_terms, open_demands, supply_of


def rounds_of(market: Market) -> QuerySet[ClearingRound]:
    """A market's cleared rounds, newest (highest slot number) first."""
    return ClearingRound.objects.filter(market=market).order_by("-number")


def _classes() -> QuerySet[RoundClass]:
    return RoundClass.objects.order_by("device_slug", "region", "key")


def round_of(market: Market, number: int) -> ClearingRound | None:
    """One round with its classes (prefetched as ``classes``, by device, region and key)."""
    return (
        rounds_of(market)
        .filter(number=number)
        .prefetch_related(Prefetch("classes", queryset=_classes()))
        .first()
    )


def last_round(market: Market) -> ClearingRound | None:
    """The market's latest round, with its classes prefetched like ``round_of``."""
    return rounds_of(market).prefetch_related(Prefetch("classes", queryset=_classes())).first()


@dataclass(frozen=True)
class PricePoint:
    round: int
    delivery_start: dt.datetime
    price: Decimal  # per unit-hour: the lowest price among the group's classes in the round
    price_high: Decimal  # the highest (the same when one class was priced)
    price_per_scu: Decimal | None  # ``price`` per SCU-hour
    units: int  # traded in the group's classes in the round


@dataclass
class PriceSeries:
    device: str
    region: str
    scu_per_unit: Decimal
    points: list[PricePoint]


_SERIES = ("device_slug", "region", "scu_per_unit")


def price_history(
    market: Market,
    *,
    key: str | None = None,
    device: str | None = None,
    region: str | None = None,
    limit: int = 500,
) -> list[PriceSeries]:
    """Clearing prices over the rounds per device model, region and unit size (SCU per unit), only
    where they changed: a series' first priced round and every later one whose lowest or highest
    class price differs from its previous priced round. Rounds where the series had no price are
    skipped. Series, not class keys, because a class's key also records how many hours its
    offers have left, so the same pool's class key changes from round to round.

    Filtered by class key, device model and region; the latest ``limit`` points overall, oldest
    first within each series."""
    rows = RoundClass.objects.filter(round__market=market, price__isnull=False)
    if key:
        rows = rows.filter(key=key)
    if device:
        rows = rows.filter(device_slug=device)
    if region:
        rows = rows.filter(region=region)
    prices = Concat(Cast(Min("price"), CharField()), Value("/"), Cast(Max("price"), CharField()))
    # One row per series and round; the window compares it with the series' previous round, and
    # the filter on it applies to the window's result (Django runs the window in a subquery).
    changed = (
        rows.values(*_SERIES, number=F("round__number"), start=F("round__delivery_start"))
        .annotate(low=Min("price"), high=Max("price"), units=Sum("units"), prices=prices)
        .annotate(
            previous=Window(
                # django-stubs types Lag's default as an int; Django takes any expression.
                Lag("prices", default=Value("")),  # type: ignore[arg-type]
                partition_by=[F(name) for name in _SERIES],
                order_by=F("round__number").asc(),
            )
        )
        .exclude(previous=F("prices"))
        .order_by("-number", *_SERIES)[:limit]
    )
    series: dict[tuple[str, str, Decimal], PriceSeries] = {}
    for row in reversed(list(changed)):
        group = (row["device_slug"], row["region"], row["scu_per_unit"])
        scu = group[2]
        series.setdefault(group, PriceSeries(*group, [])).points.append(
            PricePoint(
                row["number"],
                row["start"],
                row["low"],
                row["high"],
                # as RoundClass.price_per_scu
                (row["low"] / scu).quantize(Decimal("0.000001")) if scu else None,
                row["units"],
            )
        )
    return [series[group] for group in sorted(series)]


@dataclass(frozen=True)
class DepthPoint:
    price: Decimal  # per unit-hour
    units: int  # cumulative


@dataclass
class Depth:
    """The book's cumulative curves for one device model and unit size: ``bids`` from the highest
    limit down (units wanted at or above each price), ``asks`` from the lowest minimum up (free
    units offered at or below each price)."""

    device: str
    scu_per_unit: Decimal
    bids: list[DepthPoint]
    asks: list[DepthPoint]


def _cumulative(levels: dict[Decimal, int], *, descending: bool) -> list[DepthPoint]:
    points, total = [], 0
    for price in sorted(levels, reverse=descending):
        total += levels[price]
        points.append(DepthPoint(price, total))
    return points


def depth(market: Market, *, now: dt.datetime) -> list[Depth]:
    """Depth per device model and unit size (SCU per unit), from the same supply and open orders
    as ``order_book``. An order counts once per group, however many of its classes it could use;
    offers with no free units and orders with nothing left to fill are left out."""
    groups: dict[tuple[str, Decimal], list[Supply]] = {}
    for supply in supply_of(market, now=now):
        if supply.free_units > 0:
            groups.setdefault((supply.device_slug, supply.scu_per_unit), []).append(supply)
    demands = open_demands(market, now=now)
    out = []
    for (device_slug, scu), members in sorted(groups.items()):
        asks: dict[Decimal, int] = {}
        for supply in members:
            asks[supply.min_price] = asks.get(supply.min_price, 0) + supply.free_units
        bids: dict[Decimal, int] = {}
        for order, demand in demands:
            if all(exclusion(demand, supply) is not None for supply in members):
                continue
            per_unit, units = bid_terms(order, scu)
            if units > 0:
                bids[per_unit] = bids.get(per_unit, 0) + units
        out.append(
            Depth(
                device_slug,
                scu,
                _cumulative(bids, descending=True),
                _cumulative(asks, descending=False),
            )
        )
    return out
