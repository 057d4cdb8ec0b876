"""The book a round clears: open orders whose start window contains the delivery start, and every
offer's free units then, turned into the engine's plain values.

Offers are read ``FOR UPDATE`` in primary-key order, so an offer changed while the round runs waits
for the round's transaction (a change committed just before is simply in the snapshot). Orders are
changed only by services that take the market's lock first (cancel and expiry defer to the round).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from marketplace.compat import Demand, Location, Supply, exclusion
from marketplace.models import (
    OPEN_ORDER_STATUSES,
    Market,
    Offer,
    Order,
    Organization,
    QuantityKind,
)
from marketplace.models.market import Fill as FillPolicy
from marketplace.models.market import Placement
from marketplace.queries import supply_of
from marketplace.services.market import ledger_owner
from matching.engine import SCU_SCALE, Ask, Bid, Book, Class

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ClassInfo:
    """What the round records about a class (market data)."""

    key: str
    device_slug: str
    country: str
    region: str
    scu_per_unit: Decimal
    attributes: dict[str, Any]


@dataclass(slots=True)
class BookOrder:
    """The columns of an order a round reads and writes (the snapshot locks its row)."""

    owner: str  # the ledger owner of its organization
    pk: int
    public_id: uuid.UUID
    organization_id: int
    quantity_kind: str
    quantity: Decimal
    filled_quantity: Decimal
    limit_price: Decimal
    duration_hours: int
    fill: str
    placement: str
    min_fill: Decimal
    hold_amount: int
    hold_transfer_id: uuid.UUID
    status: str
    last_round: int | None = None
    unfilled_reason: str = ""


BOOK_ORDER_FIELDS = (
    "pk",
    "public_id",
    "organization_id",
    "quantity_kind",
    "quantity",
    "filled_quantity",
    "limit_price",
    "duration_hours",
    "fill",
    "placement",
    "min_fill",
    "hold_amount",
    "hold_transfer_id",
    "status",
)
# What makes two orders' compatibility identical (with the device list and the quantity kind).
CONSTRAINT_FIELDS = (
    "min_memory_gb",
    "min_scu_per_unit",
    "allowed_regions",
    "allowed_jurisdictions",
    "buyer_country",
    "buyer_region",
    "buyer_city",
    "max_latency_tier",
    "min_renewable_share",
    "max_pue",
    "verified_only",
)
DEMAND_FIELDS = ("duration_hours", *CONSTRAINT_FIELDS)
_REGIONS = DEMAND_FIELDS.index("allowed_regions")
_JURISDICTIONS = DEMAND_FIELDS.index("allowed_jurisdictions")
ROW_FIELDS = (*BOOK_ORDER_FIELDS, *DEMAND_FIELDS)


@dataclass
class Snapshot:
    market: Market
    delivery_start: dt.datetime
    book: Book
    orders: dict[str, BookOrder]  # bid id → order
    offers: dict[str, Offer]  # ask id → offer
    classes: dict[str, ClassInfo]
    digest: str


def ticks_up(price: Decimal, tick: Decimal) -> int:
    """An ask's minimum price in whole ticks, rounded up (never sells below its minimum)."""
    return int((price / tick).to_integral_value(rounding=ROUND_CEILING))


def ticks_down(price: Decimal, tick: Decimal) -> int:
    """A bid's limit in whole ticks, rounded down (never pays above its limit)."""
    return int((price / tick).to_integral_value(rounding=ROUND_FLOOR))


def _class_of(supply: Supply, at: dt.datetime) -> tuple[str, ClassInfo, Supply]:
    """Pools with identical attributes and lease limits form a class. The representative supply
    stands for all of them in the compatibility check (its window starts at the delivery start)."""
    hours_left = int((supply.available_until - at) / HOUR)
    max_hours = min(supply.max_lease_hours, hours_left)
    attributes: dict[str, Any] = {
        "device": supply.device_slug,
        "memory_gb": str(supply.memory_gb_per_unit),
        "scu_per_unit": str(supply.scu_per_unit),
        "country": supply.location.country,
        "region": supply.location.region,
        "city": supply.location.city,
        "jurisdiction": supply.jurisdiction,
        "pue": str(supply.pue),
        "renewable_share": str(supply.renewable_share),
        "verified": supply.verified,
        "min_lease_hours": supply.min_lease_hours,
        "max_lease_hours": max_hours,
    }
    key = hashlib.sha256(json.dumps(attributes, sort_keys=True).encode()).hexdigest()[:16]
    representative = dataclasses.replace(
        supply,
        offer_id=0,
        pool_id=0,
        site_id=0,
        free_units=1,
        min_price=Decimal(0),
        available_from=at,
        available_until=at + max_hours * HOUR,
        max_lease_hours=max_hours,
    )
    info = ClassInfo(
        key=key,
        device_slug=supply.device_slug,
        country=supply.location.country,
        region=supply.location.region,
        scu_per_unit=supply.scu_per_unit,
        attributes=attributes,
    )
    return key, info, representative


def _demand(devices: tuple[str, ...], values: dict[str, Any], at: dt.datetime) -> Demand:
    """The constraints of an order as the compatibility check reads them, starting at ``at``."""
    country = values.pop("buyer_country")
    region, city = values.pop("buyer_region"), values.pop("buyer_city")
    return Demand(
        device_slugs=devices,
        duration_hours=values.pop("duration_hours"),
        earliest_start=at,
        latest_start=at,
        location=Location(country, region, city) if country else None,
        **values,
    )


def _signature(constraints: tuple[Any, ...]) -> str:
    """A short stable name for a set of constraints (``repr`` of plain values is deterministic)."""
    return hashlib.sha256(repr(constraints).encode()).hexdigest()[:16]


def take(
    market: Market, *, delivery_start: dt.datetime, exclude: frozenset[str] = frozenset()
) -> Snapshot:
    """Lock and read the book of ``market`` for a round delivering from ``delivery_start``,
    leaving out the orders named in ``exclude`` (public ids)."""
    at = delivery_start
    tick = market.price_tick
    offer_rows = {
        o.pk: o
        for o in Offer.objects.select_for_update(of=("self",))
        .filter(market=market, pk__in=_offer_ids(market, at))
        .select_related("pool__site", "pool__device_model")
        .order_by("pk")
    }
    classes: dict[str, ClassInfo] = {}
    representatives: dict[str, Supply] = {}
    asks: list[Ask] = []
    offers: dict[str, Offer] = {}
    for supply in supply_of(market, now=at):
        offer = offer_rows.get(supply.offer_id)
        if offer is None or supply.free_units <= 0 or supply.available_from > at:
            continue
        key, info, representative = _class_of(supply, at)
        if representative.max_lease_hours < representative.min_lease_hours:
            continue  # no lease this offer allows fits in what is left of its window
        classes.setdefault(key, info)
        representatives.setdefault(key, representative)
        ask_id = str(offer.public_id)
        offers[ask_id] = offer
        asks.append(
            Ask(
                id=ask_id,
                cls=key,
                pool=str(offer.pool.public_id),
                units=supply.free_units,
                price=ticks_up(supply.min_price, tick),
                seq=offer.pk,
            )
        )

    open_orders = Order.objects.filter(
        market=market,
        status__in=OPEN_ORDER_STATUSES,
        cancel_requested_at__isnull=True,
        earliest_start__lte=at,
        latest_start__gte=at,
        expires_at__gt=at,
    )
    # Plain rows, not model instances: a round may read 100,000 orders. Not locked FOR UPDATE
    # (that would write every row): whatever changes an order (cancel, expiry) takes the
    # market's lock first and, finding the round running, waits for it (see cancel_order).
    rows = list(open_orders.order_by("pk").values_list(*ROW_FIELDS))
    slugs: dict[int, list[str]] = defaultdict(list)
    through = Order.device_models.through.objects.filter(order_id__in=open_orders.values("pk"))
    for order_id, slug in through.values_list("order_id", "devicemodel__slug"):
        slugs[order_id].append(slug)
    owners = {
        org.pk: ledger_owner(org)
        for org in Organization.objects.filter(pk__in={row[2] for row in rows})
    }
    # The compatibility check fails on the device first: an order naming devices is checked only
    # against the classes of those devices (the same arcs, in the same order, in far fewer calls).
    by_device: dict[str, list[tuple[str, Supply]]] = defaultdict(list)
    for cls, rep in representatives.items():
        by_device[rep.device_slug].append((cls, rep))
    candidates: dict[tuple[str, ...], list[tuple[str, Supply]]] = {}
    bids: list[Bid] = []
    arcs: dict[str, list[str]] = {}
    by_id: dict[str, BookOrder] = {}
    signatures: dict[tuple[Any, ...], str] = {}
    prices: dict[Decimal, int] = {}
    all_or_none, same_pool = FillPolicy.ALL_OR_NONE.value, Placement.SAME_POOL.value
    split = len(BOOK_ORDER_FIELDS)
    for row in rows:
        order = BookOrder(owners[row[2]], *row[:split])
        devices = tuple(sorted(slugs.get(order.pk, ())))
        tail = row[split:]
        # The array columns as tuples (hashable); everything else as read.
        constraints = (
            devices,
            order.quantity_kind,
            *tail[:_REGIONS],
            tuple(tail[_REGIONS]),
            tuple(tail[_JURISDICTIONS]),
            *tail[_JURISDICTIONS + 1 :],
        )
        signature = signatures.get(constraints)
        if signature is None:  # once per distinct set of constraints, not per order
            demand = _demand(devices, dict(zip(DEMAND_FIELDS, tail, strict=True)), at)
            signature = _signature(constraints)
            signatures[constraints] = signature
            pairs = candidates.get(devices)
            if pairs is None:
                pairs = candidates[devices] = [
                    (cls, rep)
                    for cls, rep in representatives.items()
                    if not devices or rep.device_slug in devices
                ]
            arcs[signature] = [cls for cls, rep in pairs if exclusion(demand, rep) is None]
        price = prices.get(order.limit_price)  # limits repeat: one division each
        if price is None:
            price = prices[order.limit_price] = ticks_down(order.limit_price, tick)
        known = _terms(order, price)
        if known is None:
            continue
        bid_id = str(order.public_id)
        if bid_id in exclude:
            continue
        quantity, min_fill, per_scu = known
        bids.append(
            Bid(
                id=bid_id,
                signature=signature,
                quantity=quantity,
                price=price,
                seq=order.pk,
                hours=order.duration_hours,
                per_scu=per_scu,
                all_or_none=order.fill == all_or_none,
                same_pool=order.placement == same_pool,
                min_fill=min_fill,
            )
        )
        by_id[bid_id] = order
    book = Book(
        asks=tuple(asks),
        bids=tuple(bids),
        arcs=arcs,
        classes={k: Class(k, scu=_scu(info.scu_per_unit)) for k, info in classes.items()},
    )
    return Snapshot(
        market=market,
        delivery_start=at,
        book=book,
        orders=by_id,
        offers=offers,
        classes=classes,
        digest=digest(book, market=market, delivery_start=at),
    )


def _offer_ids(market: Market, at: dt.datetime) -> list[int]:
    return list(
        Offer.objects.filter(
            market=market, status="active", available_from__lte=at, available_until__gt=at
        ).values_list("pk", flat=True)
    )


def _scu(value: Decimal) -> int:
    return int((value * SCU_SCALE).to_integral_value(rounding=ROUND_FLOOR))


def _terms(order: BookOrder, price: int) -> tuple[int, int, bool] | None:
    """A bid's quantity, minimum fill and whether it counts SCU, from the order's quantities
    (None: nothing left to buy, or a limit of ``price`` ticks, below one tick)."""
    left = order.quantity - order.filled_quantity
    per_scu = order.quantity_kind == QuantityKind.SCU
    scale = SCU_SCALE if per_scu else 1
    quantity = int((left * scale).to_integral_value(rounding=ROUND_FLOOR))
    min_fill = int((min(order.min_fill, left) * scale).to_integral_value(rounding=ROUND_CEILING))
    if quantity <= 0 or price <= 0:
        return None
    return quantity, max(min_fill, 1), per_scu


def digest(book: Book, *, market: Market, delivery_start: dt.datetime) -> str:
    """SHA-256 of the canonical snapshot: what a regulator re-clears to check a round."""
    canonical = {
        "market": market.slug,
        "delivery_start": delivery_start.isoformat(),
        "tick": str(market.price_tick),
        "asks": sorted((a.id, a.cls, a.pool, a.units, a.price, a.seq) for a in book.asks),
        "bids": sorted(
            (
                b.id,
                b.signature,
                b.quantity,
                b.price,
                b.seq,
                b.hours,
                b.per_scu,
                b.all_or_none,
                b.same_pool,
                b.min_fill,
            )
            for b in book.bids
        ),
        "arcs": {s: sorted(cs) for s, cs in sorted(book.arcs.items())},
        "classes": {k: c.scu for k, c in sorted(book.classes.items())},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
