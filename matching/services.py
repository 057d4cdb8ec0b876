"""The clearing service: one round of one market, from the book in PostgreSQL to leases and ledger
moves, in one transaction.

Guarantees
- One writer per market: the round holds the market's advisory lock (``market_lock_id``) for its
  whole transaction; cancels that arrive meanwhile are recorded and applied right after.
- Once per slot: ``ClearingRound(market, number)`` is UNIQUE and ``number`` is the slot of the
  delivery start, so a redelivered or duplicated task finds the round and does nothing.
- All or nothing: the round, its classes, leases, ledger transfers, order and offer states and
  events commit together; an exception anywhere (after the engine ran, too) leaves no trace.

Money per filled order (all in the market's currency, minor units)
- The order's charge is Σ price × units × hours over its leases, rounded **once** (half-even) for
  the order, plus the buyer fee rounded once the same way; the order's hold is posted for exactly
  that (the rest goes back to the wallet) and, if the order stays open, a new hold of what is left
  of the old one is placed for the remaining quantity.
- Each lease gets its share of the charge; the sub-unit remainders of the split go to the leases
  with the largest fractional parts (ties: lease order), so Σ lease costs = the order's charge and
  every buyer payment equals a seller receipt to the minor unit. The charge stays posted in the
  order's hold account (reference ``order:<id>``), from which settlement pays each lease's provider.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from psycopg.types.json import Jsonb

from ledger import services as ledger
from ledger.db import raw_cursor, send_queued
from ledger.models import Kind, Purpose
from ledger.money import cost
from marketplace.models import (
    LIVE_LEASE_STATUSES,
    OPEN_ORDER_STATUSES,
    ClearingRound,
    Lease,
    LeaseStatus,
    Market,
    NotificationKind,
    Offer,
    OfferEvent,
    OfferStatus,
    Order,
    OrderEvent,
    OrderStatus,
    Organization,
    QuantityKind,
    RoundClass,
)
from marketplace.notifications.services import notify
from marketplace.trading.orders import HOLD_GRACE, apply_requested_cancels
from marketplace.trading.rules import BP, market_lock_id
from matching import engine, snapshot

NAMESPACE = uuid.UUID("6f1d8a52-93c4-4e0b-8d7e-1b2c3d4e5f60")


def slot(market: Market, now: dt.datetime) -> int:
    """The number of the round whose delivery starts at the latest interval boundary ≤ now."""
    return int(now.timestamp()) // market.round_seconds


def slot_start(market: Market, number: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(number * market.round_seconds, tz=dt.UTC)


@dataclass(frozen=True)
class Outcome:
    round: ClearingRound
    created: bool  # False: the slot had been cleared already and nothing was done
    cancels_applied: int = 0


class LedgerRefused(Exception):
    """The ledger refused some orders' moves (e.g. a hold that is no longer pending)."""

    def __init__(self, orders: set[str], detail: str) -> None:
        super().__init__(detail)
        self.orders = orders


MAX_ATTEMPTS = 3


def clear_round(*, market: Market, now: dt.datetime, number: int | None = None) -> Outcome:
    """Clear ``market``'s round for slot ``number`` (default: the slot of ``now``).

    If the ledger refuses an order's moves (its hold was voided or expired behind the market's
    back), the whole attempt rolls back and the round runs again without that order, which is
    rejected with the reason in its history: one bad order never blocks a market.
    """
    number = slot(market, now) if number is None else number
    refused: set[str] = set()
    for attempt in range(MAX_ATTEMPTS):
        try:
            with engine.without_cyclic_gc(), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [market_lock_id(market)])
                done = ClearingRound.objects.filter(market=market, number=number).first()
                if done is not None:
                    return Outcome(done, created=False)
                cleared = _clear(market, number=number, now=now, refused=frozenset(refused))
            break
        except LedgerRefused as error:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            refused |= error.orders
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [market_lock_id(market)])
        cancels = apply_requested_cancels(market=market, now=now)
    return Outcome(cleared, created=True, cancels_applied=cancels)


def _clear(
    market: Market, *, number: int, now: dt.datetime, refused: frozenset[str]
) -> ClearingRound:
    started = time.monotonic()
    snap = snapshot.take(market, delivery_start=slot_start(market, number), exclude=refused)
    clearing = engine.clear(
        snap.book,
        mip_time_limit=settings.MATCHING_MIP_TIME_LIMIT,
        trade_reduction=settings.MATCHING_TRADE_REDUCTION,
    )
    violations = engine.verify(snap.book, clearing)
    cleared = _write(snap, clearing, violations, number=number, now=now, started=started)
    if refused:
        _reject(cleared, refused, now=now)
    return cleared


def _reject(rnd: ClearingRound, orders: frozenset[str], *, now: dt.datetime) -> None:
    """Orders whose hold the ledger no longer has cannot trade: rejected, with the reason."""
    for order in Order.objects.filter(public_id__in=orders, status__in=OPEN_ORDER_STATUSES):
        # Release whatever is still held (usually nothing: the hold is why it was refused).
        ledger.transfer(
            ledger.NewTransfer(
                id=uuid.uuid5(NAMESPACE, f"reject:{order.hold_transfer_id}"),
                kind=Kind.VOID,
                pending_id=order.hold_transfer_id,
                metadata={"order": str(order.public_id), "reason": "rejected"},
            ),
            now=now,
        )
        order.status = OrderStatus.REJECTED
        order.unfilled_reason = ""
        order.save(update_fields=["status", "unfilled_reason"])
        OrderEvent.objects.create(
            order=order,
            kind="rejected",
            status=order.status,
            actor="system:matcher",
            at=now,
            data={"round": rnd.number, "reason": "hold_unavailable"},
        )


def clear_due_rounds(*, now: dt.datetime) -> list[Outcome]:
    """Clear every open market's current slot (the beat task; a slot already done is skipped)."""
    return [
        clear_round(market=market, now=now)
        for market in Market.objects.filter(active=True).order_by("pk")
    ]


# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _LeaseDraft:
    order: snapshot.BookOrder
    offer: Offer
    fill: engine.Fill
    price: Decimal
    exact: Decimal  # price × units × hours, unrounded
    public_id: uuid.UUID
    key: str  # the public id as text (events and notifications name leases by it)
    cost: int = 0
    fee: int = 0


@dataclass
class _OrderPlan:
    """What a round does to one filled order."""

    order: snapshot.BookOrder
    leases: list[_LeaseDraft]
    cost: int  # what the buyer pays for the leases: Σ price × units × hours, rounded once
    charge: int  # cost + fee
    charge_id: uuid.UUID  # the ledger transfer that captures the order's hold for the charge
    filled: Decimal  # quantity filled this round (units or SCU)
    next_hold: int  # what is left of the hold for the remaining quantity (0: none)
    next_hold_id: uuid.UUID | None  # the new hold's transfer, when there is one

    @property
    def stays_open(self) -> bool:
        return self.next_hold > 0


def _split(total: int, parts: Sequence[Decimal]) -> list[int]:
    """Split ``total`` minor units in proportion to ``parts``: floors, then the remainder to the
    largest fractional parts (ties to the earlier part)."""
    if len(parts) == 1:  # most orders fill from one offer: all of it, as the loop below gives
        return [total] if parts[0] else [0]
    whole = sum(parts, Decimal(0))
    if not whole:
        return [0] * len(parts)
    exact = [Decimal(total) * p / whole for p in parts]
    floors = [int(x) for x in exact]
    left = total - sum(floors)
    ranked = sorted(range(len(parts)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in ranked[:left]:
        floors[i] += 1
    return floors


def _plans(
    snap: snapshot.Snapshot, clearing: engine.Clearing, *, number: int
) -> dict[str, _OrderPlan]:
    market = snap.market
    tick, currency, market_id = market.price_tick, market.currency, market.pk
    prices: dict[int, Decimal] = {}  # ticks → price (a round has a price per class)
    drafts: dict[str, list[_LeaseDraft]] = defaultdict(list)  # order public id → its leases
    for f in clearing.fills:
        order, offer = snap.orders[f.bid], snap.offers[f.ask]
        price = prices.get(f.price)
        if price is None:
            price = prices[f.price] = tick * f.price
        public_id = uuid.uuid5(NAMESPACE, f"lease:{market_id}:{number}:{f.bid}:{f.ask}")
        drafts[f.bid].append(
            _LeaseDraft(
                order=order,
                offer=offer,
                fill=f,
                price=price,
                exact=price * f.units * order.duration_hours,
                public_id=public_id,
                key=str(public_id),
            )
        )
    plans: dict[str, _OrderPlan] = {}
    for bid_id, leases in drafts.items():
        order = leases[0].order
        exact = sum((d.exact for d in leases), Decimal(0))
        charge = cost(exact, 1, currency)
        fee = cost(exact * market.buyer_fee_bps / BP, 1, currency)
        parts = [d.exact for d in leases]
        for d, share, fee_share in zip(
            leases, _split(charge, parts), _split(fee, parts), strict=True
        ):
            d.cost, d.fee = share, fee_share
        if order.quantity_kind == QuantityKind.SCU:
            filled = sum((d.offer.pool.scu_per_unit * d.fill.units for d in leases), Decimal(0))
        else:
            filled = Decimal(sum(d.fill.units for d in leases))
        unfilled = order.filled_quantity + filled < order.quantity
        left = order.hold_amount - (charge + fee)
        next_hold = left if unfilled and left > 0 else 0
        plans[bid_id] = _OrderPlan(
            order=order,
            leases=leases,
            cost=charge,
            charge=charge + fee,
            # The bid id is the order's public id as text.
            charge_id=uuid.uuid5(NAMESPACE, f"post:{market_id}:{number}:{bid_id}"),
            filled=filled,
            next_hold=next_hold,
            next_hold_id=(
                uuid.uuid5(NAMESPACE, f"hold:{market_id}:{number}:{bid_id}") if next_hold else None
            ),
        )
    return plans


def _write(
    snap: snapshot.Snapshot,
    clearing: engine.Clearing,
    violations: list[str],
    *,
    number: int,
    now: dt.datetime,
    started: float,
) -> ClearingRound:
    market = snap.market
    tick = market.price_tick
    reasons = dict(clearing.unfilled)
    traded = {f.bid for f in clearing.fills}
    with _meanwhile() as send:
        # Orders that traded nothing only record the round and why: the server rewrites them while
        # the plans are made.
        idle = [(o.pk, reasons.get(b, "")) for b, o in snap.orders.items() if b not in traded]
        send(UPDATE_IDLE_ORDERS_SQL, [number, [pk for pk, _ in idle], [r for _, r in idle]])
        plans = _plans(snap, clearing, number=number)
    drafts = [d for plan in plans.values() for d in plan.leases]
    # Each side from its own figures: buyers pay their orders' costs (each rounded once, the fee
    # apart), sellers receive their leases' costs (the orders' costs split per lease). A split
    # that lost or made a minor unit shows as a difference, and the round's CHECK constraint
    # (round_budget_balanced) refuses the round.
    payments = sum(plan.cost for plan in plans.values())
    receipts = sum(d.cost for d in drafts)
    rnd = ClearingRound.objects.create(
        market=market,
        number=number,
        delivery_start=snap.delivery_start,
        mechanism=clearing.mechanism,
        optimal=clearing.optimal,
        inputs_digest=snap.digest,
        result_digest=clearing.digest(),
        orders=len(snap.book.bids),
        offers=len(snap.book.asks),
        volume_units=clearing.volume_units,
        volume_unit_hours=clearing.volume_unit_hours,
        welfare_per_hour=tick * clearing.welfare,
        welfare=tick * clearing.welfare_total,
        buyer_payments=payments,
        seller_receipts=receipts,
        certificate={
            "violations": violations,
            "fills": len(clearing.fills),
            "bids": len(snap.book.bids),
            "asks": len(snap.book.asks),
            "buyer_payments": payments,
            "seller_receipts": receipts,
            "remainders": "each order's charge is rounded once; sub-unit remainders of its "
            "split go to its leases with the largest fractional parts",
        },
        certificate_ok=not violations,
        notes=list(clearing.notes),
        started_at=now,
        # Snapshot and engine time; the writes that follow are in the benchmark's figures.
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    offered: dict[str, int] = defaultdict(int)
    for a in snap.book.asks:
        offered[a.cls] += a.units
    RoundClass.objects.bulk_create(
        [
            RoundClass(
                round=rnd,
                key=p.cls,
                device_slug=snap.classes[p.cls].device_slug,
                region=snap.classes[p.cls].region,
                country=snap.classes[p.cls].country,
                attributes=snap.classes[p.cls].attributes,
                scu_per_unit=snap.classes[p.cls].scu_per_unit,
                price=None if p.price is None else tick * p.price,
                price_low=None if p.low is None else tick * p.low,
                price_high=None if p.high is None else tick * p.high,
                offered_units=offered[p.cls],
                units=p.units,
                unit_hours=p.unit_hours,
            )
            for p in clearing.prices
        ]
    )
    accounts, expires = _accounts(rnd, plans)
    _create_leases(rnd, plans)
    transfers = _transfers(rnd, plans, accounts, expires, now=now)
    _notify_scheduled(rnd, drafts, now=now)
    with _meanwhile() as send:
        # The server's share of the rest runs while Python checks the ledger's moves and makes
        # the events. First the ledger's reads and locks (nothing is queued before them), then
        # the filled orders' rewrite while the moves are checked, then their write, then the
        # leases' foreign keys (five checks each), checked now rather than at the commit (all
        # of them deferrable, initially deferred) while the events are made.
        batch = ledger.open_batch(transfers, now=now)
        send(UPDATE_FILLED_ORDERS_SQL, _filled_orders(plans, reasons, number=number))
        _refuse(rnd, transfers, batch.write())
        send("SET CONSTRAINTS ALL IMMEDIATE")
        send("SET CONSTRAINTS ALL DEFERRED")
        events = _order_events(snap, plans, number=number, now=now)
    _copy(OrderEvent._meta.db_table, ORDER_EVENT_COLUMNS, events)
    _update_offers({d.offer.pk: d.offer for d in drafts}, now=now, number=number)
    return rnd


# Columns the round writes by binary COPY or ``unnest``, named in the order its rows and parameters
# are built; each column's PostgreSQL type comes from its model field (binary COPY must name each
# column's exact type). tests/matching/test_clearing_columns.py keeps them in step with the
# models: every concrete column of Lease and OrderEvent is written or left to the database (below,
# with why), every column of Order is rewritten by the round or deliberately kept.
_PG_TYPES = {  # a field's database type without modifiers → the type sent
    "uuid": "uuid",
    "bigint": "bigint",
    "integer": "integer",
    "smallint": "smallint",
    "boolean": "boolean",
    "numeric": "numeric",
    "varchar": "text",  # the same binary form
    "text": "text",
    "timestamp with time zone": "timestamptz",
    "jsonb": "jsonb",
}


def _pg_type(field: models.Field[Any, Any]) -> str:
    db_type = field.db_type(connection) or ""
    pg_type = _PG_TYPES.get(db_type.split("(", 1)[0].strip())
    if pg_type is None:
        raise ImproperlyConfigured(f"{field} ({db_type}): no type for binary COPY or unnest")
    return pg_type


def _columns(model: type[models.Model], names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(column, PostgreSQL type) of ``model``'s columns ``names``, in that order."""
    fields = {f.column: f for f in model._meta.concrete_fields}
    unknown = [name for name in names if name not in fields]
    if unknown or len(set(names)) != len(names):
        raise ImproperlyConfigured(f"{model.__name__}: unknown or repeated columns in {names}")
    return tuple((name, _pg_type(fields[name])) for name in names)


# _create_leases builds each row in this order.
LEASE_COLUMNS = _columns(
    Lease,
    (
        "public_id",
        "market_id",
        "round_id",
        "order_id",
        "offer_id",
        "pool_id",
        "buyer_id",
        "provider_id",
        "class_key",
        "units",
        "price",
        "scu_per_unit",
        "duration_hours",
        "starts_at",
        "ends_at",
        "cost",
        "buyer_fee",
        "charge_transfer_id",
        "status",
        "created_at",
        "close_reason",
        "closed_by",
    ),
)
# COPY knows no model defaults: a column it does not name gets the database's (NULL, or the
# identity's next value).
LEASE_LEFT_TO_DATABASE = {
    "id": "identity: the database numbers the rows",
    "closed_at": "NULL: a new lease has not ended",
    "reclaim_at": "NULL: a new lease has no reclaim notice",
}
# _order_events builds each row in this order.
ORDER_EVENT_COLUMNS = _columns(OrderEvent, ("order_id", "kind", "status", "actor", "at", "data"))
ORDER_EVENT_LEFT_TO_DATABASE = {"id": "identity: the database numbers the rows"}


@contextlib.contextmanager
def _meanwhile() -> Iterator[Callable[..., None]]:
    """A function that sends a statement for the server to run while the block's Python goes on
    (psycopg's pipeline mode, the statement sent whole at once: ``send_queued``). Their results,
    or the first error, are awaited when the block ends, in the round's transaction. Inside the
    block other statements on the connection queue up behind them (a read waits for them).
    Database errors are raised as Django's."""
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors, raw.pipeline(), psycopg.Cursor(raw) as cursor:

        def send(statement: str, params: Sequence[Any] | None = None) -> None:
            cursor.execute(statement, params)
            send_queued()

        yield send


def _copy(table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows with binary COPY on the round's own connection and transaction (a round writes
    tens of thousands of leases and events; INSERT with client-side quoting costs seconds, text
    COPY a second). COPY knows no model defaults: every column is given."""
    if rows and len(rows[0]) != len(columns):  # the rows are built alike: the first stands for all
        raise ValueError(f"{table}: rows of {len(rows[0])} values for {len(columns)} columns")
    names = ", ".join(name for name, _type in columns)
    statement = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
    with raw_cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([type_ for _name, type_ in columns])
        for row in rows:
            copy.write_row(row)


def _create_leases(rnd: ClearingRound, plans: dict[str, _OrderPlan]) -> None:
    start, created, scheduled = rnd.delivery_start, rnd.started_at, LeaseStatus.SCHEDULED.value
    # What a lease takes from its offer, once per offer (a round may write 50,000 leases).
    pools: dict[int, tuple[int, int, Decimal]] = {}  # offer → pool, provider, SCU per unit
    for plan in plans.values():
        for d in plan.leases:
            if d.offer.pk not in pools:
                pool = d.offer.pool
                pools[d.offer.pk] = (pool.pk, pool.site.organization_id, pool.scu_per_unit)
    rows = []  # in the order of LEASE_COLUMNS
    for plan in plans.values():
        order = plan.order
        end = start + dt.timedelta(hours=order.duration_hours)
        for d in plan.leases:
            pool_id, provider_id, scu_per_unit = pools[d.offer.pk]
            rows.append(
                (
                    d.public_id,
                    rnd.market_id,
                    rnd.pk,
                    order.pk,
                    d.offer.pk,
                    pool_id,
                    order.organization_id,
                    provider_id,
                    d.fill.cls,
                    d.fill.units,
                    d.price,
                    scu_per_unit,
                    order.duration_hours,
                    start,
                    end,
                    d.cost,
                    d.fee,
                    plan.charge_id,
                    scheduled,
                    created,
                    "",  # the blank close reason and actor
                    "",
                )
            )
    _copy(Lease._meta.db_table, LEASE_COLUMNS, rows)


def _notify_scheduled(
    rnd: ClearingRound, drafts: Sequence[_LeaseDraft], *, now: dt.datetime
) -> None:
    """One ``lease.scheduled`` notification per buyer and provider organization per round."""
    by_org: dict[int, list[str]] = defaultdict(list)
    for d in drafts:
        by_org[d.order.organization_id].append(d.key)
        by_org[d.offer.pool.site.organization_id].append(d.key)
    for org in Organization.objects.filter(pk__in=by_org).order_by("pk"):
        leases = by_org[org.pk]
        notify(
            organizations=[org],
            kind=NotificationKind.LEASE_SCHEDULED,
            now=now,
            payload={"round": rnd.number, "leases": leases[:1000], "count": len(leases)},
        )


def _accounts(
    rnd: ClearingRound, plans: dict[str, _OrderPlan]
) -> tuple[dict[ledger.AccountKey, int], dict[int, dt.datetime]]:
    """The wallets and hold accounts the round's transfers name, and the expiry of the orders
    that stay open (their new hold's timeout).

    A post or void names only the pending hold (the ledger takes the accounts from it): only a
    top-up or a new hold needs the wallet and the hold account, and a round may fill 100,000
    orders of which few need either."""
    currency = rnd.market.currency
    needy = [p for p in plans.values() if p.charge > p.order.hold_amount or p.stays_open]
    keys: list[ledger.AccountKey] = []
    for plan in needy:
        owner = plan.order.owner
        keys.append(ledger.AccountKey(owner, Purpose.WALLET, currency))
        keys.append(
            ledger.AccountKey(owner, Purpose.ORDER_HOLD, currency, f"order:{plan.order.public_id}")
        )
    accounts = ledger.open_accounts(keys, now=rnd.started_at) if keys else {}
    expires = dict(
        Order.objects.filter(pk__in=[p.order.pk for p in needy if p.stays_open]).values_list(
            "pk", "expires_at"
        )
    )
    return accounts, expires


def _transfers(
    rnd: ClearingRound,
    plans: dict[str, _OrderPlan],
    accounts: dict[ledger.AccountKey, int],
    expires: dict[int, dt.datetime],
    *,
    now: dt.datetime,
) -> list[ledger.NewTransfer]:
    """Per filled order: post its hold for the charge (the rest returns to the wallet) and hold
    what is left for the remaining quantity (first a top-up of the hold, when rounding at exactly
    the limit price makes the charge a minor unit more than it)."""
    currency = rnd.market.currency
    transfers: list[ledger.NewTransfer] = []
    for bid_id, plan in plans.items():
        order = plan.order
        meta = {"order": bid_id, "round": rnd.number}
        wallet = hold = 0
        if plan.charge > order.hold_amount or plan.stays_open:
            owner = order.owner
            wallet = accounts[ledger.AccountKey(owner, Purpose.WALLET, currency)]
            hold = accounts[
                ledger.AccountKey(owner, Purpose.ORDER_HOLD, currency, f"order:{order.public_id}")
            ]
        if plan.charge > order.hold_amount:
            transfers.append(
                ledger.NewTransfer(
                    id=uuid.uuid5(NAMESPACE, f"topup:{rnd.pk}:{bid_id}"),
                    debit_account_id=wallet,
                    credit_account_id=hold,
                    amount=plan.charge - order.hold_amount,
                    metadata={**meta, "reason": "rounding"},
                )
            )
        transfers.append(
            ledger.NewTransfer(
                id=plan.charge_id,
                kind=Kind.POST if plan.charge else Kind.VOID,
                pending_id=order.hold_transfer_id,
                amount=min(plan.charge, order.hold_amount) if plan.charge else None,
                metadata=meta,
            )
        )
        if plan.next_hold_id is not None:
            transfers.append(
                ledger.NewTransfer(
                    id=plan.next_hold_id,
                    debit_account_id=wallet,
                    credit_account_id=hold,
                    amount=plan.next_hold,
                    kind=Kind.PENDING,
                    timeout=int((expires[order.pk] - now + HOLD_GRACE).total_seconds()),
                    metadata={**meta, "reason": "remaining quantity"},
                )
            )
    return transfers


def _refuse(
    rnd: ClearingRound, transfers: Sequence[ledger.NewTransfer], results: Sequence[ledger.Result]
) -> None:
    """Any refusal in the round's ledger batch aborts the round, naming the orders refused."""
    failed = [(t, r) for t, r in zip(transfers, results, strict=True) if r != ledger.Result.OK]
    if failed:
        raise LedgerRefused(
            {str(t.metadata["order"]) for t, _ in failed},
            f"round {rnd.number}: the ledger refused {[(t.id, r) for t, r in failed[:5]]}",
        )


def _update_orders_sql(columns: Sequence[tuple[str, str]]) -> str:
    """An UPDATE of orders by ``unnest``: the first column gets one value for all (the round's
    number), each other one its array; the parameters are the first value, the orders' ids, then
    one array per other column, in order."""
    (first, first_type), *rest = columns
    pk = Order._meta.pk
    if pk is None:  # never: a concrete model has one
        raise ImproperlyConfigured("Order has no primary key")
    sets = ", ".join([f"{first} = %b::{first_type}", *(f"{c} = t.{c}" for c, _ in rest)])
    arrays = ", ".join(f"%b::{t}[]" for t in [_pg_type(pk), *(t for _, t in rest)])
    names = ", ".join(["id", *(c for c, _ in rest)])
    return (
        f"UPDATE {Order._meta.db_table} AS o SET {sets}\n"  # noqa: S608 - names from the model
        f"FROM unnest({arrays}) AS t({names})\n"
        f"WHERE o.{pk.column} = t.id\n"
    )


# Every order in the snapshot records the round and why it is (partly) unfilled; filled ones get
# their new quantity, status and hold. One statement each: bulk_update's CASE chains grow with the
# batch. The columns are named in the order of the statements' parameters (_write, _filled_orders).
ORDER_IDLE_COLUMNS = _columns(Order, ("last_round", "unfilled_reason"))
ORDER_FILLED_COLUMNS = _columns(
    Order,
    (
        "last_round",
        "unfilled_reason",
        "filled_quantity",
        "status",
        "hold_transfer_id",
        "hold_amount",
    ),
)
UPDATE_IDLE_ORDERS_SQL = _update_orders_sql(ORDER_IDLE_COLUMNS)
UPDATE_FILLED_ORDERS_SQL = _update_orders_sql(ORDER_FILLED_COLUMNS)


def _filled_orders(
    plans: dict[str, _OrderPlan], reasons: Mapping[str, str], *, number: int
) -> list[Any]:
    """``UPDATE_FILLED_ORDERS_SQL``'s parameters: an order that stays open keeps its reason and
    gets the new hold; one filled in full has no reason."""
    ids: list[int] = []
    why: list[str] = []
    filled: list[Decimal] = []
    statuses: list[str] = []
    holds: list[uuid.UUID] = []
    amounts: list[int] = []
    for bid_id, plan in plans.items():
        order = plan.order
        ids.append(order.pk)
        filled.append(order.filled_quantity + plan.filled)
        if plan.next_hold_id is not None:
            why.append(reasons.get(bid_id, ""))
            statuses.append(OrderStatus.PARTIALLY_FILLED.value)
            holds.append(plan.next_hold_id)
            amounts.append(plan.next_hold)
        else:
            why.append("")
            statuses.append(OrderStatus.FILLED.value)
            holds.append(order.hold_transfer_id)
            amounts.append(order.hold_amount)
    return [number, ids, why, filled, statuses, holds, amounts]


def _order_events(
    snap: snapshot.Snapshot, plans: dict[str, _OrderPlan], *, number: int, now: dt.datetime
) -> list[tuple[Any, ...]]:
    """One event per filled order, in the book's order: what it got this round, and its new
    status."""
    events: list[tuple[Any, ...]] = []
    for plan in (plans[b] for b in snap.orders if b in plans):
        status = (
            OrderStatus.PARTIALLY_FILLED.value
            if plan.next_hold_id is not None
            else OrderStatus.FILLED.value
        )
        data = {
            "round": number,
            "units": sum(d.fill.units for d in plan.leases),
            "filled": str(plan.filled),
            "charge": plan.charge,
            "leases": [d.key for d in plan.leases],
        }
        events.append((plan.order.pk, status, status, "system:matcher", now, Jsonb(data)))
    return events


EXHAUSTED_SQL = """
SELECT o.id FROM marketplace_offer o
JOIN marketplace_lease l ON l.offer_id = o.id
WHERE o.id = ANY(%s) AND l.status = ANY(%s)
  AND l.ends_at > o.available_until - make_interval(hours => o.min_lease_hours)
GROUP BY o.id, o.units HAVING sum(l.units) >= o.units
"""


def _update_offers(offers: dict[int, Offer], *, now: dt.datetime, number: int) -> None:
    """An offer whose every unit is leased until too late for another minimum-length lease is
    exhausted."""
    if not offers:
        return
    with connection.cursor() as cursor:
        cursor.execute(EXHAUSTED_SQL, [list(offers), list(LIVE_LEASE_STATUSES)])
        exhausted = sorted(row[0] for row in cursor.fetchall())
    Offer.objects.filter(pk__in=exhausted).update(status=OfferStatus.EXHAUSTED)
    OfferEvent.objects.bulk_create(
        OfferEvent(
            offer_id=pk,
            kind=OfferStatus.EXHAUSTED,
            status=OfferStatus.EXHAUSTED,
            actor="system:matcher",
            at=now,
            data={"round": number},
        )
        for pk in exhausted
    )
