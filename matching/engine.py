"""The clearing engine: a uniform-price double auction over classes of identical supply.

Pure: plain dataclasses in, plain dataclasses out; no ORM, no clock, no I/O. The same `Book` always
gives a byte-identical `Clearing` (see `Clearing.canonical()`).

Vocabulary
- An **ask** is an offer's free units in one **class** (pools with identical attributes and lease
  limits), at a minimum price per unit-hour.
- A **bid** is an order. Bids with identical constraints share a **signature**; `Book.arcs` says
  which classes each signature accepts.
- Prices are integers in **ticks** (the market's price tick) per unit-hour; SCU-denominated bids
  state their limit in ticks per SCU-hour and their quantity in SCU·10⁻⁴ (`SCU_SCALE`).

What is maximized
- Σ (bid value − ask price) per unit-hour over matched units: the rate of gains from trade for the
  round's delivery hour. Lease lengths do not weight it: in a market that clears every round, a unit
  leased for longer is also kept from the next rounds for longer, so an hour of surplus is worth the
  same whoever earns it. (`Clearing.welfare_total` reports the duration-weighted figure too.)

Mechanisms (chosen by the book's content)
- `flow`: every bid divisible and unit-denominated → min-cost flow (OR-Tools). Class prices are the
  midpoint of the minimum and maximum competitive-equilibrium prices, read as shortest distances in
  the residual graph condensed to signatures and classes; rounded half-even to a tick and
  re-checked by the certificate, falling back to the minimum equilibrium prices (always valid).
- `lp`: some bids ask in SCU (a class's unit counts differently for each) → a linear program (HiGHS,
  presolve off); fractional units are rounded down, and units and prices, starting from the class
  rows' duals, are settled class by class until the certificate holds (`matching.highs`).
- `mip`: some bids are all-or-none, same-pool, or have a minimum fill above one unit → a mixed
  integer program (HiGHS, time limit, best incumbent kept) gives whole units, the LP with those
  decisions fixed gives reference prices, and both are settled as for `lp`. European day-ahead
  rule: an accepted block is never charged above its limit (such a block is rejected and the round
  settled again without it); a profitable one may be rejected.
- `mcafee` (option): per-class McAfee trade reduction on top of the equilibrium allocation, for thin
  classes: the marginal trade of a class is dropped and its price set between the marginal bid and
  ask, so nobody gains by misreporting.

Rationing at the margin: within a signature (bids) or a class (asks), units at the marginal price
are shared pro rata to the quantities; the units pro rata leaves over go by time priority. Ties
break on (price, time, id) everywhere.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

SCU_SCALE = 10_000  # SCU quantities and SCU per unit are integers in 10⁻⁴ SCU

Mechanism = Literal["flow", "lp", "mip"]
Reason = Literal[
    "priced_out",  # compatible supply exists, but not at a price the bid reaches
    "no_compatible_supply",  # nothing in the book satisfies the bid's constraints
    "all_or_none_unsatisfiable",  # its whole quantity (or minimum, or one pool) could not be filled
    "rationed",  # partly filled: the rest is priced at exactly its limit, or no supply is left
    "trade_reduction",  # dropped by McAfee trade reduction
]


@dataclass(frozen=True, slots=True)
class Ask:
    id: str
    cls: str
    pool: str
    units: int
    price: int  # ticks per unit-hour
    seq: int  # time priority: smaller is earlier


@dataclass(frozen=True, slots=True)
class Bid:
    id: str
    signature: str
    quantity: int  # units, or SCU·10⁻⁴ when per_scu
    price: int  # ticks per unit-hour, or per SCU-hour when per_scu
    seq: int
    hours: int = 1
    per_scu: bool = False
    all_or_none: bool = False
    same_pool: bool = False
    min_fill: int = 1  # same unit as quantity


@dataclass(frozen=True, slots=True)
class Class:
    key: str
    scu: int = SCU_SCALE  # SCU per unit, in 10⁻⁴ SCU


@dataclass(frozen=True)
class Book:
    asks: Sequence[Ask]
    bids: Sequence[Bid]
    arcs: Mapping[str, Sequence[str]]  # signature → accepted class keys
    classes: Mapping[str, Class]


@dataclass(frozen=True, slots=True)
class Fill:
    bid: str
    ask: str
    cls: str
    units: int
    price: int  # the class price, ticks per unit-hour


@dataclass(frozen=True, slots=True)
class ClassPrice:
    cls: str
    price: int | None  # None: nothing traded and no equilibrium price is defined
    low: int | None  # minimum equilibrium price (flow mechanism), else None
    high: int | None  # maximum equilibrium price (flow mechanism), else None
    units: int
    unit_hours: int


@dataclass(frozen=True)
class Clearing:
    mechanism: Mechanism
    fills: tuple[Fill, ...]
    prices: tuple[ClassPrice, ...]
    unfilled: tuple[tuple[str, Reason], ...]  # (bid id, reason) for bids not completely filled
    welfare: int  # Σ (value − ask) × units, ticks per hour
    welfare_total: int  # the same weighted by each bid's hours
    volume_units: int
    volume_unit_hours: int
    optimal: bool = True  # False when the MIP stopped at its time limit with an incumbent
    notes: tuple[str, ...] = field(default=())
    # Classes priced by McAfee trade reduction: truthful, not an equilibrium, so the certificate
    # checks them for feasibility, individual rationality and balance only.
    reduced: tuple[str, ...] = field(default=())

    def price_of(self, cls: str) -> int | None:
        for p in self.prices:
            if p.cls == cls:
                return p.price
        return None

    def canonical(self) -> bytes:
        """The byte-identical form (sorted keys, no whitespace) the determinism tests compare."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


# --------------------------------------------------------------------------------------------
# Entry point


def clear(
    book: Book,
    *,
    trade_reduction: bool = False,
    mip_time_limit: float = 5.0,
) -> Clearing:
    """Clear a book: the welfare-maximizing allocation with one price per class."""
    with without_cyclic_gc():
        book = _normalized(book)
        if any(_is_block(b) for b in book.bids):
            clearing = _clear_mip(book, time_limit=mip_time_limit)
        elif any(b.per_scu for b in book.bids):
            clearing = _clear_lp(book)
        else:
            clearing = _clear_flow(book)
        if trade_reduction:
            clearing = _mcafee(book, clearing)
        return clearing


@contextlib.contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """A large book allocates millions of small objects and no cycles: the cyclic collector would
    walk them again and again for nothing (a fifth of the time at 100,000 orders)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _is_block(bid: Bid) -> bool:
    return bid.all_or_none or bid.same_pool or bid.min_fill > (SCU_SCALE if bid.per_scu else 1)


_PRICE = attrgetter("price")
_SEQ_ID = attrgetter("seq", "id")
_PRICE_SEQ_ID = attrgetter("price", "seq", "id")


def _normalized(book: Book) -> Book:
    """Sorted inputs (ties on price, time, id), unknown classes and empty arcs dropped."""
    classes = {k: book.classes[k] for k in sorted(book.classes)}
    # C-level keys (attrgetter) and a stable second pass are several times faster than a Python
    # key function on a million items: asks by (price, time, id), bids by (−price, time, id).
    asks = sorted((a for a in book.asks if a.units > 0 and a.cls in classes), key=_PRICE_SEQ_ID)
    bids = sorted((b for b in book.bids if b.quantity > 0), key=_SEQ_ID)
    bids.sort(key=_PRICE, reverse=True)  # stable: equal prices keep (time, id) order
    arcs = {
        s: tuple(sorted({c for c in book.arcs.get(s, ()) if c in classes}))
        for s in sorted({b.signature for b in bids})
    }
    return Book(asks=tuple(asks), bids=tuple(bids), arcs=arcs, classes=classes)


# --------------------------------------------------------------------------------------------
# Divisible unit bids: min-cost flow


def _clear_flow(book: Book) -> Clearing:
    from ortools.graph.python import min_cost_flow

    sigs = list(book.arcs)
    cls_keys = list(book.classes)
    sig_ix = {s: 2 + i for i, s in enumerate(sigs)}
    cls_ix = {c: 2 + len(sigs) + i for i, c in enumerate(cls_keys)}
    bids, asks = book.bids, book.asks
    demand = sum(b.quantity for b in bids)
    supply = sum(a.units for a in asks)
    bound = min(demand, supply)
    if bound == 0:
        return _result(book, "flow", [], {}, {})

    arc_pairs = [(s, c) for s in sigs for c in book.arcs[s]]
    tails = np.concatenate(
        [
            np.zeros(len(bids), dtype=np.int64),
            np.array([sig_ix[s] for s, _ in arc_pairs], dtype=np.int64),
            np.array([cls_ix[a.cls] for a in asks], dtype=np.int64),
            np.array([0], dtype=np.int64),
        ]
    )
    heads = np.concatenate(
        [
            np.array([sig_ix[b.signature] for b in bids], dtype=np.int64),
            np.array([cls_ix[c] for _, c in arc_pairs], dtype=np.int64),
            np.ones(len(asks), dtype=np.int64),
            np.array([1], dtype=np.int64),
        ]
    )
    caps = np.concatenate(
        [
            np.array([b.quantity for b in bids], dtype=np.int64),
            np.full(len(arc_pairs), bound, dtype=np.int64),
            np.array([a.units for a in asks], dtype=np.int64),
            np.array([bound], dtype=np.int64),
        ]
    )
    costs = np.concatenate(
        [
            -np.array([b.price for b in bids], dtype=np.int64),
            np.zeros(len(arc_pairs), dtype=np.int64),
            np.array([a.price for a in asks], dtype=np.int64),
            np.zeros(1, dtype=np.int64),
        ]
    )
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    solver.set_nodes_supplies(np.array([0, 1]), np.array([bound, -bound]))
    status = solver.solve()
    if status != solver.OPTIMAL:  # pragma: no cover - a balanced network with a bypass is feasible
        raise RuntimeError(f"min-cost flow failed with status {status}")
    flows = solver.flows(arcs)
    nb, na = len(bids), len(arc_pairs)
    sig_total: dict[str, int] = defaultdict(int)
    for b, x in zip(bids, flows[:nb].tolist(), strict=True):
        sig_total[b.signature] += x
    cls_total: dict[str, int] = defaultdict(int)
    for a, y in zip(asks, flows[nb + na : nb + na + len(asks)].tolist(), strict=True):
        cls_total[a.cls] += y
    flow_gc = {
        pair: x for pair, x in zip(arc_pairs, flows[nb : nb + na].tolist(), strict=True) if x
    }

    bid_fill = _ration(bids, key=lambda b: b.signature, totals=sig_total, qty=_bid_qty)
    ask_fill = _ration(asks, key=lambda a: a.cls, totals=cls_total, qty=_ask_qty)
    low, high = _equilibrium_bounds(book, bid_fill, ask_fill, flow_gc)
    prices: dict[str, int] = {}
    rounded = False  # an exact midpoint is an average of two equilibria, hence one itself
    for c in cls_keys:
        lo, hi = low.get(c), high.get(c)
        if lo is not None and hi is not None:
            prices[c] = _half_even_mid(lo, hi)
            rounded |= (lo + hi) % 2 == 1
        elif hi is not None:
            prices[c] = hi
        elif lo is not None:
            prices[c] = lo
    fills = _disaggregate(book, bid_fill, ask_fill, flow_gc, prices)
    clearing = _result(book, "flow", fills, prices, bid_fill, low=low, high=high)
    if rounded and _verify(book, clearing):
        fallback = {c: low.get(c, p) for c, p in prices.items()}
        fills = [Fill(f.bid, f.ask, f.cls, f.units, fallback[f.cls]) for f in fills]
        clearing = _result(
            book,
            "flow",
            fills,
            fallback,
            bid_fill,
            low=low,
            high=high,
            notes=("midpoint failed the certificate after rounding: minimum prices used",),
        )
    return clearing


_Item = TypeVar("_Item", Bid, Ask)


def _bid_qty(b: Bid) -> int:
    return b.quantity


def _ask_qty(a: Ask) -> int:
    return a.units


def _ration(
    items: Sequence[_Item],
    *,
    key: Callable[[_Item], str],
    totals: Mapping[str, int],
    qty: Callable[[_Item], int],
) -> dict[str, int]:
    """Share each group's total among its items: best price first; at the marginal price level pro
    rata to quantity, the remainder by time priority. Items arrive sorted by (price, time, id)."""
    groups: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    out: dict[str, int] = {}
    for g, members in groups.items():
        left = totals.get(g, 0)
        i = 0
        while i < len(members) and left > 0:
            j = i
            while j < len(members) and members[j].price == members[i].price:
                j += 1
            level = members[i:j]
            want = sum(qty(m) for m in level)
            if want <= left:
                for m in level:
                    out[m.id] = qty(m)
                left -= want
            else:
                shares = [left * qty(m) // want for m in level]
                rest = left - sum(shares)
                for m, share in sorted(
                    zip(level, shares, strict=True), key=lambda p: (p[0].seq, p[0].id)
                ):
                    extra = min(rest, qty(m) - share)
                    rest -= extra
                    out[m.id] = share + extra
                left = 0
            i = j
    return out


def _half_even_mid(lo: int, hi: int) -> int:
    twice = lo + hi
    half, odd = divmod(twice, 2)
    return half + (1 if odd and half % 2 else 0)


INF = math.inf


def _equilibrium_bounds(
    book: Book,
    bid_fill: Mapping[str, int],
    ask_fill: Mapping[str, int],
    flow_gc: Mapping[tuple[str, str], int],
) -> tuple[dict[str, int], dict[str, int]]:
    """Minimum and maximum equilibrium price of each class, from the optimal flow's residual graph.

    Nodes: S (buyers' side, 0), T (sellers' side, 1), signatures and classes. Residual arcs,
    condensed over the bids of a signature and the asks of a class (parallel paths keep the
    cheapest):
    S→g costs −(best value of a bid in g with room), g→S costs the lowest value of a bid in g with a
    fill; g→c costs 0 for every accepted class, c→g costs 0 where g bought from c; c→T costs the
    cheapest ask in c with room, T→c costs −(the dearest ask in c that sold); S↔T cost 0 (both are
    the outside). With no negative cycle (the flow is optimal), p_min(c) = −dist(S, c) and
    p_max(c) = dist(c, T); both are dual-optimal, hence competitive equilibria.
    """
    sigs = list(book.arcs)
    cls_keys = list(book.classes)
    node = {("s", s): 2 + i for i, s in enumerate(sigs)}
    node.update({("c", c): 2 + len(sigs) + i for i, c in enumerate(cls_keys)})
    edges: list[tuple[int, int, float]] = [(0, 1, 0.0), (1, 0, 0.0)]
    room_best: dict[str, int] = {}
    filled_low: dict[str, int] = {}
    for b in book.bids:  # sorted by price descending
        x = bid_fill.get(b.id, 0)
        if x < b.quantity and b.signature not in room_best:
            room_best[b.signature] = b.price
        if x > 0:
            filled_low[b.signature] = b.price
    for s, v in room_best.items():
        edges.append((0, node[("s", s)], float(-v)))
    for s, v in filled_low.items():
        edges.append((node[("s", s)], 0, float(v)))
    ask_room: dict[str, int] = {}
    ask_sold: dict[str, int] = {}
    for a in book.asks:  # sorted by price ascending
        y = ask_fill.get(a.id, 0)
        if y < a.units and a.cls not in ask_room:
            ask_room[a.cls] = a.price
        if y > 0:
            ask_sold[a.cls] = a.price
    for c, p in ask_room.items():
        edges.append((node[("c", c)], 1, float(p)))
    for c, p in ask_sold.items():
        edges.append((1, node[("c", c)], float(-p)))
    for s in sigs:
        for c in book.arcs[s]:
            edges.append((node[("s", s)], node[("c", c)], 0.0))
            if flow_gc.get((s, c), 0) > 0:
                edges.append((node[("c", c)], node[("s", s)], 0.0))
    n = 2 + len(sigs) + len(cls_keys)
    tail = np.array([e[0] for e in edges], dtype=np.int64)
    head = np.array([e[1] for e in edges], dtype=np.int64)
    cost = np.array([e[2] for e in edges], dtype=np.float64)
    from_s = _bellman_ford(n, tail, head, cost, source=0)
    to_t = _bellman_ford(n, head, tail, cost, source=1)  # reversed graph: distances to T
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    has_asks = {a.cls for a in book.asks}
    for c in cls_keys:
        if c not in has_asks:
            continue
        i = node[("c", c)]
        if math.isfinite(from_s[i]):
            low[c] = round(-from_s[i])
        if math.isfinite(to_t[i]):
            high[c] = round(to_t[i])
    return low, high


def _bellman_ford(
    n: int,
    tail: npt.NDArray[np.int64],
    head: npt.NDArray[np.int64],
    cost: npt.NDArray[np.float64],
    *,
    source: int,
) -> npt.NDArray[np.float64]:
    dist = np.full(n, INF)
    dist[source] = 0.0
    for _ in range(n):
        candidate = dist[tail] + cost
        new = dist.copy()
        np.minimum.at(new, head, candidate)
        if np.array_equal(new, dist):
            return dist
        dist = new
    raise RuntimeError("negative cycle in the residual graph: the flow is not optimal")


def _disaggregate(
    book: Book,
    bid_fill: Mapping[str, int],
    ask_fill: Mapping[str, int],
    flow_gc: Mapping[tuple[str, str], int],
    prices: Mapping[str, int],
) -> list[Fill]:
    """Turn per-bid, per-arc and per-ask totals into fills (bid, ask, units), deterministically:
    a signature's bids take its classes cheapest first, in time priority; a class's inflow takes
    its asks in (price, time, id) order."""
    by_sig: dict[str, list[Bid]] = defaultdict(list)
    for b in sorted(book.bids, key=_SEQ_ID):  # time priority
        if bid_fill.get(b.id, 0):
            by_sig[b.signature].append(b)
    by_cls: dict[str, list[Ask]] = defaultdict(list)
    for a in book.asks:
        if ask_fill.get(a.id, 0):
            by_cls[a.cls].append(a)
    # bid → class quantities
    pieces: dict[str, list[tuple[Bid, int]]] = defaultdict(list)
    for s, members in by_sig.items():
        classes = sorted(
            (c for c in book.arcs[s] if flow_gc.get((s, c), 0)),
            key=lambda c: (prices.get(c, 0), c),
        )
        room = {c: flow_gc[(s, c)] for c in classes}
        it = iter(classes)
        current = next(it, None)
        for b in members:
            need = bid_fill[b.id]
            while need and current is not None:
                take = min(need, room[current])
                pieces[current].append((b, take))
                need -= take
                room[current] -= take
                if room[current] == 0:
                    current = next(it, None)
    fills: list[Fill] = []
    for c, chunk in sorted(pieces.items()):
        fills += pair(c, prices[c], chunk, [(a, ask_fill[a.id]) for a in by_cls[c]])
    return fills  # a bid meets each ask of a class at most once: nothing to merge


def pair(
    cls: str, price: int, wants: Sequence[tuple[Bid, int]], sells: Sequence[tuple[Ask, int]]
) -> list[Fill]:
    """Match a class's buyers (in order) with its sellers (in order), unit for unit."""
    fills: list[Fill] = []
    k, left = 0, (sells[0][1] if sells else 0)
    for b, units in wants:
        while units and k < len(sells):
            take = min(units, left)
            if take:
                fills.append(Fill(b.id, sells[k][0].id, cls, take, price))
            units -= take
            left -= take
            if left == 0:
                k += 1
                left = sells[k][1] if k < len(sells) else 0
    return fills


def _merged(fills: Iterable[Fill]) -> list[Fill]:
    total: dict[tuple[str, str, str, int], int] = defaultdict(int)
    for f in fills:
        total[(f.bid, f.ask, f.cls, f.price)] += f.units
    return [Fill(b, a, c, u, p) for (b, a, c, p), u in total.items()]  # _result sorts


# --------------------------------------------------------------------------------------------
# Results, reasons, certificate


def bid_units(bid: Bid, units: int, cls: Class) -> int:
    """How much of a bid's quantity `units` of a class cover (units, or SCU·10⁻⁴)."""
    return units * cls.scu if bid.per_scu else units


def unit_value(bid: Bid, cls: Class) -> tuple[int, int]:
    """A bid's value for one unit-hour of a class: (numerator, denominator) in ticks."""
    return (bid.price * cls.scu, SCU_SCALE) if bid.per_scu else (bid.price, 1)


def _result(
    book: Book,
    mechanism: Mechanism,
    fills: Sequence[Fill],
    prices: Mapping[str, int],
    bid_fill: Mapping[str, int],
    *,
    low: Mapping[str, int] | None = None,
    high: Mapping[str, int] | None = None,
    optimal: bool = True,
    notes: tuple[str, ...] = (),
    reasons: Mapping[str, Reason] | None = None,
    reduced: tuple[str, ...] = (),
) -> Clearing:
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}
    units_by_cls: dict[str, int] = defaultdict(int)
    hours_by_cls: dict[str, int] = defaultdict(int)
    filled: dict[str, int] = defaultdict(int)
    welfare_num = 0  # in ticks × SCU_SCALE to stay exact for SCU bids
    welfare_total_num = 0
    for f in fills:
        b, a, c = bids[f.bid], asks[f.ask], book.classes[f.cls]
        units_by_cls[f.cls] += f.units
        hours_by_cls[f.cls] += f.units * b.hours
        filled[f.bid] += bid_units(b, f.units, c)
        num, den = unit_value(b, c)
        gain = (num * (SCU_SCALE // den)) - a.price * SCU_SCALE
        welfare_num += gain * f.units
        welfare_total_num += gain * f.units * b.hours
    unfilled = _reasons(book, filled, prices, reasons or {})
    has_asks = {a.cls for a in book.asks}
    table = tuple(
        ClassPrice(
            cls=c,
            price=prices.get(c) if units_by_cls.get(c) else None,
            low=(low or {}).get(c),
            high=(high or {}).get(c),
            units=units_by_cls.get(c, 0),
            unit_hours=hours_by_cls.get(c, 0),
        )
        for c in book.classes
        if c in has_asks
    )
    return Clearing(
        mechanism=mechanism,
        fills=tuple(sorted(fills, key=attrgetter("bid", "ask", "cls"))),
        prices=table,
        unfilled=unfilled,
        welfare=welfare_num // SCU_SCALE,
        welfare_total=welfare_total_num // SCU_SCALE,
        volume_units=sum(units_by_cls.values()),
        volume_unit_hours=sum(hours_by_cls.values()),
        optimal=optimal,
        notes=notes,
        reduced=reduced,
    )


def _reasons(
    book: Book,
    filled: Mapping[str, int],
    prices: Mapping[str, int],
    given: Mapping[str, Reason],
) -> tuple[tuple[str, Reason], ...]:
    supplied = {a.cls for a in book.asks}
    out: list[tuple[str, Reason]] = []
    for b in sorted(book.bids, key=attrgetter("id")):
        got = filled.get(b.id, 0)
        if got >= b.quantity:
            continue
        reason: Reason
        if b.id in given:
            reason = given[b.id]
        elif not any(c in supplied for c in book.arcs.get(b.signature, ())):
            reason = "no_compatible_supply"
        elif got:
            reason = "rationed"
        elif _is_block(b):
            reason = "all_or_none_unsatisfiable"
        else:
            reason = "priced_out"
        out.append((b.id, reason))
    return tuple(out)


def verify(book: Book, clearing: Clearing) -> list[str]:
    """The certificate: every condition a clearing must meet; returns the violations (none = ok).

    1. fills name known bids, asks and classes; the bid accepts the class; the ask is in it;
    2. no bid gets more than its quantity, no ask sells more than its units; all-or-none bids get
       all or nothing, minimum fills are met, same-pool bids use one pool;
    3. every filled bid's value ≥ its class price; every filled ask ≤ its class price;
    4. no divisible bid with room values a compatible class with spare units above its price
       (values on the tick grid: an SCU bid's value per unit is rounded down to a whole tick);
    5. no unfilled ask is below its class price while a compatible divisible bid with room values
       the class at or above that price;
    6. buyers pay exactly what sellers receive (one price per fill; money rounding happens once per
       fill, the same amount on both sides).
    """
    return _verify(_normalized(book), clearing)


def _verify(book: Book, clearing: Clearing) -> list[str]:
    """``verify`` on a book already normalized."""
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}
    accepts = {s: set(cs) for s, cs in book.arcs.items()}
    prices = {p.cls: p.price for p in clearing.prices}
    v: list[str] = []
    got: dict[str, int] = defaultdict(int)
    sold: dict[str, int] = defaultdict(int)
    pools: dict[str, set[str]] = defaultdict(set)
    for f in clearing.fills:
        b, a, c = bids.get(f.bid), asks.get(f.ask), book.classes.get(f.cls)
        if b is None or a is None or c is None:
            v.append(f"fill {f.bid}/{f.ask}: unknown bid, ask or class")
            continue
        if f.units <= 0:
            v.append(f"fill {f.bid}/{f.ask}: {f.units} units")
        if f.cls not in accepts.get(b.signature, ()):
            v.append(f"bid {b.id} does not accept class {f.cls}")
        if a.cls != f.cls:
            v.append(f"ask {a.id} is not in class {f.cls}")
        if prices.get(f.cls) != f.price:
            v.append(f"fill {f.bid}/{f.ask} at {f.price}, class {f.cls} price {prices.get(f.cls)}")
        num, den = unit_value(b, c)
        if num < f.price * den:
            v.append(f"bid {b.id} pays {f.price} above its value {num}/{den} in {f.cls}")
        if a.price > f.price:
            v.append(f"ask {a.id} at {a.price} sells below its price at {f.price}")
        got[b.id] += bid_units(b, f.units, c)
        sold[a.id] += f.units
        pools[b.id].add(a.pool)
    for b in book.bids:
        x = got.get(b.id, 0)
        if x > b.quantity:
            v.append(f"bid {b.id} over-filled: {x} > {b.quantity}")
        if b.all_or_none and x > 0 and x + _slack(b, book) < b.quantity:
            v.append(f"all-or-none bid {b.id} partly filled: {x} of {b.quantity}")
        if 0 < x < b.min_fill:
            v.append(f"bid {b.id} filled {x} below its minimum {b.min_fill}")
        if b.same_pool and len(pools.get(b.id, ())) > 1:
            v.append(f"same-pool bid {b.id} uses {len(pools[b.id])} pools")
    reduced = set(clearing.reduced)
    spare: dict[str, int] = defaultdict(int)
    for a in book.asks:
        y = sold.get(a.id, 0)
        if y > a.units:
            v.append(f"ask {a.id} over-sold: {y} > {a.units}")
        spare[a.cls] += max(0, a.units - y)
    # 4 and 5 per signature rather than per bid × class: a unit bid's value is the same in every
    # class, so per signature the cheapest spare class (4) and the hungriest bid with room (5) do.
    spare_price: dict[str, tuple[int, str]] = {}  # signature → (cheapest price with spare, class)
    for sig, accepted in book.arcs.items():
        options = [
            (p, c)
            for c in accepted
            if c not in reduced and spare.get(c) and (p := prices.get(c)) is not None
        ]
        if options:
            spare_price[sig] = min(options)
    hungriest: dict[str, Bid] = {}  # signature → the highest unit bid with a unit of room
    scu_with_room: list[Bid] = []
    for b in book.bids:  # sorted by price, highest first
        if _is_block(b):
            continue  # European rule: a block may be rejected although profitable
        left = b.quantity - got.get(b.id, 0)
        if b.per_scu:
            if left > 0:
                scu_with_room.append(b)
            continue
        if left < 1:
            continue
        hungriest.setdefault(b.signature, b)
        cheapest = spare_price.get(b.signature)
        if cheapest is not None and b.price > cheapest[0]:
            v.append(
                f"bid {b.id} values {cheapest[1]} at {b.price}/1 above its price {cheapest[0]} "
                "and is unfilled"
            )

    def wanting(b: Bid, key: str, p: int) -> bool:
        klass = book.classes[key]
        num, den = unit_value(b, klass)
        return num >= p * den and b.quantity - got.get(b.id, 0) >= bid_units(b, 1, klass)

    for b in scu_with_room:
        for key in book.arcs.get(b.signature, ()):
            p = prices.get(key)
            if p is None or not spare.get(key) or key in reduced:
                continue
            num, den = unit_value(b, book.classes[key])
            # On the tick grid: a unit worth 1.25 ticks does not envy a price of 1 tick.
            if num // den > p and wanting(b, key, p):
                v.append(
                    f"bid {b.id} values {key} at {num}/{den} above its price {p} and is unfilled"
                )
    accepting: dict[str, list[str]] = defaultdict(list)
    for sig, accepted in book.arcs.items():
        for key in accepted:
            accepting[key].append(sig)
    for a in book.asks:
        p = prices.get(a.cls)
        if p is None or sold.get(a.id, 0) >= a.units or a.price >= p or a.cls in reduced:
            continue
        keen = [
            h for sig in accepting.get(a.cls, ()) if (h := hungriest.get(sig)) and h.price >= p
        ] + [
            b
            for b in scu_with_room
            if a.cls in book.arcs.get(b.signature, ()) and wanting(b, a.cls, p)
        ]
        if keen:
            first = min(keen, key=lambda b: (-b.price, b.seq, b.id))
            v.append(f"ask {a.id} at {a.price} unsold below {p} while bid {first.id} wants more")
    return v


def _slack(bid: Bid, book: Book) -> int:
    """An SCU all-or-none bid is whole when less than one unit of any accepted class is missing."""
    if not bid.per_scu:
        return 0
    return max((book.classes[c].scu for c in book.arcs.get(bid.signature, ())), default=0) - 1


# --------------------------------------------------------------------------------------------
# LP and MIP (HiGHS)


def _clear_lp(book: Book) -> Clearing:
    from matching.highs import solve

    return solve(book, integer=False, time_limit=None)


def _clear_mip(book: Book, *, time_limit: float) -> Clearing:
    from matching.highs import solve

    return solve(book, integer=True, time_limit=time_limit)


def _mcafee(book: Book, clearing: Clearing) -> Clearing:
    from matching.reduction import trade_reduction

    result: Clearing = trade_reduction(book, clearing)
    return result
