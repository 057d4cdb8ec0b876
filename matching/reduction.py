"""Per-class McAfee trade reduction, with one budget-balanced price per class.

An option for thin classes, applied on top of the equilibrium allocation (`clear(book,
trade_reduction=True)`). Pure: no ORM, no clock, no I/O; the same inputs give the same `Clearing`.

Reference: R. P. McAfee, "A dominant strategy double auction", Journal of Economic Theory 56(2),
1992, pp. 434-450.

The rule, class by class
- Units are the goods. Of the equilibrium allocation, take the k units traded in the class; the
  bid units that bought them ranked by value descending and the ask units that sold them by price
  ascending, ties on (seq, id). b_k is the value of the last (lowest, latest) bid unit, s_k the
  price of the last (dearest, latest) ask unit.
- The best excluded units: b_{k+1} is the highest per-unit value among the divisible bids that
  accept the class and have at least one unit of it left unfilled (an SCU bid values a unit at
  price × scu / SCU_SCALE); s_{k+1} is the lowest price among the class's asks with units unsold.
  Bids filled in full in another class are trading, not excluded; block bids (all-or-none,
  same-pool, minimum fill) are not counted, since their units cannot trade one at a time (the
  certificate, `engine.verify`, passes over them the same way).
- p0 = (b_{k+1} + s_{k+1}) / 2, rounded half-even to a tick. If both exist and s_k ≤ p0 ≤ b_k, all
  k units trade at p0.
- Otherwise (also when either excluded unit is missing: McAfee's convention puts b_{n+1} and
  s_{m+1} at the ends of the value range, so p0 falls outside [s_k, b_k]) the k-th bid unit and the
  k-th ask unit are dropped, and the other k − 1 units trade at the midpoint of [s_k, b_k],
  rounded half-even to a tick. The bid that loses its unit is reported unfilled with the reason
  "trade_reduction".

The variant: McAfee's reduction branch charges buyers b_k and pays sellers s_k, keeping the
difference; the ledger needs one price per fill that buyers pay and sellers receive alike. Any price
that depends only on (b_k, s_k) and lies in [s_k, b_k] keeps McAfee's argument: both numbers are
reported by the traders whose units were dropped, so no remaining trader moves its price without
dropping out itself, and the price is individually rational for both sides. The midpoint also shares
the marginal surplus evenly, as the equilibrium prices do. (SBBA, Segal-Halevi, Hassidim and Aumann,
SAGT 2016, is budget-balanced too, but prices at s_{k+1} and drops a seller at random; a random draw
is not available to a deterministic clearing.) The dominant-strategy property is McAfee's: for
traders of one unit, within a class, given the allocation across classes; a bid or an ask of several
units can set b_k or s_k for its own other units, as in any multi-unit McAfee auction.

Limits
- A class where an SCU bid or a block bid bought is left as the equilibrium cleared it (a note says
  so): an SCU bid's quantity does not split into whole units of one value the way a unit bid's does,
  and a block bid cannot lose one unit.
- Excluded units are read from the equilibrium allocation for every class independently, so the
  result does not depend on the order the classes are reduced in.
- Welfare can only fall (each dropped unit had a gain b_k − s_k ≥ 0); `_result` recomputes it.
- After a drop, the dropped bid values the class above its price while a unit is left spare, so
  certificate conditions 4 and 5 (competitive equilibrium) no longer hold for that class; conditions
  1-3 and 6 (feasibility, individual rationality, one price per fill) do.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

from matching.engine import (
    SCU_SCALE,
    Bid,
    Book,
    Clearing,
    Fill,
    Reason,
    _normalized,
    _result,
    bid_units,
    unit_value,
)


def trade_reduction(book: Book, clearing: Clearing) -> Clearing:
    """McAfee trade reduction of every class that traded in `clearing` (see the module doc)."""
    book = _normalized(book)
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}
    filled: dict[str, int] = defaultdict(int)  # bid quantity filled, in the bid's own unit
    sold: dict[str, int] = defaultdict(int)
    by_cls: dict[str, list[Fill]] = defaultdict(list)
    for f in clearing.fills:
        filled[f.bid] += bid_units(bids[f.bid], f.units, book.classes[f.cls])
        sold[f.ask] += f.units
        by_cls[f.cls].append(f)

    prices = {p.cls: p.price for p in clearing.prices if p.price is not None}
    low = {p.cls: p.low for p in clearing.prices if p.low is not None}
    high = {p.cls: p.high for p in clearing.prices if p.high is not None}
    reasons: dict[str, Reason] = dict(clearing.unfilled)
    notes = list(clearing.notes)
    reduced: list[str] = []
    fills: list[Fill] = []
    for c in book.classes:
        in_cls = sorted(by_cls.get(c, ()), key=lambda f: (f.bid, f.ask))
        if not in_cls:
            continue
        buyers = [bids[f.bid] for f in in_cls]
        if any(not _unit_divisible(b) for b in buyers):
            notes.append(f"trade reduction: class {c} unchanged (SCU or block buyers)")
            fills.extend(in_cls)
            continue
        sellers = [asks[f.ask] for f in in_cls]
        marginal_bid = max(buyers, key=lambda b: (-b.price, b.seq, b.id))
        marginal_ask = max(sellers, key=lambda a: (a.price, a.seq, a.id))
        b_k, s_k = marginal_bid.price, marginal_ask.price
        b_next = _best_excluded_bid(book, c, filled)
        s_next = min(
            (a.price for a in book.asks if a.cls == c and sold[a.id] < a.units), default=None
        )
        if b_next is not None and s_next is not None:
            p0 = round((b_next + s_next) / 2)  # Fraction rounds half to even
            if s_k <= p0 <= b_k:
                prices[c] = p0
                reduced.append(c)
                fills.extend(Fill(f.bid, f.ask, c, f.units, p0) for f in in_cls)
                notes.append(f"trade reduction: class {c} keeps all units at {p0}")
                continue
        price = _half_even_mid(s_k, b_k)
        prices[c] = price
        reduced.append(c)
        kept = _drop_unit(in_cls, marginal_bid.id, marginal_ask.id)
        fills.extend(Fill(b, a, c, u, price) for (b, a), u in sorted(kept.items()))
        reasons[marginal_bid.id] = "trade_reduction"
        notes.append(
            f"trade reduction: class {c} drops one unit of bid {marginal_bid.id} and ask "
            f"{marginal_ask.id}, price {price}"
        )

    bid_fill: dict[str, int] = defaultdict(int)
    for f in fills:
        bid_fill[f.bid] += bid_units(bids[f.bid], f.units, book.classes[f.cls])
    return _result(
        book,
        clearing.mechanism,
        fills,
        prices,
        bid_fill,
        low=low,
        high=high,
        optimal=clearing.optimal,
        notes=tuple(notes),
        reasons=reasons,
        reduced=tuple(reduced),
    )


def _unit_divisible(bid: Bid) -> bool:
    """A unit-denominated bid that may be filled one unit at a time."""
    return not (bid.per_scu or bid.all_or_none or bid.same_pool or bid.min_fill > 1)


def _is_block(bid: Bid) -> bool:
    return bid.all_or_none or bid.same_pool or bid.min_fill > (SCU_SCALE if bid.per_scu else 1)


def _best_excluded_bid(book: Book, cls: str, filled: dict[str, int]) -> Fraction | None:
    """The best per-unit value among divisible bids accepting `cls` with a unit of it unfilled."""
    c = book.classes[cls]
    best: Fraction | None = None
    for b in book.bids:
        if _is_block(b) or cls not in book.arcs.get(b.signature, ()):
            continue
        if b.quantity - filled.get(b.id, 0) < bid_units(b, 1, c):
            continue
        value = Fraction(*unit_value(b, c))
        if best is None or value > best:
            best = value
    return best


def _drop_unit(fills: list[Fill], bid: str, ask: str) -> dict[tuple[str, str], int]:
    """One unit less for `bid` and for `ask` in one class's fills, re-pairing if they did not trade
    with each other: (bid, a1) and (b1, ask) lose a unit, (b1, a1) gains one. Fills arrive
    sorted by (bid, ask)."""
    units: dict[tuple[str, str], int] = defaultdict(int)
    for f in fills:
        units[(f.bid, f.ask)] += f.units
    if units.get((bid, ask), 0) > 0:
        units[(bid, ask)] -= 1
    else:
        a1 = next(f.ask for f in fills if f.bid == bid)
        b1 = next(f.bid for f in fills if f.ask == ask)
        units[(bid, a1)] -= 1
        units[(b1, ask)] -= 1
        units[(b1, a1)] += 1
    return {pair: u for pair, u in units.items() if u > 0}


def _half_even_mid(lo: int, hi: int) -> int:
    return round(Fraction(lo + hi, 2))
