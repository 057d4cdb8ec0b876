"""A round and a concurrent change, with real commits: the change waits for the round's row locks,
then applies to what the round left; nothing is half-written."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections

from marketplace.core.access import Principal
from marketplace.models import (
    ClearingRound,
    Lease,
    Market,
    Offer,
    OfferStatus,
    Order,
    OrderStatus,
    Organization,
    Pool,
)
from marketplace.trading import orders, supply
from matching import engine
from matching import services as matching
from tests.fixtures.clearing import list_offer, place
from tests.fixtures.market import NOW, acting, fund


@pytest.fixture
def buyer_principal(committed_db: None, buyer: Any, buyer_org: Organization) -> Principal:
    fund(buyer_org, 1_000_000)
    return acting(buyer)


def run_in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except Exception as error:  # noqa: BLE001 - handed to the test, which asserts on it
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def paused_engine(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the round stop inside its transaction, after the snapshot locked its rows."""
    inside, release = threading.Event(), threading.Event()
    real = engine.clear

    def clear(book: engine.Book, **options: Any) -> engine.Clearing:
        inside.set()
        assert release.wait(20)
        return real(book, **options)

    monkeypatch.setattr(engine, "clear", clear)
    return inside, release


def test_an_offer_withdrawn_during_a_round_waits_for_it(
    committed_db: None,
    market: Market,
    seller: Principal,
    pool: Pool,
    buyer_principal: Principal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offer = list_offer(seller, market, pool)  # 6 units
    place(buyer_principal, market)  # 4 units
    inside, release = paused_engine(monkeypatch)

    clearing, cleared = run_in_thread(lambda: matching.clear_round(market=market, now=NOW))
    assert inside.wait(20)
    withdrawing, withdrawn = run_in_thread(
        lambda: supply.change_offer(principal=seller, offer=offer, action="withdraw", now=NOW)
    )
    withdrawing.join(1.0)
    blocked = withdrawing.is_alive()  # the round holds the offer's row
    release.set()
    clearing.join(20)
    withdrawing.join(20)

    assert blocked
    assert "error" not in cleared and "error" not in withdrawn
    assert cleared["value"].round.volume_units == 4
    # The round's leases stand; the withdrawal applies to what is left.
    assert Lease.objects.get().offer_id == offer.pk
    assert Offer.objects.get().status == OfferStatus.WITHDRAWN


def test_an_order_cancelled_during_a_round_is_cancelled_right_after(
    committed_db: None,
    market: Market,
    seller: Principal,
    pool: Pool,
    buyer_principal: Principal,
    buyer_org: Organization,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    list_offer(seller, market, pool)
    filled = place(buyer_principal, market)  # in the round's snapshot
    inside, release = paused_engine(monkeypatch)

    clearing, _ = run_in_thread(lambda: matching.clear_round(market=market, now=NOW))
    assert inside.wait(20)
    cancelling, cancelled = run_in_thread(
        lambda: orders.cancel_order(principal=buyer_principal, order=filled, now=NOW)
    )
    cancelling.join(5.0)
    blocked = cancelling.is_alive()
    release.set()
    clearing.join(20)
    cancelling.join(20)

    assert not blocked  # the cancel does not wait: it is recorded for after the round
    assert cancelled["value"].cancel_requested_at == NOW
    # The round filled the order before the cancel could apply: filled orders stay filled.
    order = Order.objects.get()
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, Decimal(4))
    assert ClearingRound.objects.count() == 1
    assert Lease.objects.get().units == 4
    assert list(order.events.order_by("pk").values_list("kind", flat=True)) == [
        "placed",
        "cancel_requested",
        "filled",
    ]
