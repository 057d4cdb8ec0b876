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
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from operator import itemgetter
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import F, Func, OuterRef, QuerySet, TextField
from django.db.models.functions import Cast

from ledger.db import raw_cursor
from marketplace.core.owners import ledger_owner
from marketplace.models import (
    OPEN_ORDER_STATUSES,
    DeviceModel,
    Market,
    Offer,
    Order,
    Organization,
    QuantityKind,
)
from marketplace.models.trading import FillPolicy, Placement
from marketplace.trading.eligibility import Demand, Location, Supply, exclusion
from marketplace.trading.queries import supply_of
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
# The columns of an order's row as the snapshot reads it (see _order_rows): the order's, the bid's
# id, then its constraints, as one slice: its devices' ids and DEMAND_FIELDS, arrays as text.
_ARRAYS = ("allowed_regions", "allowed_jurisdictions")
_ORDER_COLUMNS = (
    *BOOK_ORDER_FIELDS,
    "bid_id",
    "device_ids",
    *(f"{name}_json" if name in _ARRAYS else name for name in DEMAND_FIELDS),
)
_PK, _ORGANIZATION, _KIND, _QUANTITY, _FILLED, _LIMIT, _HOURS, _FILL, _PLACEMENT, _MIN_FILL = (
    BOOK_ORDER_FIELDS.index(name)
    for name in (
        "pk",
        "organization_id",
        "quantity_kind",
        "quantity",
        "filled_quantity",
        "limit_price",
        "duration_hours",
        "fill",
        "placement",
        "min_fill",
    )
)
_DEMAND = len(BOOK_ORDER_FIELDS)
_BID_ID = _ORDER_COLUMNS.index("bid_id")
_CONSTRAINTS = _ORDER_COLUMNS.index("device_ids")
_CHUNK = 1000  # rows per message from the server while streaming


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
    slugs = _device_slugs()
    while (
        read := _bids(open_orders, representatives, slugs, at=at, tick=tick, exclude=exclude)
    ) is None:
        slugs = _device_slugs()  # an order names a device model added since: read both again
    bids, arcs, by_id = read
    # The ledger owner of each order's organization, read once the stream has ended (until its
    # last row the connection can run nothing else).
    owners = {
        org.pk: ledger_owner(org)
        for org in Organization.objects.filter(
            pk__in={order.organization_id for order in by_id.values()}
        )
    }
    for order in by_id.values():
        order.owner = owners[order.organization_id]
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


def _device_slugs() -> dict[int, str]:
    return dict(DeviceModel.objects.values_list("pk", "slug"))


def _bids(
    open_orders: QuerySet[Order],
    representatives: dict[str, Supply],
    slugs: dict[int, str],
    *,
    at: dt.datetime,
    tick: Decimal,
    exclude: frozenset[str],
) -> tuple[list[Bid], dict[str, list[str]], dict[str, BookOrder]] | None:
    """The bids of ``open_orders`` but those in ``exclude``, in primary-key order, the classes
    each signature accepts, and the orders by bid id (their owners left blank); or None if an
    order names a device model missing from ``slugs``.

    Plain rows, not model instances: a round may read 100,000 orders. Not locked FOR UPDATE
    (that would write every row): whatever changes an order (cancel, expiry) takes the market's
    lock first and, finding the round running, waits for it (see cancel_order). One statement
    reads each order with its devices (an order placed meanwhile is in it with its devices or not
    at all). Its rows are streamed: the server reads and sends the next ones while this works on
    these."""
    sql, params = _order_rows(open_orders).query.sql_with_params()
    # The compatibility check fails on the device first: an order naming devices is checked only
    # against the classes of those devices (the same arcs, in the same order, in far fewer calls).
    candidates: dict[tuple[str, ...], list[tuple[str, Supply]]] = {}
    bids: list[Bid] = []
    arcs: dict[str, list[str]] = {}
    by_id: dict[str, BookOrder] = {}
    # Signatures by the constraints as read (one slice of the row), and by the constraints as
    # values: the first is quick to look up; the second merges rows whose texts differ but whose
    # constraints are equal (a device list in another order), as reading values alone did.
    signatures: dict[tuple[Any, ...], str] = {}
    by_constraints: dict[tuple[Any, ...], str] = {}
    prices: dict[Decimal, int] = {}
    amounts: dict[tuple[Any, ...], tuple[int, int, bool] | None] = {}
    all_or_none, same_pool = FillPolicy.ALL_OR_NONE.value, Placement.SAME_POOL.value
    stale = False
    with raw_cursor() as cursor:
        for row in cursor.stream(sql, params, size=_CHUNK):
            pk = row[_PK]
            as_read = row[_KIND], row[_CONSTRAINTS:]
            signature = signatures.get(as_read)
            if signature is None:  # once per distinct set of constraints, not per order
                try:
                    devices, values = _constraints(row, slugs)
                except KeyError:
                    stale = True  # the rows left still have to be read
                    continue
                # The array columns as tuples (hashable); everything else as read.
                constraints = (
                    devices,
                    row[_KIND],
                    *values[:_REGIONS],
                    tuple(values[_REGIONS]),
                    tuple(values[_JURISDICTIONS]),
                    *values[_JURISDICTIONS + 1 :],
                )
                signature = by_constraints.get(constraints)
                if signature is None:
                    demand = _demand(devices, dict(zip(DEMAND_FIELDS, values, strict=True)), at)
                    signature = by_constraints[constraints] = _signature(constraints)
                    pairs = candidates.get(devices)
                    if pairs is None:
                        pairs = candidates[devices] = [
                            (cls, rep)
                            for cls, rep in representatives.items()
                            if not devices or rep.device_slug in devices
                        ]
                    arcs[signature] = [cls for cls, rep in pairs if exclusion(demand, rep) is None]
                signatures[as_read] = signature
            # Limits and quantities repeat from order to order: each distinct one is worked out in
            # Decimal once (equal values give equal whole numbers, whatever their exponents).
            limit = row[_LIMIT]
            price = prices.get(limit)
            if price is None:
                price = prices[limit] = ticks_down(limit, tick)
            quantities = row[_KIND], row[_QUANTITY], row[_FILLED], row[_MIN_FILL]
            try:
                known = amounts[quantities]
            except KeyError:
                known = amounts[quantities] = _terms(*quantities)
            if known is None or price <= 0:
                continue
            bid_id = row[_BID_ID]
            if bid_id in exclude:
                continue
            quantity, min_fill, per_scu = known
            bids.append(
                Bid(
                    id=bid_id,
                    signature=signature,
                    quantity=quantity,
                    price=price,
                    seq=pk,
                    hours=row[_HOURS],
                    per_scu=per_scu,
                    all_or_none=row[_FILL] == all_or_none,
                    same_pool=row[_PLACEMENT] == same_pool,
                    min_fill=min_fill,
                )
            )
            by_id[bid_id] = BookOrder("", *row[:_DEMAND])  # its owner below
    return None if stale else (bids, arcs, by_id)


def _order_rows(open_orders: QuerySet[Order]) -> QuerySet[Order, tuple[Any, ...]]:
    """The rows of ``open_orders`` in primary-key order, laid out as ``_ORDER_COLUMNS`` says.

    The array columns come as text, one string each, which a row's constraints are looked up by
    as read; only the few distinct ones are turned back into lists (see ``_constraints``). The
    devices come as the ids of their models (their slugs would cost the server a join per
    order), the allowed regions and jurisdictions as JSON, which ``json.loads`` turns back into
    the same strings. The public id comes as text too: it is the bid's id (the server prints a
    UUID as ``str`` does, for a fraction of the cost of 100,000 calls)."""
    devices = ArraySubquery(
        Order.device_models.through.objects.filter(order_id=OuterRef("pk")).values("devicemodel_id")
    )
    return (
        open_orders.order_by("pk")
        .annotate(
            bid_id=Cast("public_id", output_field=TextField()),
            device_ids=Cast(devices, output_field=TextField()),
            **{f"{name}_json": _json_text(F(name)) for name in _ARRAYS},
        )
        .values_list(*_ORDER_COLUMNS)
    )


def _json_text(expression: Any) -> Cast:
    return Cast(Func(expression, function="to_json", output_field=TextField()), TextField())


def _constraints(row: tuple[Any, ...], slugs: dict[int, str]) -> tuple[tuple[str, ...], list[Any]]:
    """The devices of an order's row (their slugs, sorted) and its DEMAND_FIELDS values, arrays
    as lists. KeyError: a device not in ``slugs``."""
    ids = row[_CONSTRAINTS][1:-1]  # an array of integers as PostgreSQL prints it: {3,7}
    devices = tuple(sorted(slugs[int(i)] for i in (ids.split(",") if ids else ())))
    values = list(row[_CONSTRAINTS + 1 :])
    values[_REGIONS] = json.loads(values[_REGIONS])
    values[_JURISDICTIONS] = json.loads(values[_JURISDICTIONS])
    return devices, values


def _offer_ids(market: Market, at: dt.datetime) -> list[int]:
    return list(
        Offer.objects.filter(
            market=market, status="active", available_from__lte=at, available_until__gt=at
        ).values_list("pk", flat=True)
    )


def _scu(value: Decimal) -> int:
    return int((value * SCU_SCALE).to_integral_value(rounding=ROUND_FLOOR))


def _terms(
    quantity_kind: str, quantity: Decimal, filled_quantity: Decimal, min_fill: Decimal
) -> tuple[int, int, bool] | None:
    """A bid's quantity, minimum fill and whether it counts SCU, from an order's quantities
    (None: nothing left to buy)."""
    left = quantity - filled_quantity
    per_scu = quantity_kind == QuantityKind.SCU
    scale = SCU_SCALE if per_scu else 1
    whole = int((left * scale).to_integral_value(rounding=ROUND_FLOOR))
    least = int((min(min_fill, left) * scale).to_integral_value(rounding=ROUND_CEILING))
    if whole <= 0:
        return None
    return whole, max(least, 1), per_scu


def digest(book: Book, *, market: Market, delivery_start: dt.datetime) -> str:
    """SHA-256 of the canonical snapshot: what a regulator re-clears to check a round."""
    canonical = {
        "market": market.slug,
        "delivery_start": delivery_start.isoformat(),
        "tick": str(market.price_tick),
        "asks": _sorted([(a.id, a.cls, a.pool, a.units, a.price, a.seq) for a in book.asks]),
        "bids": _sorted(
            [
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
            ]
        ),
        "arcs": {s: sorted(cs) for s, cs in sorted(book.arcs.items())},
        "classes": {k: c.scu for k, c in sorted(book.classes.items())},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``sorted(rows)``, sooner: by the first item alone (an id, as a plain string comparison,
    without comparing tuples), which is the same order when no two rows share it; when some do,
    by whole rows after all."""
    first = itemgetter(0)
    rows.sort(key=first)
    if len(set(map(first, rows))) < len(rows):
        rows.sort()
    return rows
