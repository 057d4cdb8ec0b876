"""Per-class McAfee trade reduction (matching.reduction): hand-computed books and properties."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from matching.engine import (
    SCU_SCALE,
    Ask,
    Bid,
    Book,
    Class,
    ClassPrice,
    Clearing,
    Fill,
    _result,
    clear,
    unit_value,
    verify,
)
from matching.reduction import trade_reduction


def one_class_book(
    bids: Sequence[tuple[str, int, int]], asks: Sequence[tuple[str, int, int]]
) -> Book:
    """Bids (id, quantity, price) and asks (id, units, price) in class "c"; seq is list order."""
    return Book(
        asks=[Ask(i, "c", f"pool-{i}", u, p, seq) for seq, (i, u, p) in enumerate(asks, 1)],
        bids=[Bid(i, "s", q, p, seq) for seq, (i, q, p) in enumerate(bids, 1)],
        arcs={"s": ["c"]},
        classes={"c": Class("c")},
    )


def test_thin_class_drops_the_marginal_trade_and_prices_at_the_midpoint() -> None:
    # b2 is earlier than b1, so the equilibrium pairs b2-a1 and b1-a2: the drop must re-pair.
    book = Book(
        asks=[
            Ask("a1", "c", "p1", 1, 10, 1),
            Ask("a2", "c", "p2", 1, 21, 2),
            Ask("a3", "c", "p3", 1, 50, 3),
        ],
        bids=[Bid("b2", "s", 1, 25, 1), Bid("b1", "s", 1, 30, 2), Bid("b3", "s", 1, 24, 3)],
        arcs={"s": ["c"]},
        classes={"c": Class("c")},
    )
    eq = clear(book)
    assert eq.fills == (Fill("b1", "a2", "c", 1, 24), Fill("b2", "a1", "c", 1, 24))
    assert eq.welfare == (30 - 21) + (25 - 10)

    # k = 2: b_k = 25 (b2), s_k = 21 (a2); b_3 = 24, s_3 = 50; p0 = 37 > b_k, so one unit goes.
    red = trade_reduction(book, eq)
    assert red.fills == (Fill("b1", "a1", "c", 1, 23),)  # midpoint of [21, 25]
    assert red.prices == (ClassPrice("c", 23, low=24, high=25, units=1, unit_hours=1),)
    assert red.unfilled == (("b2", "trade_reduction"), ("b3", "priced_out"))
    assert red.welfare == red.welfare_total == 30 - 10
    assert red.volume_units == 1
    assert red.mechanism == "flow"


def test_price_within_the_marginal_range_keeps_every_trade() -> None:
    book = one_class_book(
        bids=[("b1", 1, 30), ("b2", 1, 25), ("b3", 1, 19)],
        asks=[("a1", 1, 10), ("a2", 1, 20), ("a3", 1, 30)],
    )
    eq = clear(book)
    assert eq.price_of("c") == 22  # equilibrium range [20, 25]

    # p0 = (19 + 30) / 2 = 24.5, half-even 24, inside [s_k, b_k] = [20, 25]: nothing dropped.
    red = trade_reduction(book, eq)
    assert red.fills == (Fill("b1", "a1", "c", 1, 24), Fill("b2", "a2", "c", 1, 24))
    assert red.unfilled == (("b3", "priced_out"),)
    assert red.welfare == eq.welfare == 25
    assert verify(book, red) == []  # still a competitive equilibrium


def test_sold_out_class_with_one_multi_unit_bid_loses_one_unit() -> None:
    book = one_class_book(bids=[("b1", 2, 30)], asks=[("a1", 2, 10)])
    eq = clear(book)
    assert eq.fills == (Fill("b1", "a1", "c", 2, eq.price_of("c") or 0),)

    # No excluded unit on either side: p0 is undefined, reduce; price midpoint of [10, 30].
    red = trade_reduction(book, eq)
    assert red.fills == (Fill("b1", "a1", "c", 1, 20),)
    assert red.unfilled == (("b1", "trade_reduction"),)  # not "rationed"
    assert red.welfare == 20
    assert eq.welfare == 40


def test_a_class_with_a_single_trade_clears_nothing() -> None:
    book = one_class_book(bids=[("b1", 1, 30), ("b2", 1, 5)], asks=[("a1", 1, 10)])
    red = trade_reduction(book, clear(book))
    assert red.fills == ()
    assert red.prices == (ClassPrice("c", None, low=10, high=30, units=0, unit_hours=0),)
    assert red.unfilled == (("b1", "trade_reduction"), ("b2", "priced_out"))
    assert red.welfare == red.volume_units == 0


def test_bids_filled_in_another_class_are_not_excluded_units() -> None:
    book = Book(
        asks=[
            Ask("ax1", "x", "p1", 1, 10, 1),
            Ask("ax2", "x", "p2", 1, 40, 2),
            Ask("ay", "y", "p3", 1, 5, 3),
        ],
        bids=[
            Bid("bx", "x-only", 1, 30, 1),
            Bid("bxy", "x-or-y", 1, 35, 2),
            Bid("bl", "x-only", 1, 8, 3),
        ],
        arcs={"x-only": ["x"], "x-or-y": ["x", "y"]},
        classes={"x": Class("x"), "y": Class("y")},
    )
    eq = clear(book)
    assert [(f.bid, f.ask) for f in eq.fills] == [("bx", "ax1"), ("bxy", "ay")]
    assert eq.welfare == 20 + 30

    red = trade_reduction(book, eq)
    # x: b_2 = 8 (bl; bxy bought in y, so it is not excluded), s_2 = 40: p0 = 24 ∈ [10, 30].
    # y: nothing excluded on either side: its only trade goes.
    assert red.fills == (Fill("bx", "ax1", "x", 1, 24),)
    assert red.price_of("x") == 24
    assert red.price_of("y") is None
    assert red.unfilled == (("bl", "priced_out"), ("bxy", "trade_reduction"))
    assert red.welfare == 20


def test_an_excluded_scu_bid_counts_at_its_value_per_unit() -> None:
    # 1.5 SCU per unit: 11 ticks per SCU-hour is 16.5 per unit-hour.
    book = Book(
        asks=[Ask("a1", "c", "p1", 1, 10, 1), Ask("a2", "c", "p2", 1, 40, 2)],
        bids=[Bid("b1", "u", 1, 30, 1), Bid("bs", "scu", 15_000, 11, 2, per_scu=True)],
        arcs={"u": ["c"], "scu": ["c"]},
        classes={"c": Class("c", scu=15_000)},
    )
    assert unit_value(book.bids[1], book.classes["c"]) == (11 * 15_000, SCU_SCALE)
    eq = _result(book, "lp", [Fill("b1", "a1", "c", 1, 20)], {"c": 20}, {"b1": 1})
    assert verify(book, eq) == []

    red = trade_reduction(book, eq)  # p0 = (16.5 + 40) / 2 = 28.25 → 28 ∈ [10, 30]
    assert red.fills == (Fill("b1", "a1", "c", 1, 28),)
    assert red.unfilled == (("bs", "priced_out"),)


def test_classes_with_scu_or_block_buyers_are_left_unchanged() -> None:
    for buyer in (
        Bid("b", "s", 20_000, 15, 1, per_scu=True),  # 2 SCU per unit: one unit, value 30
        Bid("b", "s", 1, 30, 1, all_or_none=True),
    ):
        book = Book(
            asks=[Ask("a", "c", "p", 1, 10, 1)],
            bids=[buyer],
            arcs={"s": ["c"]},
            classes={"c": Class("c", scu=20_000)},
        )
        filled = 20_000 if buyer.per_scu else 1
        eq = _result(book, "mip", [Fill("b", "a", "c", 1, 20)], {"c": 20}, {"b": filled})
        red = trade_reduction(book, eq)
        assert dataclasses.replace(red, notes=()) == eq
        assert red.notes == ("trade reduction: class c unchanged (SCU or block buyers)",)


def test_clear_with_trade_reduction_goes_through_this_module() -> None:
    book = one_class_book(bids=[("b1", 1, 30), ("b2", 1, 25)], asks=[("a1", 1, 10), ("a2", 1, 20)])
    assert clear(book, trade_reduction=True) == trade_reduction(book, clear(book))
    assert clear(book, trade_reduction=True).fills == (Fill("b1", "a1", "c", 1, 22),)  # 22.5 → 22


# --------------------------------------------------------------------------------------------
# Properties over generated books of divisible unit bids


@st.composite
def books(draw: st.DrawFn) -> Book:
    n_cls = draw(st.integers(1, 3))
    cls_keys = [f"c{i}" for i in range(n_cls)]
    sigs = {
        f"s{i}": draw(st.lists(st.sampled_from(cls_keys), min_size=1, max_size=n_cls, unique=True))
        for i in range(draw(st.integers(1, 3)))
    }
    asks = [
        Ask(
            f"a{i}",
            draw(st.sampled_from(cls_keys)),
            f"p{i}",
            draw(st.integers(1, 3)),
            draw(st.integers(1, 60)),
            i,
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    bids = [
        Bid(
            f"b{i}",
            draw(st.sampled_from(sorted(sigs))),
            draw(st.integers(1, 3)),
            draw(st.integers(1, 60)),
            i,
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    return Book(asks=asks, bids=bids, arcs=sigs, classes={c: Class(c) for c in cls_keys})


def check_reduction(book: Book, eq: Clearing, red: Clearing) -> None:
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}
    got: dict[str, int] = defaultdict(int)
    sold: dict[str, int] = defaultdict(int)
    units: dict[str, int] = defaultdict(int)
    for f in red.fills:
        b, a = bids[f.bid], asks[f.ask]
        assert f.cls in book.arcs[b.signature]
        assert a.cls == f.cls
        assert f.price == red.price_of(f.cls)  # one price per class: buyers pay what sellers get
        assert b.price >= f.price >= a.price  # individually rational on both sides
        got[b.id] += f.units
        sold[a.id] += f.units
        units[f.cls] += f.units
    assert all(got[b.id] <= b.quantity for b in book.bids)
    assert all(sold[a.id] <= a.units for a in book.asks)
    for p in eq.prices:  # each class keeps its trades or loses exactly its marginal one
        assert units[p.cls] in (p.units, p.units - 1)
    assert 0 <= red.welfare <= eq.welfare
    assert red.volume_units <= eq.volume_units
    before: dict[str, int] = defaultdict(int)
    for f in eq.fills:
        before[f.bid] += f.units
    dropped = {i for i, reason in red.unfilled if reason == "trade_reduction"}
    assert all(got[i] < before[i] for i in dropped)  # "trade_reduction" only where units went
    assert len(dropped) <= eq.volume_units - red.volume_units  # one bid may lose in two classes
    assert {i for i in before if got[i] < before[i]} == dropped


@settings(max_examples=200, derandomize=True, deadline=None)
@given(books())
def test_remaining_fills_are_individually_rational_and_welfare_never_rises(book: Book) -> None:
    eq = clear(book)
    red = trade_reduction(book, eq)
    check_reduction(book, eq, red)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(books(), st.randoms(use_true_random=False))
def test_reduction_is_deterministic(book: Book, rnd: random.Random) -> None:
    eq = clear(book)
    first = trade_reduction(book, eq)
    assert trade_reduction(book, eq).canonical() == first.canonical()
    shuffled_asks, shuffled_bids = list(book.asks), list(book.bids)
    rnd.shuffle(shuffled_asks)
    rnd.shuffle(shuffled_bids)
    shuffled = Book(asks=shuffled_asks, bids=shuffled_bids, arcs=book.arcs, classes=book.classes)
    assert clear(shuffled, trade_reduction=True).digest() == first.digest()
