"""The clearing service against PostgreSQL: from an offer and an order to a lease with exact ledger
balances; once per slot; all or nothing; cancels during a round; no double-booking."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import DataError, connections

from ledger import services as ledger
from ledger.models import Account, Transfer
from marketplace.core.access import Principal
from marketplace.models import (
    ClearingRound,
    Lease,
    LeaseStatus,
    Market,
    Offer,
    OfferEvent,
    OfferStatus,
    Order,
    OrderEvent,
    OrderStatus,
    Organization,
    Pool,
    RoundClass,
)
from marketplace.trading import orders as trading_orders
from marketplace.trading import queries, rules
from matching import services as matching
from matching import tasks
from tests.fixtures.clearing import list_offer, place
from tests.fixtures.market import HOUR, NOW, wallet_of

pytestmark = pytest.mark.django_db


def balance(owner: Organization, purpose: str, reference: str = "") -> tuple[int, int]:
    """(posted credits − posted debits, pending debits) of one account."""
    account = Account.objects.get(
        owner=f"org:{owner.public_id}", purpose=purpose, reference=reference
    )
    return account.credits_posted - account.debits_posted, account.debits_pending


def state() -> tuple[int, ...]:
    return (
        ClearingRound.objects.count(),
        RoundClass.objects.count(),
        Lease.objects.count(),
        Transfer.objects.count(),
        OrderEvent.objects.count(),
        OfferEvent.objects.count(),
        Order.objects.filter(status=OrderStatus.OPEN).count(),
    )


def test_an_offer_and_an_order_become_a_lease_with_exact_ledger_moves(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal, buyer_org: Organization
) -> None:
    offer = list_offer(seller, market, pool)  # 6 units at 80.00 per unit-hour
    order = place(funded_buyer, market)  # 4 units × 10 h at most 100.00: hold 4,000 + 1% fee
    assert wallet_of(buyer_org).debits_pending == 404_000

    outcome = matching.clear_round(market=market, now=NOW)

    rnd = outcome.round
    assert outcome.created
    assert (rnd.number, rnd.delivery_start) == (int(NOW.timestamp()) // 60, NOW)
    assert (rnd.orders, rnd.offers, rnd.volume_units, rnd.volume_unit_hours) == (1, 1, 4, 40)
    assert rnd.certificate_ok and rnd.certificate["violations"] == []
    # The 2 unsold units at 80.00 cap the price at the ask: 80.00 is the only equilibrium price.
    assert rnd.welfare_per_hour == Decimal("80.00")  # (100 − 80) × 4 units
    assert rnd.buyer_payments == rnd.seller_receipts == 320_000
    klass = RoundClass.objects.get(round=rnd)
    assert (klass.price, klass.price_low, klass.price_high) == (
        Decimal(80),
        Decimal(80),
        Decimal(80),
    )
    assert (klass.units, klass.offered_units, klass.device_slug) == (4, 6, "nvidia-h100-sxm")

    lease = Lease.objects.get()
    assert (lease.order_id, lease.offer_id, lease.units, lease.price) == (
        order.pk,
        offer.pk,
        4,
        Decimal(80),
    )
    assert (lease.starts_at, lease.ends_at, lease.status) == (NOW, NOW + 10 * HOUR, "scheduled")
    assert (lease.cost, lease.buyer_fee) == (320_000, 3_200)  # 80 × 4 × 10 h; 1% buyer fee

    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.unfilled_reason) == (
        OrderStatus.FILLED,
        Decimal(4),
        "",
    )
    # The hold became the charge (kept in the order's hold account until settlement pays it out);
    # the rest went back to the wallet.
    assert balance(buyer_org, "wallet") == (1_000_000 - 323_200, 0)
    assert balance(buyer_org, "order_hold", f"order:{order.public_id}") == (323_200, 0)
    charge = Transfer.objects.get(id=lease.charge_transfer_id)
    assert (charge.kind, charge.amount, charge.pending_id) == (
        "post",
        323_200,
        order.hold_transfer_id,
    )
    assert list(order.events.order_by("pk").values_list("kind", flat=True)) == [
        "placed",
        "filled",
    ]


def test_a_repeated_round_does_nothing(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool)
    place(funded_buyer, market)
    first = matching.clear_round(market=market, now=NOW)
    before = state()

    again = matching.clear_round(market=market, now=NOW + dt.timedelta(seconds=30))

    assert (again.created, again.round.pk) == (False, first.round.pk)
    assert state() == before


def test_a_crash_after_the_engine_ran_leaves_no_trace(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    list_offer(seller, market, pool)
    order = place(funded_buyer, market)
    before = state()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker lost")

    monkeypatch.setattr(matching, "_update_offers", crash)  # the last write of a round
    with pytest.raises(RuntimeError, match="worker lost"):
        matching.clear_round(market=market, now=NOW)

    assert_no_trace_and_a_retry_clears(before, order, market, monkeypatch)


def assert_no_trace_and_a_retry_clears(
    before: Any, order: Order, market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed round left the database as it was; undone, the next round trades."""
    assert state() == before
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.last_round) == (
        OrderStatus.OPEN,
        Decimal(0),
        None,
    )
    monkeypatch.undo()
    assert matching.clear_round(market=market, now=NOW).round.volume_units == 4  # the retry


@pytest.mark.parametrize(
    "where", ["_plans", "_order_events", "UPDATE_FILLED_ORDERS_SQL", "ledger._WRITE_SQL"]
)
def test_a_failure_while_statements_sent_ahead_run_leaves_no_trace(
    where: str,
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The round sends order updates and constraint checks ahead and goes on in Python while the
    server runs them: a crash in that Python, or a statement sent ahead that fails on the server,
    still rolls the whole round back, and the connection serves the retry."""
    list_offer(seller, market, pool)
    order = place(funded_buyer, market)
    before = state()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker lost")

    if where == "UPDATE_FILLED_ORDERS_SQL":  # fails on the server, after it was sent
        failing = matching.UPDATE_FILLED_ORDERS_SQL.replace(
            "hold_amount = t.hold_amount", "hold_amount = t.hold_amount / 0"
        )
        monkeypatch.setattr(matching, where, failing)
        expected: tuple[type[Exception], str] = (DataError, "division by zero")
    elif where == "ledger._WRITE_SQL":  # the ledger's write, sent in pipeline mode, fails
        failing = ledger._WRITE_SQL.replace("credits_posted = v.cpo", "credits_posted = v.cpo / 0")
        monkeypatch.setattr(ledger, "_WRITE_SQL", failing)
        expected = (DataError, "division by zero")
    else:
        monkeypatch.setattr(matching, where, crash)
        expected = (RuntimeError, "worker lost")
    with pytest.raises(expected[0], match=expected[1]):
        matching.clear_round(market=market, now=NOW)

    assert_no_trace_and_a_retry_clears(before, order, market, monkeypatch)


def test_a_cancel_during_a_round_takes_effect_after_it(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
) -> None:
    list_offer(seller, market, pool)
    order = place(funded_buyer, market)
    params = connections["default"].get_connection_params()
    round_in_progress = psycopg.connect(
        **{k: v for k, v in params.items() if k != "cursor_factory"}
    )
    try:
        round_in_progress.execute("SELECT pg_advisory_lock(%s)", [rules.market_lock_id(market)])
        pending = trading_orders.cancel_order(principal=funded_buyer, order=order, now=NOW)
    finally:
        round_in_progress.close()
    assert pending.status == OrderStatus.OPEN

    outcome = matching.clear_round(market=market, now=NOW)

    assert (outcome.round.orders, outcome.round.volume_units, outcome.cancels_applied) == (0, 0, 1)
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert not Lease.objects.exists()
    assert balance(buyer_org, "wallet") == (1_000_000, 0)


def test_a_partial_fill_keeps_what_is_left_of_the_hold_for_the_rest(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
) -> None:
    list_offer(seller, market, pool, available_until=NOW + 10 * HOUR)  # 6 units for 10 h
    order = place(funded_buyer, market, quantity=Decimal(8))  # hold 808,000
    old_hold = order.hold_transfer_id

    matching.clear_round(market=market, now=NOW)

    order.refresh_from_db()
    # Demand exceeds supply: the price rises to the bid (100.00), 6 units, charge 606,000.
    assert (order.status, order.filled_quantity, order.unfilled_reason) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal(6),
        "rationed",
    )
    assert Lease.objects.get().price == Decimal(100)
    assert (order.hold_amount, order.hold_transfer_id != old_hold) == (808_000 - 606_000, True)
    assert balance(buyer_org, "wallet") == (1_000_000 - 606_000, 202_000)
    # Every unit is leased to the end of the offer's window: nothing is left to sell.
    assert Offer.objects.get().status == OfferStatus.EXHAUSTED
    assert OfferEvent.objects.filter(kind="exhausted").count() == 1


def test_leased_units_are_not_sold_twice(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
) -> None:
    list_offer(seller, market, pool)  # 6 units
    place(funded_buyer, market)  # 4 units for 10 h
    matching.clear_round(market=market, now=NOW)
    later = place(funded_buyer, market, latest_start=NOW + 3 * HOUR)

    second = matching.clear_round(market=market, now=NOW + HOUR)

    assert second.round.volume_units == 2
    later.refresh_from_db()
    assert (later.status, later.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, Decimal(2))
    assert sum(Lease.objects.values_list("units", flat=True)) == 6


def test_a_market_with_no_supply_clears_an_empty_round(
    market: Market, funded_buyer: Principal, buyer_org: Organization
) -> None:
    order = place(funded_buyer, market)

    rnd = matching.clear_round(market=market, now=NOW).round

    assert (rnd.orders, rnd.offers, rnd.volume_units, rnd.certificate_ok) == (1, 0, 0, True)
    order.refresh_from_db()
    assert (order.status, order.unfilled_reason, order.last_round) == (
        OrderStatus.OPEN,
        "no_compatible_supply",
        rnd.number,
    )
    assert balance(buyer_org, "wallet") == (1_000_000, 404_000)  # the hold stays


def test_an_order_whose_latest_start_is_the_delivery_start_still_trades(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool)
    order = place(funded_buyer, market, earliest_start=NOW, latest_start=NOW)

    matching.clear_round(market=market, now=NOW + dt.timedelta(seconds=5))

    order.refresh_from_db()
    assert order.expires_at == NOW + dt.timedelta(seconds=market.round_seconds)
    assert (order.status, Lease.objects.get().starts_at) == (OrderStatus.FILLED, NOW)


def test_an_order_priced_out_says_so(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool)  # at 80.00
    order = place(funded_buyer, market, limit_price=Decimal("70.00"))

    matching.clear_round(market=market, now=NOW)

    order.refresh_from_db()
    assert (order.status, order.unfilled_reason) == (OrderStatus.OPEN, "priced_out")
    assert not Lease.objects.exists()


def test_the_command_clears_a_round(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    capsys: pytest.CaptureFixture[str],
) -> None:
    list_offer(seller, market, pool, available_from=NOW - HOUR)
    place(funded_buyer, market)

    call_command("clear_round", "--market", "cny", "--now", NOW.isoformat())

    assert "4 units traded" in capsys.readouterr().out
    lease = Lease.objects.get()
    assert lease.status == LeaseStatus.SCHEDULED
    assert ClearingRound.objects.get().number == int(NOW.timestamp()) // 60  # the slot of --now


@pytest.mark.parametrize("value", ["2026-11-23T12:00:00", "yesterday"])
def test_the_command_refuses_a_now_without_an_offset_or_not_iso(
    market: Market, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(CommandError, match="--now"):
        call_command("clear_round", "--market", "cny", "--now", value)

    assert not ClearingRound.objects.exists()


def test_an_all_or_none_order_that_cannot_be_filled_gets_nothing(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
) -> None:
    list_offer(seller, market, pool)  # 6 units
    order = place(funded_buyer, market, quantity=Decimal(8), fill="all_or_none")

    rnd = matching.clear_round(market=market, now=NOW).round

    order.refresh_from_db()
    assert (rnd.mechanism, rnd.volume_units) == ("mip", 0)
    assert (order.status, order.unfilled_reason) == (
        OrderStatus.OPEN,
        "all_or_none_unsatisfiable",
    )
    assert balance(buyer_org, "wallet") == (1_000_000, 808_000)


def test_a_second_buyer_is_a_second_lease(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    provider_org: Organization,
) -> None:
    list_offer(seller, market, pool)
    place(funded_buyer, market, quantity=Decimal(2))
    place(funded_buyer, market, quantity=Decimal(3), limit_price=Decimal("90.00"))

    matching.clear_round(market=market, now=NOW)

    leases = list(Lease.objects.order_by("units"))
    assert [(lease.units, lease.price) for lease in leases] == [
        (2, Decimal(80)),
        (3, Decimal(80)),
    ]
    assert {lease.provider_id for lease in leases} == {provider_org.pk}


def test_the_beat_task_clears_each_market_once_per_slot(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool)
    place(funded_buyer, market)

    with time_machine.travel(NOW + dt.timedelta(seconds=5), tick=False):
        first = tasks.clear_due_rounds()
        again = tasks.clear_due_rounds()  # the same slot: a redelivered or duplicated task

    assert (first, again) == (1, 0)
    assert ClearingRound.objects.get().number == int(NOW.timestamp()) // 60
    assert Lease.objects.count() == 1


def test_the_book_shows_the_last_clearing_price(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool)
    assert [c.last_price for c in queries.order_book(market, now=NOW)] == [None]
    place(funded_buyer, market)

    matching.clear_round(market=market, now=NOW)

    assert [c.last_price for c in queries.order_book(market, now=NOW)] == [Decimal(80)]


def test_an_order_whose_hold_is_gone_is_rejected_and_the_round_goes_on(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
) -> None:
    list_offer(seller, market, pool)  # 6 units
    broken = place(funded_buyer, market, quantity=Decimal(2), limit_price=Decimal("120.00"))
    healthy = place(funded_buyer, market)  # 4 units
    # The hold disappears behind the market's back (say, voided by hand in the ledger).
    assert (
        ledger.transfer(
            ledger.NewTransfer(id=uuid.uuid4(), kind="void", pending_id=broken.hold_transfer_id),
            now=NOW,
        )
        == ledger.Result.OK
    )

    rnd = matching.clear_round(market=market, now=NOW).round

    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert (rnd.orders, rnd.volume_units) == (1, 4)
    assert (broken.status, healthy.status) == (OrderStatus.REJECTED, OrderStatus.FILLED)
    assert broken.events.get(kind="rejected").data == {
        "round": rnd.number,
        "reason": "hold_unavailable",
    }
    assert balance(buyer_org, "wallet") == (1_000_000 - 323_200, 0)  # only the healthy charge


def test_units_leased_out_leave_the_book(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool, units=4)
    place(funded_buyer, market)  # takes all 4 units for 10 hours

    matching.clear_round(market=market, now=NOW)

    assert queries.order_book(market, now=NOW + HOUR) == []
