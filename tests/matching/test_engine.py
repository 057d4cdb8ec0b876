"""The clearing engine as pure functions: welfare against two independent oracles, the market's
invariants as Hypothesis properties, the certificate against tampered clearings, and hand-computed
books with exact fills and prices.

The divisible unit-bid path (mechanism "flow") needs only `matching.engine`. The SCU (LP) and block
(MIP) tests go through `matching.highs`. Hypothesis runs derandomized: the same examples every run.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
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
    clear,
    verify,
)
from tests.fixtures.engine_strategies import (
    block_books,
    books,
    brute_force_welfare,
    lp_welfare,
    mixed_books,
    random_book,
)

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=200)

# Books for the properties: big enough for substitution across classes and rationing among ties.
PROPERTY_BOOKS = books(
    min_bids=1,
    max_bids=8,
    min_asks=1,
    max_asks=8,
    min_units=1,
    max_units=5,
    max_classes=3,
    max_signatures=3,
    max_price=15,
    max_hours=3,
)


def make_book(
    asks: Sequence[Ask],
    bids: Sequence[Bid],
    arcs: Mapping[str, Sequence[str]],
    classes: Sequence[Class] = (),
) -> Book:
    """A book whose classes are the given ones plus every class an ask or arc names (1 SCU each)."""
    table = {c.key: c for c in classes}
    for key in [a.cls for a in asks] + [c for accepted in arcs.values() for c in accepted]:
        table.setdefault(key, Class(key))
    return Book(asks=asks, bids=bids, arcs=arcs, classes=table)


def units_by_bid(clearing: Clearing) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for f in clearing.fills:
        out[f.bid] += f.units
    return dict(out)


def units_by_ask(clearing: Clearing) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for f in clearing.fills:
        out[f.ask] += f.units
    return dict(out)


# --------------------------------------------------------------------------------------------
# Welfare against independent oracles


@settings(DETERMINISTIC, max_examples=400)
@given(
    book=books(
        min_bids=1, max_bids=3, min_asks=1, max_asks=3, max_units=3, max_classes=2, max_signatures=2
    )
)
def test_welfare_equals_brute_force_on_tiny_books(book: Book) -> None:
    # given a book of at most three bids and three asks of at most three units each
    # when it clears
    clearing = clear(book)

    # then the welfare is the best over every integer allocation, found by exhaustive search
    assert clearing.mechanism == "flow"
    assert clearing.welfare == brute_force_welfare(book)


@pytest.mark.parametrize("seed", range(12))
def test_welfare_equals_an_independent_lp_on_random_books(seed: int) -> None:
    # given a seeded book of 30-200 bids and asks across six classes
    sizes = [30, 60, 100, 200]
    book = random_book(seed, bids=sizes[seed % 4], asks=sizes[(seed // 4 + seed) % 4])

    # when it clears
    clearing = clear(book)

    # then its welfare is the optimum of a bid × ask LP solved by HiGHS directly
    reference = lp_welfare(book)
    assert clearing.mechanism == "flow"
    assert abs(reference - round(reference)) < 1e-6  # a transportation LP: integral optimum
    assert clearing.welfare == round(reference)
    assert clearing.welfare > 0


# --------------------------------------------------------------------------------------------
# Properties of every flow clearing


@DETERMINISTIC
@given(book=PROPERTY_BOOKS)
def test_every_fill_is_individually_rational(book: Book) -> None:
    # given any book of divisible unit bids
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}

    # when it clears
    clearing = clear(book)

    # then every fill is at its class price, which the buyer reaches and the seller accepts
    for f in clearing.fills:
        assert f.price == clearing.price_of(f.cls)
        assert bids[f.bid].price >= f.price >= asks[f.ask].price


@DETERMINISTIC
@given(book=PROPERTY_BOOKS)
def test_nothing_is_over_allocated(book: Book) -> None:
    # given any book of divisible unit bids
    # when it clears
    clearing = clear(book)

    # then no bid gets more than its quantity, no ask sells more than its units, no fill is empty
    got, sold = units_by_bid(clearing), units_by_ask(clearing)
    assert all(f.units > 0 for f in clearing.fills)
    assert all(got.get(b.id, 0) <= b.quantity for b in book.bids)
    assert all(sold.get(a.id, 0) <= a.units for a in book.asks)


@DETERMINISTIC
@given(book=PROPERTY_BOOKS)
def test_buyers_pay_exactly_what_sellers_receive(book: Book) -> None:
    # given any book of divisible unit bids with lease lengths of one to three hours
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}

    # when it clears
    clearing = clear(book)

    # then summed per buyer and per seller separately, payments balance to the tick
    paid: dict[str, int] = defaultdict(int)
    for f in clearing.fills:
        paid[f.bid] += f.units * f.price * bids[f.bid].hours
    received: dict[str, int] = defaultdict(int)
    for a in book.asks:
        for f in clearing.fills:
            if f.ask == a.id:
                received[a.id] += f.units * f.price * bids[f.bid].hours
    assert sum(paid.values()) == sum(received.values())
    # and the buyers' and sellers' surpluses add up to the duration-weighted welfare
    value = sum(f.units * bids[f.bid].price * bids[f.bid].hours for f in clearing.fills)
    cost = sum(f.units * asks[f.ask].price * bids[f.bid].hours for f in clearing.fills)
    buyer_surplus = value - sum(paid.values())
    seller_surplus = sum(received.values()) - cost
    assert buyer_surplus + seller_surplus == clearing.welfare_total
    assert clearing.volume_unit_hours == sum(f.units * bids[f.bid].hours for f in clearing.fills)


@DETERMINISTIC
@given(book=PROPERTY_BOOKS, rng=st.randoms(use_true_random=False))
def test_the_clearing_is_deterministic_under_reordering(book: Book, rng: random.Random) -> None:
    # given a book and the same book with its bids, asks, arcs and classes in another order
    bids, asks = list(book.bids), list(book.asks)
    rng.shuffle(bids)
    rng.shuffle(asks)
    signatures, class_keys = list(book.arcs), list(book.classes)
    rng.shuffle(signatures)
    rng.shuffle(class_keys)
    arcs = {g: rng.sample(list(book.arcs[g]), len(book.arcs[g])) for g in signatures}
    shuffled = Book(
        asks=asks, bids=bids, arcs=arcs, classes={k: book.classes[k] for k in class_keys}
    )

    # when each clears, the first one twice
    first, again, reordered = clear(book), clear(book), clear(shuffled)

    # then all three are byte-identical
    assert again.canonical() == first.canonical()
    assert reordered.canonical() == first.canonical()


@DETERMINISTIC
@given(
    book=books(
        min_bids=1,
        max_bids=8,
        min_asks=1,
        max_asks=8,
        min_units=1,
        max_units=5,
        max_classes=3,
        max_signatures=3,
        max_price=30,
        distinct_bid_prices=True,
    ),
    data=st.data(),
)
def test_raising_a_winning_bid_never_reduces_its_fill(book: Book, data: st.DataObject) -> None:
    # given a book in which no two bids share a price (so no tie is rationed), and a winning bid
    got = units_by_bid(clear(book))
    winners = sorted(b.id for b in book.bids if got.get(b.id, 0))
    assume(winners)
    chosen = data.draw(st.sampled_from(winners))
    winner = next(b for b in book.bids if b.id == chosen)
    taken = {b.price for b in book.bids}
    rise = data.draw(st.integers(1, 40).filter(lambda d: winner.price + d not in taken))
    raised = dataclasses.replace(
        book,
        bids=[
            dataclasses.replace(b, price=b.price + rise) if b is winner else b for b in book.bids
        ],
    )

    # when it raises its price (still unique)
    after = clear(raised)

    # then it still wins, at least as many units as before
    assert units_by_bid(after).get(winner.id, 0) >= got[winner.id]


@DETERMINISTIC
@given(book=PROPERTY_BOOKS)
def test_the_certificate_accepts_every_clearing(book: Book) -> None:
    # given any book of divisible unit bids
    # when it clears
    clearing = clear(book)

    # then the certificate finds no violation
    assert verify(book, clearing) == []


@DETERMINISTIC
@given(book=PROPERTY_BOOKS)
def test_unfilled_lists_exactly_the_bids_not_completely_filled(book: Book) -> None:
    # given any book of divisible unit bids
    # when it clears
    clearing = clear(book)

    # then the unfilled bids, in id order, are those with less than their quantity
    got = units_by_bid(clearing)
    expected = sorted(b.id for b in book.bids if got.get(b.id, 0) < b.quantity)
    assert [bid for bid, _ in clearing.unfilled] == expected


@DETERMINISTIC
@given(book=PROPERTY_BOOKS)
def test_class_prices_lie_between_the_equilibrium_bounds(book: Book) -> None:
    # given any book of divisible unit bids
    # when it clears
    clearing = clear(book)

    # then a traded class has both bounds, low ≤ price ≤ high; an untraded class has no price
    for p in clearing.prices:
        if p.units:
            assert p.low is not None and p.high is not None and p.price is not None
            assert p.low <= p.price <= p.high
        else:
            assert p.price is None


# --------------------------------------------------------------------------------------------
# The certificate rejects tampered clearings


def one_bid_two_asks() -> Book:
    """One bid of 10 for a unit; asks of 4 and 6. Clears at 5 (equilibrium prices 4 to 6)."""
    return make_book(
        asks=[Ask("a1", "c", "p1", 1, 4, seq=1), Ask("a2", "c", "p1", 1, 6, seq=2)],
        bids=[Bid("b1", "g", 1, 10, seq=1)],
        arcs={"g": ["c"]},
    )


def short_supply() -> Book:
    """A bid of 10 for three units; one ask of two units at 4. Clears two units at 10."""
    return make_book(
        asks=[Ask("a1", "c", "p1", 2, 4, seq=1)],
        bids=[Bid("b1", "g", 3, 10, seq=1)],
        arcs={"g": ["c"]},
    )


def test_the_certificate_rejects_a_unit_moved_to_a_bid_that_does_not_accept_the_class() -> None:
    # given b1 (accepts c1) buying a1's unit in c1, and b2 that accepts only c2 (no asks)
    book = make_book(
        asks=[Ask("a1", "c1", "p1", 1, 4, seq=1)],
        bids=[Bid("b1", "g1", 1, 10, seq=1), Bid("b2", "g2", 1, 10, seq=2)],
        arcs={"g1": ["c1"], "g2": ["c2"]},
    )
    clearing = clear(book)
    assert clearing.fills == (Fill("b1", "a1", "c1", 1, 7),)

    # when the unit is moved to b2
    tampered = dataclasses.replace(
        clearing, fills=(dataclasses.replace(clearing.fills[0], bid="b2"),)
    )

    # then the certificate names b2 and the class it does not accept
    assert verify(book, clearing) == []
    assert verify(book, tampered) == ["bid b2 does not accept class c1"]


def test_the_certificate_rejects_a_fill_priced_above_the_bids_limit() -> None:
    # given a valid clearing at 5
    book = one_bid_two_asks()
    clearing = clear(book)

    # when the class price and the fill are raised to 11, above b1's limit of 10
    tampered = dataclasses.replace(
        clearing,
        fills=tuple(dataclasses.replace(f, price=11) for f in clearing.fills),
        prices=tuple(dataclasses.replace(p, price=11) for p in clearing.prices),
    )

    # then the certificate names the bid paying above its value
    assert verify(book, tampered) == ["bid b1 pays 11 above its value 10/1 in c"]


def test_the_certificate_rejects_a_fill_priced_below_the_asks_limit() -> None:
    # given a valid clearing at 5
    book = one_bid_two_asks()
    clearing = clear(book)

    # when the class price and the fill are lowered to 3, below a1's ask of 4
    tampered = dataclasses.replace(
        clearing,
        fills=tuple(dataclasses.replace(f, price=3) for f in clearing.fills),
        prices=tuple(dataclasses.replace(p, price=3) for p in clearing.prices),
    )

    # then the certificate names the ask selling below its price
    assert verify(book, tampered) == ["ask a1 at 4 sells below its price at 3"]


def test_the_certificate_rejects_an_over_filled_ask() -> None:
    # given b1 buying both units of a1
    book = short_supply()
    clearing = clear(book)
    assert clearing.fills == (Fill("b1", "a1", "c", 2, 10),)

    # when the fill grows to three units (b1 wants three; a1 has two)
    tampered = dataclasses.replace(
        clearing, fills=(dataclasses.replace(clearing.fills[0], units=3),)
    )

    # then the certificate names the over-sold ask
    assert verify(book, tampered) == ["ask a1 over-sold: 3 > 2"]


def test_the_certificate_rejects_a_dropped_fill_that_leaves_a_bid_above_the_price() -> None:
    # given a valid clearing at 5: b1 (10) buys a1 (4)
    book = one_bid_two_asks()
    clearing = clear(book)

    # when the fill is dropped, leaving b1 unfilled while c has spare units at 5
    tampered = dataclasses.replace(clearing, fills=())

    # then the certificate names the unfilled bid and the unsold ask below the price
    assert verify(book, tampered) == [
        "bid b1 values c at 10/1 above its price 5 and is unfilled",
        "ask a1 at 4 unsold below 5 while bid b1 wants more",
    ]


def test_the_certificate_rejects_a_partly_filled_all_or_none_bid() -> None:
    # given the divisible clearing of b1 buying two of its three units
    divisible = short_supply()
    clearing = clear(divisible)
    assert clearing.fills == (Fill("b1", "a1", "c", 2, 10),)

    # when the same fills are checked against the book in which b1 is all-or-none
    all_or_none = dataclasses.replace(
        divisible, bids=[dataclasses.replace(divisible.bids[0], all_or_none=True)]
    )

    # then the certificate names the partly filled all-or-none bid
    assert verify(divisible, clearing) == []
    assert verify(all_or_none, clearing) == ["all-or-none bid b1 partly filled: 2 of 3"]


# --------------------------------------------------------------------------------------------
# Hand-computed books (flow)


def test_one_bid_and_two_asks_clear_at_the_midpoint_of_the_equilibrium_prices() -> None:
    # given one bid of 10 for a unit and asks of 4 and 6
    book = one_bid_two_asks()

    # when it clears
    clearing = clear(book)

    # then b1 buys a1's unit at 5: a1 sold at 4 (low), a2 at 6 would sell above 6 (high)
    assert clearing == Clearing(
        mechanism="flow",
        fills=(Fill("b1", "a1", "c", 1, 5),),
        prices=(ClassPrice("c", price=5, low=4, high=6, units=1, unit_hours=1),),
        unfilled=(),
        welfare=6,
        welfare_total=6,
        volume_units=1,
        volume_unit_hours=1,
    )


def test_a_flexible_bid_substitutes_into_the_other_class() -> None:
    # given h100 at 5 and a100 at 8, one unit each; "strict" (20) takes only h100, "flex" (15, for
    # three hours) takes either
    book = make_book(
        asks=[Ask("h", "h100", "ph", 1, 5, seq=1), Ask("a", "a100", "pa", 1, 8, seq=2)],
        bids=[
            Bid("flex", "any", 1, 15, seq=1, hours=3),
            Bid("strict", "h100-only", 1, 20, seq=2),
        ],
        arcs={"any": ["a100", "h100"], "h100-only": ["h100"]},
    )

    # when it clears
    clearing = clear(book)

    # then flex moves to a100 so strict gets h100 (welfare 15 + 7 = 22, not 10);
    # a100 lies in [8, 15] and h100 in [8, 20] (h100 must not tempt flex away: ≥ a100's 8);
    # midpoints 11.5 → 12 (half to even) and 14
    assert clearing == Clearing(
        mechanism="flow",
        fills=(Fill("flex", "a", "a100", 1, 12), Fill("strict", "h", "h100", 1, 14)),
        prices=(
            ClassPrice("a100", price=12, low=8, high=15, units=1, unit_hours=3),
            ClassPrice("h100", price=14, low=8, high=20, units=1, unit_hours=1),
        ),
        unfilled=(),
        welfare=22,
        welfare_total=15 + 7 * 3,
        volume_units=2,
        volume_unit_hours=4,
    )


def test_marginal_bids_share_pro_rata_then_by_time_priority() -> None:
    # given d (12) above the margin and a, b, c at 10 wanting 5, 3 and 2; nine units at 4
    book = make_book(
        asks=[Ask("s", "c", "p1", 9, 4, seq=1)],
        bids=[
            Bid("a", "g", 5, 10, seq=3),
            Bid("b", "g", 3, 10, seq=1),
            Bid("c", "g", 2, 10, seq=2),
            Bid("d", "g", 2, 12, seq=4),
        ],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then d gets its 2; the 7 left go pro rata to 10 wanted: floor(35/10)=3, floor(21/10)=2,
    # floor(14/10)=1; the one unit left goes by time priority to b (earliest), at the price 10
    assert units_by_bid(clearing) == {"a": 3, "b": 3, "c": 1, "d": 2}
    assert clearing.prices == (ClassPrice("c", price=10, low=10, high=10, units=9, unit_hours=9),)
    assert clearing.unfilled == (("a", "rationed"), ("c", "rationed"))


def test_two_bids_at_one_price_share_two_units() -> None:
    # given two bids at 10 wanting 3 (later) and 1 (earlier); two units at 4
    book = make_book(
        asks=[Ask("s", "c", "p1", 2, 4, seq=1)],
        bids=[Bid("big", "g", 3, 10, seq=2), Bid("small", "g", 1, 10, seq=1)],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then pro rata floors give 1 and 0; the unit left goes to the earlier bid
    assert clearing.fills == (Fill("big", "s", "c", 1, 10), Fill("small", "s", "c", 1, 10))
    assert clearing.unfilled == (("big", "rationed"),)


def test_marginal_asks_share_pro_rata_then_by_time_priority() -> None:
    # given two asks at 5 with 4 units (later) and 2 units (earlier); a bid of 10 for four units
    book = make_book(
        asks=[Ask("x", "c", "p1", 4, 5, seq=2), Ask("y", "c", "p2", 2, 5, seq=1)],
        bids=[Bid("b", "g", 4, 10, seq=1)],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then floor(16/6)=2 and floor(8/6)=1; the unit left goes to y (earlier); price 5, the asks
    # with room pin it from above and the sold asks from below
    assert clearing.fills == (Fill("b", "x", "c", 2, 5), Fill("b", "y", "c", 2, 5))
    assert clearing.prices == (ClassPrice("c", price=5, low=5, high=5, units=4, unit_hours=4),)
    assert clearing.unfilled == ()


def test_unfilled_bids_say_why() -> None:
    # given supply only in c (two units at 4); "elsewhere" accepts only d (no asks), "nowhere"
    # accepts nothing, "cheap" bids 3, "first" and "second" bid 10 for two units each
    book = make_book(
        asks=[Ask("s", "c", "p1", 2, 4, seq=1)],
        bids=[
            Bid("elsewhere", "d-only", 1, 50, seq=1),
            Bid("nowhere", "none", 1, 50, seq=2),
            Bid("cheap", "c-only", 1, 3, seq=3),
            Bid("first", "c-only", 2, 10, seq=4),
            Bid("second", "c-only", 2, 10, seq=5),
        ],
        arcs={"d-only": ["d"], "none": [], "c-only": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then each unfilled bid carries its reason, in id order
    assert units_by_bid(clearing) == {"first": 1, "second": 1}
    assert clearing.unfilled == (
        ("cheap", "priced_out"),
        ("elsewhere", "no_compatible_supply"),
        ("first", "rationed"),
        ("nowhere", "no_compatible_supply"),
        ("second", "rationed"),
    )


def test_a_book_without_asks_clears_nothing() -> None:
    # given a bid and no supply
    book = make_book(asks=[], bids=[Bid("b1", "g", 1, 10, seq=1)], arcs={"g": ["c"]})

    # when it clears
    clearing = clear(book)

    # then nothing trades and no class has a price
    assert clearing == Clearing(
        mechanism="flow",
        fills=(),
        prices=(),
        unfilled=(("b1", "no_compatible_supply"),),
        welfare=0,
        welfare_total=0,
        volume_units=0,
        volume_unit_hours=0,
    )


# --------------------------------------------------------------------------------------------
# SCU-denominated bids (LP) and block bids (MIP), through matching.highs


@pytest.mark.parametrize("quantity", [20_000, 23_000])
def test_an_scu_bid_buys_whole_units_up_to_its_quantity(quantity: int) -> None:
    # given a bid for 2 (or 2.3) SCU at 10 per SCU-hour, and ten units of a half-SCU class at 2
    # per unit-hour (worth 5 per unit-hour to the bid)
    book = make_book(
        asks=[Ask("s", "half", "p1", 10, 2, seq=1)],
        bids=[Bid("b", "g", quantity, 10, seq=1, per_scu=True)],
        arcs={"g": ["half"]},
        classes=[Class("half", scu=5_000)],
    )

    # when it clears
    clearing = clear(book)

    # then the bid gets 4 units (2 SCU; 4.6 rounds down), priced at the ask, which has room
    assert clearing.mechanism == "lp"
    assert clearing.fills == (Fill("b", "s", "half", 4, 2),)
    assert sum(f.units * 5_000 for f in clearing.fills) <= quantity
    assert clearing.welfare == (5 - 2) * 4
    assert clearing.unfilled == () if quantity == 20_000 else (("b", "rationed"),)
    assert verify(book, clearing) == []


def test_an_scu_bid_weighs_classes_by_their_scu_per_unit() -> None:
    # given a bid for 2 SCU at 10 per SCU-hour; "big" units are 2 SCU at 15 (worth 20 to the bid,
    # gain 5 for its 2 SCU), "half" units are 0.5 SCU at 4 (worth 5, gain 1 per unit, 4 for 2 SCU)
    book = make_book(
        asks=[Ask("big1", "big", "p1", 3, 15, seq=1), Ask("half1", "half", "p2", 8, 4, seq=2)],
        bids=[Bid("b", "g", 20_000, 10, seq=1, per_scu=True)],
        arcs={"g": ["big", "half"]},
        classes=[Class("big", scu=20_000), Class("half", scu=5_000)],
    )

    # when it clears
    clearing = clear(book)

    # then it buys one big unit, at the big ask (which has room); half trades nothing
    assert clearing.mechanism == "lp"
    assert clearing.fills == (Fill("b", "big1", "big", 1, 15),)
    assert clearing.welfare == 5
    assert clearing.price_of("half") is None
    assert verify(book, clearing) == []


def test_rounding_an_scu_bid_down_does_not_strand_a_unit_another_bid_wants() -> None:
    # given three 1-SCU units at 1; a bid for 1.5 SCU at 3 per SCU-hour and a bid for 2 units at 2.
    # The LP relaxation splits 1.5/1.5; rounding both down would leave a unit unsold
    book = make_book(
        asks=[Ask("s", "c", "p1", 3, 1, seq=1)],
        bids=[
            Bid("scu", "g", 15_000, 3, seq=1, per_scu=True),
            Bid("units", "g", 2, 2, seq=2),
        ],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then the best integer allocation trades all three: one to "scu" (2), two to "units" (1 + 1)
    assert clearing.mechanism == "lp"
    assert units_by_bid(clearing) == {"scu": 1, "units": 2}
    assert clearing.welfare == 4
    assert verify(book, clearing) == []


def test_an_scu_bid_whose_unit_value_falls_between_ticks_clears_with_a_valid_certificate() -> None:
    # given quarter-SCU units at 1 and at 2 (one each) and a bid for 0.5 SCU at 5 per SCU-hour:
    # a unit is worth 1.25 ticks to it, so the unit at 1 is worth buying and the one at 2 is not
    book = make_book(
        asks=[Ask("a1", "c", "p1", 1, 2, seq=1), Ask("a2", "c", "p1", 1, 1, seq=2)],
        bids=[Bid("b", "g", 5_000, 5, seq=1, per_scu=True)],
        arcs={"g": ["c"]},
        classes=[Class("c", scu=2_500)],
    )

    # when it clears
    clearing = clear(book)

    # then whatever trades, the certificate holds (an integer price must be both ≥ 1.25, as the
    # bid has room and a2 is spare, and ≤ 1.25, as the bid pays it)
    assert clearing.mechanism == "lp"
    assert verify(book, clearing) == []


def test_an_all_or_none_bid_that_cannot_be_filled_whole_gets_nothing() -> None:
    # given an all-or-none bid for 3 units at 10, a divisible bid for 1 at 8, two units at 4
    book = make_book(
        asks=[Ask("s", "c", "p1", 2, 4, seq=1)],
        bids=[
            Bid("whole", "g", 3, 10, seq=1, all_or_none=True),
            Bid("part", "g", 1, 8, seq=2),
        ],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then the block gets nothing; the divisible bid buys a unit at the ask (which has room)
    assert clearing.mechanism == "mip"
    assert clearing.fills == (Fill("part", "s", "c", 1, 4),)
    assert clearing.unfilled == (("whole", "all_or_none_unsatisfiable"),)
    assert clearing.welfare == 4
    assert verify(book, clearing) == []


def test_a_same_pool_bid_buys_from_one_pool() -> None:
    # given a same-pool bid for 3 units at 10; p1 has 2 at 4, p2 has 3 at 5, p3 has 1 at 1
    book = make_book(
        asks=[
            Ask("a1", "c", "p1", 2, 4, seq=1),
            Ask("a2", "c", "p2", 3, 5, seq=2),
            Ask("a3", "c", "p3", 1, 1, seq=3),
        ],
        bids=[Bid("b", "g", 3, 10, seq=1, same_pool=True)],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then all of it comes from p2 (gain 15; p1 gives 12, p3 gives 9, mixing is not allowed)
    assert clearing.mechanism == "mip"
    assert [(f.bid, f.ask, f.units) for f in clearing.fills] == [("b", "a2", 3)]
    assert clearing.welfare == 15
    assert verify(book, clearing) == []


def test_an_accepted_all_or_none_bid_pays_at_most_its_limit() -> None:
    # given an all-or-none bid for 2 at 10, a divisible bid for 2 at 7, three units at 4
    book = make_book(
        asks=[Ask("s", "c", "p1", 3, 4, seq=1)],
        bids=[
            Bid("whole", "g", 2, 10, seq=1, all_or_none=True),
            Bid("part", "g", 2, 7, seq=2),
        ],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then the block gets both units and the divisible bid the third; the divisible bid, partly
    # filled, sets the price at its limit 7, below the block's 10
    assert clearing.mechanism == "mip"
    assert clearing.fills == (Fill("part", "s", "c", 1, 7), Fill("whole", "s", "c", 2, 7))
    assert clearing.unfilled == (("part", "rationed"),)
    assert verify(book, clearing) == []


def test_a_block_that_would_pay_above_its_limit_is_rejected_and_the_round_re_solved() -> None:
    # given four units at 1; an all-or-none bid for 2 at 6; divisible bids for 2 at 10 and 1 at 8.
    # Welfare is best with the block (2·9 + 2·5 = 28 against 2·9 + 7 = 25), but then the bid at 8
    # is left wanting and the price is at least 8, above the block's limit
    book = make_book(
        asks=[Ask("s", "c", "p1", 4, 1, seq=1)],
        bids=[
            Bid("block", "g", 2, 6, seq=1, all_or_none=True),
            Bid("high", "g", 2, 10, seq=2),
            Bid("mid", "g", 1, 8, seq=3),
        ],
        arcs={"g": ["c"]},
    )

    # when it clears
    clearing = clear(book)

    # then (European rule) the block is rejected and the divisible bids trade at the ask's 1
    assert clearing.mechanism == "mip"
    assert clearing.fills == (Fill("high", "s", "c", 2, 1), Fill("mid", "s", "c", 1, 1))
    assert [bid for bid, _ in clearing.unfilled] == ["block"]
    assert clearing.welfare == 25
    assert verify(book, clearing) == []


@pytest.mark.parametrize(
    ("per_scu", "blocks", "mechanism"),
    [(True, False, "lp"), (False, True, "mip"), (True, True, "mip")],
)
@settings(DETERMINISTIC, max_examples=100)
@given(data=st.data())
def test_lp_and_mip_clearings_keep_every_constraint(
    per_scu: bool, blocks: bool, mechanism: str, data: st.DataObject
) -> None:
    # given a tiny book with SCU-denominated and/or block bids
    book = data.draw(block_books(per_scu=per_scu, blocks=blocks))
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}

    # when it clears
    clearing = clear(book)

    # then the certificate holds, and so do its rules checked here independently:
    assert clearing.mechanism == mechanism
    assert verify(book, clearing) == []
    got: dict[str, int] = defaultdict(int)
    pools: dict[str, set[str]] = defaultdict(set)
    welfare = Fraction(0)
    for f in clearing.fills:
        b, a, scu = bids[f.bid], asks[f.ask], book.classes[f.cls].scu
        value = Fraction(b.price * scu, SCU_SCALE) if b.per_scu else Fraction(b.price)
        # one price per class, reached by the buyer and accepted by the seller
        assert f.price == clearing.price_of(f.cls)
        assert value >= f.price >= a.price
        got[b.id] += f.units * (scu if b.per_scu else 1)
        pools[b.id].add(a.pool)
        welfare += (value - a.price) * f.units
    for b in book.bids:
        # no bid gets more than it asked for (in its own unit), blocks are respected
        assert got[b.id] <= b.quantity
        assert got[b.id] == 0 or got[b.id] >= b.min_fill
        if b.same_pool:
            assert len(pools[b.id]) <= 1
        if b.all_or_none and got[b.id] and not b.per_scu:
            assert got[b.id] == b.quantity
    # and the welfare is what the fills earn, no more than the best integer allocation
    assert clearing.welfare == math.floor(welfare)
    assert clearing.welfare <= brute_force_welfare(book)


# --------------------------------------------------------------------------------------------
# Whole units and class prices after the LP or MIP (books shrunk from simulated rounds whose
# certificate failed)


def test_a_unit_rounded_off_in_the_mip_is_sold_to_the_scu_bid_that_pays_the_price() -> None:
    # given two units at 168 of a class of 0.1652 SCU; an SCU bid for 0.3448 SCU (2.09 units) at
    # 1295 per SCU-hour (213.93 a unit), another for 0.0001 SCU (no whole unit) at 2014, and a gang
    # bid with no compatible supply that puts the book on the MIP path. The LP gives the small bid a
    # sliver of a unit; rounding both down left a unit unsold below the price of 213
    book = make_book(
        asks=[Ask("a", "c", "p1", 2, 168, seq=1)],
        bids=[
            Bid("gang", "g0", 1, 12931, seq=1, all_or_none=True, same_pool=True),
            Bid("sliver", "g1", 1, 2014, seq=2, per_scu=True),
            Bid("scu", "g2", 3_448, 1295, seq=3, per_scu=True),
        ],
        arcs={"g0": [], "g1": ["c"], "g2": ["c"]},
        classes=[Class("c", scu=1_652)],
    )

    # when it clears
    clearing = clear(book)

    # then the SCU bid buys both units at its value rounded down to the tick
    assert clearing.mechanism == "mip"
    assert clearing.fills == (Fill("scu", "a", "c", 2, 213),)
    assert clearing.welfare == 91  # 2 × (213.9316 − 168)
    assert verify(book, clearing) == []


def test_a_class_priced_up_to_a_gangs_dear_ask_sells_its_spare_units_to_an_scu_bid() -> None:
    # given a gang bid for one unit at 288 and units of three sizes: "small" (0.1652 SCU, two at
    # 254), "mid" (1.4482 SCU, one at 2165) and "big" (7.9152 SCU, one at 15883); an SCU bid for
    # 0.32 SCU at 2306 per SCU-hour accepts all three. In the LP it takes a fifth of a "mid" unit
    # (the cheapest per SCU), lost to rounding; the class row priced "small" below the gang's ask,
    # and the SCU bid was left out of the spare "small" unit it values at 380.95
    book = make_book(
        asks=[
            Ask("s", "small", "p1", 2, 254, seq=1),
            Ask("m", "mid", "p2", 1, 2165, seq=2),
            Ask("b", "big", "p3", 1, 15883, seq=3),
        ],
        bids=[
            Bid("gang", "g0", 1, 288, seq=1, all_or_none=True, same_pool=True),
            Bid("scu", "g1", 3_200, 2306, seq=2, per_scu=True),
        ],
        arcs={"g0": ["small"], "g1": ["small", "mid", "big"]},
        classes=[Class("small", scu=1_652), Class("mid", scu=14_482), Class("big", scu=79_152)],
    )

    # when it clears
    clearing = clear(book)

    # then both buy a "small" unit, at the gang's ask
    assert clearing.mechanism == "mip"
    assert clearing.fills == (
        Fill("gang", "s", "small", 1, 254),
        Fill("scu", "s", "small", 1, 254),
    )
    assert clearing.unfilled == (("scu", "rationed"),)
    assert verify(book, clearing) == []


def test_a_gang_gets_all_its_units_from_one_pool_across_classes() -> None:
    # given a gang bid for 4 units at 23 accepting classes c0 and c1; pool p0 has 3 c0 units at 6
    # and 4 c1 units at 15, pool p1 one c0 unit at 23; a divisible bid for 3 c0 units at 31 and an
    # SCU bid too small for a c1 unit. The pricing LP split the gang's draws into fractions, and
    # rounding them down filled it 3 of 4
    book = make_book(
        asks=[
            Ask("a0", "c0", "p0", 3, 6, seq=1),
            Ask("a1", "c0", "p1", 1, 23, seq=2),
            Ask("a2", "c1", "p0", 4, 15, seq=3),
        ],
        bids=[
            Bid("gang", "g0", 4, 23, seq=1, all_or_none=True, same_pool=True, min_fill=4),
            Bid("sliver", "g1", 1, 57, seq=2, per_scu=True),
            Bid("unit", "g2", 3, 31, seq=3),
        ],
        arcs={"g0": ["c0", "c1"], "g1": ["c1"], "g2": ["c0"]},
        classes=[Class("c0", scu=2_500), Class("c1", scu=14_482)],
    )

    # when it clears
    clearing = clear(book)

    # then the gang gets all four c1 units of p0, the divisible bid the three cheap c0 units
    assert clearing.mechanism == "mip"
    assert clearing.fills == (Fill("gang", "a2", "c1", 4, 23), Fill("unit", "a0", "c0", 3, 23))
    assert clearing.unfilled == (("sliver", "priced_out"),)
    assert verify(book, clearing) == []


def test_a_gang_that_must_buy_an_ask_above_its_limit_is_rejected() -> None:
    # given a gang bid for 2 units at 31; its only pool with two units has one at 16 and one at 34
    # (gain 15 − 3 > 0, so the MIP accepts it), the other pool one unit at 18. One price per class
    # means at least 34 for both units: above the gang's limit
    book = make_book(
        asks=[
            Ask("cheap", "c", "p0", 1, 16, seq=1),
            Ask("dear", "c", "p0", 1, 34, seq=2),
            Ask("other", "c", "p1", 1, 18, seq=3),
        ],
        bids=[Bid("gang", "g", 2, 31, seq=1, all_or_none=True, same_pool=True, min_fill=2)],
        arcs={"g": ["c"]},
        classes=[Class("c", scu=24_960)],
    )

    # when it clears
    clearing = clear(book)

    # then (European rule) the gang is rejected rather than the dear ask sold below its price
    assert clearing.mechanism == "mip"
    assert clearing.fills == ()
    assert clearing.unfilled == (("gang", "all_or_none_unsatisfiable"),)
    assert clearing.notes == ("block gang rejected: its limit is below the clearing price",)
    assert verify(book, clearing) == []


def test_an_scu_bid_that_loses_its_lp_fraction_of_a_big_unit_buys_small_ones() -> None:
    # given "small" units (0.1652 SCU) at 6 and at 12, one "big" unit (2.496 SCU) at 30, and an SCU
    # bid for 0.5891 SCU at 231 per SCU-hour (38.16 a small unit, 576.58 a big one). The LP gives it
    # a quarter of the big unit (cheapest per SCU), lost to rounding; it was then left wanting the
    # small unit at 12 with the price at 6
    book = make_book(
        asks=[
            Ask("s6", "small", "p0", 1, 6, seq=1),
            Ask("s12", "small", "p1", 1, 12, seq=2),
            Ask("b30", "big", "p1", 1, 30, seq=3),
        ],
        bids=[
            Bid("sliver", "g0", 1, 177, seq=1, per_scu=True),
            Bid("scu", "g1", 5_891, 231, seq=2, per_scu=True),
        ],
        arcs={"g0": ["small"], "g1": ["small", "big"]},
        classes=[Class("small", scu=1_652), Class("big", scu=24_960)],
    )

    # when it clears
    clearing = clear(book)

    # then it buys both small units, and the small class is priced at the dearer one
    assert clearing.mechanism == "lp"
    assert clearing.fills == (Fill("scu", "s12", "small", 1, 12), Fill("scu", "s6", "small", 1, 12))
    assert clearing.welfare == 58  # 2 × 38.1612 − 6 − 12
    assert verify(book, clearing) == []


@pytest.mark.parametrize(("blocks", "mechanism"), [(False, "lp"), (True, "mip")])
@settings(DETERMINISTIC, max_examples=250)
@given(data=st.data())
def test_the_certificate_holds_on_mixed_books(
    blocks: bool, mechanism: str, data: st.DataObject
) -> None:
    # given a book like the market's rounds: unit bids, SCU bids from a sliver of a unit to a few
    # units over classes of odd SCU sizes, and (with blocks) gangs, all-or-none and minimum fills
    book = data.draw(mixed_books(blocks=blocks))

    # when it clears
    clearing = clear(book)

    # then the certificate holds, and the same book clears byte for byte the same again
    assert clearing.mechanism == mechanism
    assert verify(book, clearing) == []
    assert clear(book).canonical() == clearing.canonical()
