"""The round's fast writes stay in step with the models: every column of a lease and an order event
is written by the round's COPY or left to the database on purpose, every column of an order is
rewritten by the round or kept on purpose; a lease and an event written by the round are the rows
the plain ORM writes; and a round's buyer payments and seller receipts come each from its own side.

A field added to Lease, OrderEvent or Order fails the first three tests, naming the field: write
it in ``matching/services.py`` (the column list and the row or parameters built in its order) or
list it with its reason among the columns left alone."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from django.db import IntegrityError, models, transaction

from ledger.models import Kind, Transfer
from marketplace.core.access import Principal
from marketplace.models import (
    ClearingRound,
    Lease,
    Market,
    Offer,
    Order,
    OrderEvent,
    OrderStatus,
    Organization,
    Pool,
    RoundClass,
)
from matching import services as matching
from tests.fixtures.clearing import list_offer, place
from tests.fixtures.market import HOUR, NOW

# The order columns a round leaves as they are, and why (the round rewrites the others:
# matching.services.ORDER_FILLED_COLUMNS).
_TERMS = "the order's terms, fixed when it is placed"
ORDER_KEPT = {
    "id": "the identity",
    "public_id": "the identity",
    "created_at": "when it was placed",
    "placed_by": "who placed it",
    "market_id": _TERMS,
    "organization_id": _TERMS,
    "quantity_kind": _TERMS,
    "quantity": _TERMS,
    "min_memory_gb": _TERMS,
    "min_scu_per_unit": _TERMS,
    "duration_hours": _TERMS,
    "earliest_start": _TERMS,
    "latest_start": _TERMS,
    "limit_price": _TERMS,
    "price_per": _TERMS,
    "allowed_regions": _TERMS,
    "allowed_jurisdictions": _TERMS,
    "buyer_country": _TERMS,
    "buyer_region": _TERMS,
    "buyer_city": _TERMS,
    "max_latency_tier": _TERMS,
    "min_renewable_share": _TERMS,
    "max_pue": _TERMS,
    "verified_only": _TERMS,
    "placement": _TERMS,
    "fill": _TERMS,
    "min_fill": _TERMS,
    "expires_at": _TERMS,
    "cancel_requested_at": "set by a cancel, applied after the round (apply_requested_cancels)",
}


def unaccounted(
    model: type[models.Model], written: Sequence[tuple[str, str]], left: Collection[str]
) -> list[str]:
    """What is wrong with ``written`` + ``left`` as the whole of ``model``'s concrete columns."""
    columns = [f.column for f in model._meta.concrete_fields]
    names = [name for name, _type in written]
    problems = [
        f"{model.__name__}.{column} is neither written by the round nor listed as left alone"
        for column in columns
        if column not in names and column not in left
    ]
    problems += [
        f"{model.__name__}.{name} is not a column of the model"
        for name in [*names, *left]
        if name not in columns
    ]
    problems += [
        f"{model.__name__}.{name} is both written and left alone" for name in names if name in left
    ]
    return problems


def test_every_lease_column_is_written_or_left_to_the_database() -> None:
    assert unaccounted(Lease, matching.LEASE_COLUMNS, matching.LEASE_LEFT_TO_DATABASE) == []


def test_every_order_event_column_is_written_or_left_to_the_database() -> None:
    assert (
        unaccounted(OrderEvent, matching.ORDER_EVENT_COLUMNS, matching.ORDER_EVENT_LEFT_TO_DATABASE)
        == []
    )


def test_every_order_column_is_rewritten_by_a_round_or_kept() -> None:
    assert unaccounted(Order, matching.ORDER_FILLED_COLUMNS, ORDER_KEPT) == []
    # Orders that traded nothing get a part of the same columns, the round's number first.
    assert matching.ORDER_FILLED_COLUMNS[:2] == matching.ORDER_IDLE_COLUMNS
    assert matching.ORDER_FILLED_COLUMNS[0][0] == "last_round"


def test_a_column_added_to_a_model_is_named() -> None:
    # A model with a column the round does not know is the model with the round's list short of it.
    written = [c for c in matching.LEASE_COLUMNS if c[0] != "units"]
    assert unaccounted(Lease, written, matching.LEASE_LEFT_TO_DATABASE) == [
        "Lease.units is neither written by the round nor listed as left alone"
    ]
    assert unaccounted(Lease, matching.LEASE_COLUMNS, {"id", "closed_at"}) == [
        "Lease.reclaim_at is neither written by the round nor listed as left alone"
    ]


@pytest.mark.parametrize(
    ("model", "left"),
    [
        (Lease, matching.LEASE_LEFT_TO_DATABASE),
        (OrderEvent, matching.ORDER_EVENT_LEFT_TO_DATABASE),
    ],
)
def test_columns_left_to_the_database_get_a_value_there(
    model: type[models.Model], left: Mapping[str, str]
) -> None:
    """COPY applies no model default: a column it leaves out is the identity or may be NULL."""
    fields = {f.column: f for f in model._meta.concrete_fields}
    for column, reason in left.items():
        field = fields[column]
        assert reason
        assert field.primary_key or field.null, f"{model.__name__}.{column} is NOT NULL"


def test_the_column_types_are_the_models() -> None:
    # Binary COPY sends each value in the type named: the names follow the model's fields.
    types = dict(matching.LEASE_COLUMNS)
    assert (types["units"], types["price"], types["cost"], types["class_key"]) == (
        "integer",
        "numeric",
        "bigint",
        "text",
    )
    assert dict(matching.ORDER_EVENT_COLUMNS)["data"] == "jsonb"


# ------------------------------------------------------------------------------------------------


def minor(amount: Decimal) -> int:
    """CNY in fen, rounded half-even (as the ledger rounds)."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def two_orders_two_offers(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> tuple[list[Order], list[Offer]]:
    """Two offers of one pool at 80.00 and two orders at 80.00 that take all 10 units: the price
    is 80.00, and one order gets units of both offers (two leases)."""
    offers = [list_offer(seller, market, pool, units=6), list_offer(seller, market, pool, units=4)]
    orders = [
        place(funded_buyer, market, quantity=Decimal(7), limit_price=Decimal("80.00")),
        place(funded_buyer, market, quantity=Decimal(3), limit_price=Decimal("80.00")),
    ]
    return orders, offers


def columns(row: models.Model) -> dict[str, Any]:
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}


@pytest.mark.django_db
def test_a_round_writes_the_leases_and_events_the_orm_would_write(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    orders, offers = two_orders_two_offers(market, seller, pool, funded_buyer)
    holds = {o.pk: o.hold_transfer_id for o in orders}  # before the round replaces them

    rnd = matching.clear_round(market=market, now=NOW).round

    leases = list(Lease.objects.filter(round=rnd).order_by("pk"))
    assert len(leases) == 3
    order_of = {o.pk: o for o in orders}
    offer_of = {o.pk: o for o in offers}
    klass = RoundClass.objects.get(round=rnd)
    assert klass.price == Decimal("80.00")
    expected: list[Lease] = []
    for lease in leases:
        order, offer = order_of[lease.order_id], offer_of[lease.offer_id]
        exact = klass.price * lease.units * order.duration_hours
        pool_ = offer.pool
        expected.append(
            Lease(
                public_id=uuid.uuid5(
                    matching.NAMESPACE,
                    f"lease:{market.pk}:{rnd.number}:{order.public_id}:{offer.public_id}",
                ),
                market=market,
                round=rnd,
                order=order,
                offer=offer,
                pool=pool_,
                buyer=order.organization,
                provider=pool_.site.organization,
                class_key=klass.key,
                units=lease.units,
                price=klass.price,
                scu_per_unit=pool_.scu_per_unit,
                duration_hours=order.duration_hours,
                starts_at=NOW,
                ends_at=NOW + order.duration_hours * HOUR,
                # Whole fen at 80.00, so each lease's share of its order's charge and fee is
                # exact: no remainder to place.
                cost=minor(exact),
                buyer_fee=minor(exact * market.buyer_fee_bps / 10_000),
                charge_transfer_id=Transfer.objects.get(
                    kind=Kind.POST, pending_id=holds[order.pk]
                ).id,
                created_at=rnd.started_at,
                # status, closed_at, close_reason, closed_by, reclaim_at: the model's defaults
            )
        )
    assert sum(x.units for x in leases) == 10
    assert {x.order_id for x in leases} == {o.pk for o in orders}
    events = list(OrderEvent.objects.filter(data__round=rnd.number).order_by("pk"))
    expected_events = [
        OrderEvent(
            order=order,
            kind=OrderStatus.FILLED,
            status=OrderStatus.FILLED,
            actor="system:matcher",
            at=NOW,
            data={
                "round": rnd.number,
                "units": int(order.quantity),
                "filled": str(Decimal(int(order.quantity))),
                "charge": sum(x.cost + x.buyer_fee for x in expected if x.order_id == order.pk),
                "leases": [str(x.public_id) for x in leases if x.order_id == order.pk],
            },
        )
        for order in orders
    ]

    # then each row is, column by column, the row the ORM writes from those values
    fast = [columns(x) for x in leases] + [columns(x) for x in events]
    with transaction.atomic():
        Lease.objects.filter(round=rnd).delete()  # (the events are append-only: added beside)
        for row in [*expected, *expected_events]:
            row.save()
        slow = [columns(Lease.objects.get(pk=x.pk)) for x in expected] + [
            columns(OrderEvent.objects.get(pk=x.pk)) for x in expected_events
        ]
        transaction.set_rollback(True)
    for got, want in zip(fast, slow, strict=True):
        got.pop("id"), want.pop("id")
        assert got == want


@pytest.mark.django_db
def test_buyer_payments_and_seller_receipts_each_add_up_their_own_side(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
) -> None:
    orders, _offers = two_orders_two_offers(market, seller, pool, funded_buyer)
    holds = [o.hold_transfer_id for o in orders]

    rnd = matching.clear_round(market=market, now=NOW).round

    leases = Lease.objects.filter(round=rnd)
    # Sellers: what their leases are worth, lease by lease.
    assert rnd.seller_receipts == sum(x.cost for x in leases) == 800_000  # 80.00 × 10 units × 10 h
    # Buyers: each order's price × units × hours rounded once, from the leases' terms alone...
    exact: dict[int, Decimal] = defaultdict(Decimal)
    for x in leases:
        exact[x.order_id] += x.price * x.units * x.duration_hours
    assert rnd.buyer_payments == sum(minor(e) for e in exact.values()) == 800_000
    # ... and what the ledger took from their holds, less the buyer fee.
    posted = sum(
        Transfer.objects.filter(kind=Kind.POST, pending_id__in=holds).values_list(
            "amount", flat=True
        )
    )
    fees = sum(minor(e * market.buyer_fee_bps / 10_000) for e in exact.values())
    assert rnd.buyer_payments == posted - fees
    assert rnd.certificate["buyer_payments"] == rnd.certificate["seller_receipts"] == 800_000


@pytest.mark.django_db
def test_a_split_that_loses_a_minor_unit_unbalances_the_round_and_is_refused(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Buyer payments and seller receipts are two sums: a lease short of its share of the order's
    cost makes them differ, and the round is refused (round_budget_balanced), leaving nothing."""
    two_orders_two_offers(market, seller, pool, funded_buyer)
    split = matching._split

    def lossy(total: int, parts: Sequence[Decimal]) -> list[int]:
        shares = split(total, parts)
        shares[0] -= 1
        return shares

    monkeypatch.setattr(matching, "_split", lossy)
    with pytest.raises(IntegrityError, match="round_budget_balanced"):
        matching.clear_round(market=market, now=NOW)
    assert not ClearingRound.objects.exists() and not Lease.objects.exists()

    monkeypatch.undo()
    rnd = matching.clear_round(market=market, now=NOW).round
    assert rnd.buyer_payments == rnd.seller_receipts == 800_000
