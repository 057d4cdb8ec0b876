"""Books for testing the clearing engine, and two oracles that share no code with it.

- `books()`: a Hypothesis strategy for small books (few classes, signatures, ids and prices, so
  ties and rationing are common); `block_books()` adds SCU-denominated and block bids;
  `mixed_books()` mixes them the way the market's rounds do (classes of odd SCU sizes, SCU bids of
  a fraction of a unit to a few units, same-pool gangs).
- `random_book(seed, ...)`: a seeded, larger book of the market's shape, for reference comparisons
  and benchmarks.
- `brute_force_welfare(book)`: the best welfare over every integer allocation (exhaustive search,
  memoized on the asks' remaining units), honouring SCU quantities, all-or-none, minimum fill and
  same-pool; exact, as a `Fraction` of ticks per hour.
- `lp_welfare(book)`: welfare of an independent LP (HiGHS) with one variable per compatible
  (bid, ask) pair; for unit-denominated bids the constraint matrix is a transportation matrix, so
  the LP optimum is the integer optimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from itertools import product

import highspy
import numpy as np
from hypothesis import strategies as st

from matching.engine import SCU_SCALE, Ask, Bid, Book, Class

POOLS = ("p0", "p1", "p2")
SCU_SIZES = (2_500, 5_000, 10_000, 20_000)  # a quarter, half, one and two SCU per unit


@st.composite
def books(
    draw: st.DrawFn,
    *,
    min_bids: int = 0,
    max_bids: int = 3,
    min_asks: int = 0,
    max_asks: int = 3,
    min_units: int = 0,
    max_units: int = 3,
    max_classes: int = 2,
    max_signatures: int = 2,
    max_price: int = 12,
    max_hours: int = 1,
    distinct_bid_prices: bool = False,
) -> Book:
    """A book of divisible unit bids: ids b0…, a0…, classes c0…, signatures g0…. g0 accepts at
    least one class; any other signature may accept none, and a class may have no asks."""
    class_keys = [f"c{i}" for i in range(draw(st.integers(1, max_classes)))]
    signatures = [f"g{i}" for i in range(draw(st.integers(1, max_signatures)))]
    arcs = {
        g: draw(
            st.lists(
                st.sampled_from(class_keys),
                unique=True,
                min_size=1 if g == "g0" else 0,
                max_size=len(class_keys),
            )
        )
        for g in signatures
    }
    n_asks = draw(st.integers(min_asks, max_asks))
    asks = [
        Ask(
            id=f"a{i}",
            cls=draw(st.sampled_from(class_keys)),
            pool=draw(st.sampled_from(POOLS)),
            units=draw(st.integers(min_units, max_units)),
            price=draw(st.integers(1, max_price)),
            seq=draw(st.integers(0, 3)),
        )
        for i in range(n_asks)
    ]
    n_bids = draw(st.integers(min_bids, max_bids))
    if distinct_bid_prices:
        bid_prices = draw(
            st.lists(st.integers(1, max_price), min_size=n_bids, max_size=n_bids, unique=True)
        )
    else:
        bid_prices = [draw(st.integers(1, max_price)) for _ in range(n_bids)]
    bids = [
        Bid(
            id=f"b{i}",
            signature=draw(st.sampled_from(signatures)),
            quantity=draw(st.integers(min_units, max_units)),
            price=price,
            seq=draw(st.integers(0, 3)),
            hours=draw(st.integers(1, max_hours)),
        )
        for i, price in enumerate(bid_prices)
    ]
    return Book(asks=asks, bids=bids, arcs=arcs, classes={c: Class(c) for c in class_keys})


@st.composite
def block_books(draw: st.DrawFn, *, per_scu: bool, blocks: bool) -> Book:
    """A tiny book (≤3 bids, ≤3 asks of ≤3 units) whose classes have various SCU sizes. With
    `per_scu`, bids are SCU-denominated at random; with `blocks`, bids are all-or-none, same-pool or
    carry a minimum fill at random. At least one bid is of the requested kind, so the book takes
    the LP (per_scu only) or MIP (blocks) path."""
    base = draw(books(max_bids=3, max_asks=3, max_units=3, max_price=20, max_hours=2))
    classes = {k: Class(k, scu=draw(st.sampled_from(SCU_SIZES))) for k in base.classes}
    bids: list[Bid] = []
    for i, b in enumerate(base.bids):
        scu = per_scu and (i == 0 or draw(st.booleans()))
        quantity = draw(st.integers(1, 4 * SCU_SCALE)) if scu else max(b.quantity, 1)
        aon = same_pool = False
        min_fill = 1
        if blocks and (i == 0 or draw(st.booleans())):
            kind = draw(st.sampled_from(("all_or_none", "same_pool", "min_fill")))
            aon, same_pool = kind == "all_or_none", kind == "same_pool"
            if kind == "min_fill":
                floor = SCU_SCALE if scu else 1
                min_fill = draw(st.integers(floor + 1, max(quantity, floor + 1)))
        bids.append(
            Bid(
                id=b.id,
                signature=b.signature,
                quantity=quantity,
                price=b.price,
                seq=b.seq,
                hours=b.hours,
                per_scu=scu,
                all_or_none=aon,
                same_pool=same_pool,
                min_fill=min_fill,
            )
        )
    if not bids:  # one bid of the requested kind, so the book still takes its path
        quantity = SCU_SCALE if per_scu else 1
        bids.append(Bid("b0", "g0", quantity, price=1, seq=0, per_scu=per_scu, all_or_none=blocks))
    return Book(asks=base.asks, bids=bids, arcs=base.arcs, classes=classes)


MARKET_SCU_SIZES = (1_652, 2_500, 5_000, 10_000, 14_482, 24_960)  # odd sizes, as real devices have


@st.composite
def mixed_books(draw: st.DrawFn, *, blocks: bool) -> Book:
    """A small book like the market's rounds: divisible unit bids, SCU bids whose quantity runs from
    a fraction of one unit to a few (so the LP's fractions and their rounding matter, and a unit's
    value falls between ticks), and with `blocks` blocks too: same-pool all-or-none gangs,
    all-or-none bids and minimum fills. The first bid is a gang with `blocks`, else an SCU bid, so
    the book takes the MIP or the LP path. Classes have odd SCU sizes; bids accept 1-3 of them."""
    keys = [f"c{i}" for i in range(draw(st.integers(1, 3)))]
    classes = {k: Class(k, scu=draw(st.sampled_from(MARKET_SCU_SIZES))) for k in keys}
    asks = [
        Ask(
            id=f"a{i}",
            cls=draw(st.sampled_from(keys)),
            pool=draw(st.sampled_from(POOLS)),
            units=draw(st.integers(1, 6)),
            price=draw(st.integers(5, 40)),
            seq=draw(st.integers(0, 5)),
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    kinds = ["unit", "scu"] + (["gang", "all_or_none", "min_fill"] if blocks else [])
    arcs: dict[str, list[str]] = {}
    bids: list[Bid] = []
    for i in range(draw(st.integers(1, 6))):
        signature = f"g{i}"
        arcs[signature] = draw(st.lists(st.sampled_from(keys), unique=True, min_size=1))
        kind = draw(st.sampled_from(kinds)) if i else ("gang" if blocks else "scu")
        seq = draw(st.integers(0, 5))
        if kind == "scu":
            quantity = draw(st.integers(1_000, 40_000))
            # Per SCU-hour: 3-41 per unit of the smallest class, 50-624 of the largest.
            price = draw(st.integers(20, 250))
            bids.append(Bid(f"b{i}", signature, quantity, price, seq, per_scu=True))
            continue
        quantity = draw(st.integers(1, 6))
        price = draw(st.integers(5, 60))
        bids.append(
            Bid(
                f"b{i}",
                signature,
                quantity,
                price,
                seq,
                all_or_none=kind in ("gang", "all_or_none"),
                same_pool=kind == "gang",
                min_fill=draw(st.integers(2, max(2, quantity))) if kind == "min_fill" else 1,
            )
        )
    return Book(asks=asks, bids=bids, arcs=arcs, classes=classes)


def random_book(
    seed: int,
    *,
    bids: int,
    asks: int,
    classes: int = 6,
    signatures: int = 12,
) -> Book:
    """A seeded book shaped like the market: classes with ascending reference prices, signatures
    accepting a run of neighbouring classes (substitutes; some accept none), prices around the
    references, bids of 1-16 units, asks of 1-32."""
    rng = np.random.default_rng(seed)
    keys = [f"c{i}" for i in range(classes)]
    reference = [100 + 40 * i for i in range(classes)]
    arcs: dict[str, list[str]] = {}
    for i in range(signatures):
        start = int(rng.integers(0, classes))
        width = int(rng.integers(0, 4))
        arcs[f"g{i}"] = keys[start : start + width]
    sig_keys = sorted(arcs)
    ask_list = []
    for i in range(asks):
        c = int(rng.integers(0, classes))
        ask_list.append(
            Ask(
                id=f"a{i}",
                cls=keys[c],
                pool=f"p{int(rng.integers(0, 4))}",
                units=int(rng.integers(1, 33)),
                price=max(1, int(reference[c] * rng.lognormal(0.0, 0.3))),
                seq=int(rng.integers(0, 1_000)),
            )
        )
    bid_list = []
    for i in range(bids):
        signature = sig_keys[int(rng.integers(0, signatures))]
        accepted = arcs[signature]
        anchor = reference[keys.index(accepted[-1])] if accepted else reference[0]
        bid_list.append(
            Bid(
                id=f"b{i}",
                signature=signature,
                quantity=int(rng.integers(1, 17)),
                price=max(1, int(anchor * rng.lognormal(0.0, 0.3))),
                seq=int(rng.integers(0, 1_000)),
                hours=int(rng.integers(1, 25)),
            )
        )
    return Book(asks=ask_list, bids=bid_list, arcs=arcs, classes={k: Class(k) for k in keys})


def _unit_value(bid: Bid, cls: Class) -> Fraction:
    return Fraction(bid.price * cls.scu, SCU_SCALE) if bid.per_scu else Fraction(bid.price)


def _allowed(bid: Bid, took: int, pools: set[str], accepted: Sequence[Class]) -> bool:
    """Whether a bid may receive `took` (its own unit) from `pools`. An SCU all-or-none bid is
    whole when less than one unit of its largest accepted class is missing (the certificate's
    rule)."""
    if took > bid.quantity or took < bid.min_fill:
        return False
    if bid.same_pool and len(pools) > 1:
        return False
    if bid.all_or_none:
        slack = max((c.scu for c in accepted), default=1) - 1 if bid.per_scu else 0
        return took + slack >= bid.quantity
    return True


def brute_force_welfare(book: Book) -> Fraction:
    """max Σ (bid value − ask price) × units over every integer allocation of asks' units to bids
    whose signature accepts the ask's class."""
    asks = [a for a in book.asks if a.units > 0 and a.cls in book.classes]
    bids = [b for b in book.bids if b.quantity > 0]

    @cache
    def best(i: int, left: tuple[int, ...]) -> Fraction:
        if i == len(bids):
            return Fraction(0)
        bid = bids[i]
        accepted_keys = [c for c in book.arcs.get(bid.signature, ()) if c in book.classes]
        accepted = [book.classes[c] for c in accepted_keys]
        options = [k for k, a in enumerate(asks) if a.cls in accepted_keys]
        top = best(i + 1, left)  # the bid gets nothing
        for units in product(*(range(left[k] + 1) for k in options)):
            if not any(units):
                continue
            took = 0
            gain = Fraction(0)
            pools: set[str] = set()
            for k, u in zip(options, units, strict=True):
                if u:
                    cls = book.classes[asks[k].cls]
                    took += u * (cls.scu if bid.per_scu else 1)
                    gain += u * (_unit_value(bid, cls) - asks[k].price)
                    pools.add(asks[k].pool)
            if not _allowed(bid, took, pools, accepted):
                continue
            rest = list(left)
            for k, u in zip(options, units, strict=True):
                rest[k] -= u
            top = max(top, gain + best(i + 1, tuple(rest)))
        return top

    return best(0, tuple(a.units for a in asks))


def lp_welfare(book: Book) -> float:
    """The optimum of: maximize Σ (bid price − ask price) · x[bid, ask] over compatible pairs,
    subject to Σ_ask x ≤ bid quantity, Σ_bid x ≤ ask units, x ≥ 0 (unit-denominated bids)."""
    bids = [b for b in book.bids if b.quantity > 0]
    asks = [a for a in book.asks if a.units > 0 and a.cls in book.classes]
    pairs = [
        (i, j)
        for i, b in enumerate(bids)
        for j, a in enumerate(asks)
        if a.cls in book.arcs.get(b.signature, ())
    ]
    if not pairs:
        return 0.0
    lp = highspy.HighsLp()
    lp.num_col_ = len(pairs)
    lp.num_row_ = len(bids) + len(asks)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.array([bids[i].price - asks[j].price for i, j in pairs], dtype=np.float64)
    lp.col_lower_ = np.zeros(len(pairs))
    lp.col_upper_ = np.full(len(pairs), highspy.kHighsInf)
    lp.row_lower_ = np.full(lp.num_row_, -highspy.kHighsInf)
    lp.row_upper_ = np.array([b.quantity for b in bids] + [a.units for a in asks], dtype=np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * len(pairs) + 1, 2, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(
        [row for i, j in pairs for row in (i, len(bids) + j)], dtype=np.int32
    )
    lp.a_matrix_.value_ = np.ones(2 * len(pairs))
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"reference LP: {h.modelStatusToString(status)}")
    return h.getInfo().objective_function_value
