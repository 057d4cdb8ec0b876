"""The snapshot's fast paths give what the plain formulas give: each bid and order as read from its
row one by one, and the digest of the canonical JSON of the book, byte for byte."""

from __future__ import annotations

import hashlib
import json
import math
import random
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from marketplace.core.access import Principal
from marketplace.core.owners import ledger_owner
from marketplace.models import Market, Order, Pool
from matching import services as matching
from matching import snapshot
from matching.engine import SCU_SCALE, Ask, Bid, Book, Class
from tests.fixtures.clearing import list_offer, place
from tests.fixtures.market import NOW


def canonical_digest(book: Book, *, market: Market, delivery_start: Any) -> str:
    """The digest as first written: whole tuples sorted, one ``json.dumps`` of the book."""
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


def test_the_digest_is_the_sha256_of_the_canonical_json_even_with_ids_shared() -> None:
    # given a book whose bids repeat ids (the snapshot never makes one; a caller may), in no order
    rng = random.Random(3)  # noqa: S311 - test data, not secrets
    bids = [
        Bid(
            id=f"b{rng.randrange(40)}",
            signature=rng.choice(["s1", "s2", 'é"\\']),
            quantity=rng.randrange(1, 9),
            price=rng.randrange(1, 5),
            seq=rng.randrange(3),
            hours=rng.choice([1, 4]),
            per_scu=rng.random() < 0.5,
            all_or_none=rng.random() < 0.5,
            same_pool=rng.random() < 0.5,
            min_fill=1,
        )
        for _ in range(200)
    ]
    asks = [
        Ask(id=f"a{i % 7}", cls="c", pool="p", units=i, price=9 - i % 3, seq=i) for i in range(20)
    ]
    book = Book(
        asks=asks, bids=bids, arcs={"s2": ["c", "b"], "s1": ["c"]}, classes={"c": Class("c")}
    )
    market = Market(slug="cny-ü", price_tick=Decimal("0.01"))

    # then the digest is the one of the canonical JSON
    assert snapshot.digest(book, market=market, delivery_start=NOW) == canonical_digest(
        book, market=market, delivery_start=NOW
    )
    # and unique ids give it too
    unique = Book(asks=asks[:7], bids=list({b.id: b for b in bids}.values()), arcs={}, classes={})
    assert snapshot.digest(unique, market=market, delivery_start=NOW) == canonical_digest(
        unique, market=market, delivery_start=NOW
    )


@pytest.mark.django_db
def test_each_bid_and_order_is_what_its_row_says(
    market: Market, seller: Principal, funded_buyer: Principal, pool: Pool
) -> None:
    # given an offer and orders of every kind: with and without devices and regions, all or
    # none, same pool, in SCU, one with nothing left to buy, two with the same constraints
    list_offer(seller, market, pool, units=8)
    common: dict[str, Any] = {"limit_price": Decimal("10.00"), "duration_hours": 2}
    variants: list[dict[str, Any]] = [
        {},
        {"device_models": ["nvidia-h100-sxm"]},
        {"device_models": ["nvidia-h100-sxm"], "allowed_regions": ["CN-GS", "CN-NM"]},
        {"allowed_regions": ["CN-SH"]},
        {"fill": "all_or_none", "quantity": Decimal(3)},
        {"placement": "same_pool", "limit_price": Decimal("99.99")},
        {
            "quantity_kind": "scu",
            "price_per": "scu",
            "quantity": Decimal("12.5"),
            "min_fill": Decimal("0.5"),
        },
        {"min_memory_gb": Decimal(80), "duration_hours": 4},
        {"min_memory_gb": Decimal(80), "duration_hours": 4, "limit_price": Decimal("90.10")},
        {"allowed_jurisdictions": ["CN"]},
    ]
    orders = [place(funded_buyer, market, **{**common, **v}) for v in variants]
    Order.objects.filter(pk=orders[3].pk).update(filled_quantity=orders[3].quantity)
    excluded = str(orders[5].public_id)
    at = matching.slot_start(market, matching.slot(market, NOW))

    # when the book is read
    with transaction.atomic():
        snap = snapshot.take(market, delivery_start=at, exclude=frozenset({excluded}))

    # then each order left to trade is a bid, in primary-key order, as its row says
    kept = [o for o in orders if o.pk != orders[3].pk and str(o.public_id) != excluded]
    assert [b.id for b in snap.book.bids] == [str(o.public_id) for o in kept]
    assert list(snap.orders) == [str(o.public_id) for o in kept]
    tick = market.price_tick
    for bid, order in zip(snap.book.bids, kept, strict=True):
        order.refresh_from_db()
        per_scu = order.quantity_kind == "scu"
        scale = SCU_SCALE if per_scu else 1
        left = order.quantity - order.filled_quantity
        assert (bid.price, bid.seq, bid.hours, bid.per_scu) == (
            snapshot.ticks_down(order.limit_price, tick),
            order.pk,
            order.duration_hours,
            per_scu,
        )
        assert (bid.quantity, bid.min_fill) == (
            math.floor(left * scale),
            max(1, math.ceil(min(order.min_fill, left) * scale)),
        )
        assert (bid.all_or_none, bid.same_pool) == (
            order.fill == "all_or_none",
            order.placement == "same_pool",
        )
        book_order = snap.orders[bid.id]
        assert book_order.owner == ledger_owner(order.organization)
        for name in snapshot.BOOK_ORDER_FIELDS:
            value = getattr(order, name)
            assert (getattr(book_order, name), type(getattr(book_order, name))) == (
                value,
                type(value),
            ), name
        assert bid.signature in snap.book.arcs
    # orders with the same constraints share a signature, and only they
    groups: dict[str, set[int]] = {}
    for bid, order in zip(snap.book.bids, kept, strict=True):
        groups.setdefault(bid.signature, set()).add(orders.index(order))
    assert sorted(groups.values(), key=min) == [{0, 4}, {1}, {2}, {6}, {7, 8}, {9}]
    # and the digest is the canonical one
    assert snap.digest == canonical_digest(snap.book, market=market, delivery_start=at)


@pytest.mark.django_db
def test_an_order_naming_a_device_model_read_too_late_is_read_again(
    market: Market,
    seller: Principal,
    funded_buyer: Principal,
    pool: Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an order for a device model the first reading of the catalog does not have (as if
    # the model had been added after it)
    list_offer(seller, market, pool, units=8)
    order = place(
        funded_buyer, market, limit_price=Decimal("10.00"), device_models=["nvidia-h100-sxm"]
    )
    readings: list[dict[int, str]] = []
    catalog = snapshot._device_slugs

    def device_slugs() -> dict[int, str]:
        slugs = catalog() if readings else {}
        readings.append(slugs)
        return slugs

    monkeypatch.setattr(snapshot, "_device_slugs", device_slugs)
    at = matching.slot_start(market, matching.slot(market, NOW))

    # when the book is read
    with transaction.atomic():
        snap = snapshot.take(market, delivery_start=at)

    # then the catalog and the orders were read again, and the order is a bid for that device
    assert [len(r) for r in readings] == [0, 1]
    (bid,) = snap.book.bids
    assert bid.id == str(order.public_id)
    assert snap.book.arcs[bid.signature] == list(snap.classes)
