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
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import compress, repeat
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
        """The byte-identical form (sorted keys, no whitespace) the determinism tests compare.

        What `json.dumps(asdict(self), ...)` gives, without `asdict`'s deep copies (several
        seconds at a million fills): fills and prices become dicts, the tuples become lists."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        plain["fills"] = _records(self.fills)
        plain["prices"] = _records(self.prices)
        return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def _records(items: tuple[Fill, ...] | tuple[ClassPrice, ...]) -> list[dict[str, object]]:
    """Dataclasses of one type, flat and of plain values, as dicts (`asdict` gives the same)."""
    if not items:
        return []
    names = tuple(f.name for f in fields(items[0]))
    values = attrgetter(*names)
    return list(map(dict, map(zip, repeat(names), map(values, items))))


# --------------------------------------------------------------------------------------------
# Entry point


def clear(
    book: Book,
    *,
    trade_reduction: bool = False,
    mip_time_limit: float | None = 5.0,
    mip_node_limit: int = 0,
) -> Clearing:
    """Clear a book: the welfare-maximizing allocation with one price per class.

    Bid ids are unique, and so are ask ids (a book of divisible unit bids that repeats one is
    refused with ValueError)."""
    with without_cyclic_gc():
        flow_book = _flow_book(book)
        if flow_book is not None:
            clearing = _clear_flow(flow_book)
        else:  # some bid is a block or asks in SCU
            book = _normalized(book)
            if any(_is_block(b) for b in book.bids):
                clearing = _clear_mip(book, time_limit=mip_time_limit, node_limit=mip_node_limit)
            else:
                clearing = _clear_lp(book)
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
# Divisible unit bids: min-cost flow, on columns
#
# A round of a million orders is a million Python objects. The flow path reads each order's
# fields into NumPy arrays once, works on arrays from the book to the fills, and makes no object
# per order but what the result holds (fills, unfilled reasons). Integers stay int64 (prices,
# quantities, hours and seq are bigint in the database) and become Python ints at the boundary.

_Ints = npt.NDArray[np.int64]
_Mask = npt.NDArray[np.bool_]
_Strs = npt.NDArray[np.object_]

_ID = attrgetter("id")
_SIGNATURE = attrgetter("signature")
_QUANTITY = attrgetter("quantity")
_SEQ = attrgetter("seq")
_HOURS = attrgetter("hours")
_CLS = attrgetter("cls")
_UNITS = attrgetter("units")
_KIND = attrgetter("per_scu", "all_or_none", "same_pool", "min_fill")
_TOTAL_LIMIT = 2**62  # a book's total quantity or units: cumulative sums stay within int64
_REASONS: tuple[Reason, ...] = ("no_compatible_supply", "rationed", "priced_out")


@dataclass(frozen=True, eq=False)
class _FlowBook:
    """A normalized book of divisible unit bids (see `_normalized`) as columns: bids by (−price,
    time, id), asks by (price, time, id); signatures, classes and each signature's accepted
    classes sorted, as indexes."""

    book: Book  # as given
    cls_keys: list[str]
    sigs: list[str]
    arcs: dict[str, tuple[str, ...]]  # signature → accepted classes, as `_normalized` has them
    arc_sig: _Ints  # the (signature, class) pairs, signature by signature
    arc_cls: _Ints
    bids: list[Bid]  # the bids kept, in the order given
    bid_order: _Ints  # normalized order → position in `bids`
    bid_id: _Strs  # the rest in normalized order
    bid_sig: _Ints
    bid_qty: _Ints
    bid_price: _Ints
    bid_time: _Ints  # position in time priority, (seq, id)
    bid_hours: _Ints
    bid_rank: _Ints  # position in id order
    asks: list[Ask]
    ask_order: _Ints
    ask_id: _Strs
    ask_cls: _Ints
    ask_units: _Ints
    ask_price: _Ints
    ask_rank: _Ints

    def normalized(self) -> Book:
        """The same book as `_normalized` gives it (for the certificate)."""
        return Book(
            asks=tuple(map(self.asks.__getitem__, self.ask_order.tolist())),
            bids=tuple(map(self.bids.__getitem__, self.bid_order.tolist())),
            arcs=self.arcs,
            classes={k: self.book.classes[k] for k in self.cls_keys},
        )


def _column(items: Sequence[object], getter: Callable[[object], int]) -> _Ints:
    return np.fromiter(map(getter, items), dtype=np.int64, count=len(items))


def _flow_book(book: Book) -> _FlowBook | None:
    """The book as columns, normalized, if every bid in it is a divisible unit bid; else None.
    Raises ValueError if a bid id or an ask id repeats, or the totals do not fit in 62 bits."""
    bids = list(book.bids)
    qty = _column(bids, _QUANTITY)
    kept = qty > 0
    if not kept.all():
        bids = list(compress(bids, kept.tolist()))
        qty = qty[kept]
    if any(
        scu or aon or same_pool or min_fill > 1
        for scu, aon, same_pool, min_fill in set(map(_KIND, bids))
    ):
        return None
    cls_keys = sorted(book.classes)
    cls_ix = dict(zip(cls_keys, range(len(cls_keys)), strict=True))
    sig_of = list(map(_SIGNATURE, bids))
    sigs = sorted(set(sig_of))
    sig_ix = dict(zip(sigs, range(len(sigs)), strict=True))
    arcs = {s: tuple(sorted({c for c in book.arcs.get(s, ()) if c in cls_ix})) for s in sigs}
    arc_sig = np.array([i for i, s in enumerate(sigs) for _ in arcs[s]], dtype=np.int64)
    arc_cls = np.array([cls_ix[c] for s in sigs for c in arcs[s]], dtype=np.int64)

    bid_ids = list(map(_ID, bids))
    bid_rank = _id_ranks(bid_ids, "bid")
    bid_price = _column(bids, _PRICE)
    bid_time = _positions(_sorting(_column(bids, _SEQ), bid_rank, unique=True))
    bid_order = _sorting(-bid_price, bid_time, unique=True)

    asks = list(book.asks)
    units = _column(asks, _UNITS)
    cls = np.fromiter(map(cls_ix.get, map(_CLS, asks), repeat(-1)), np.int64, len(asks))
    keep = (units > 0) & (cls >= 0)
    if not keep.all():
        asks = list(compress(asks, keep.tolist()))
        units, cls = units[keep], cls[keep]
    ask_ids = list(map(_ID, asks))
    ask_rank = _id_ranks(ask_ids, "ask")
    ask_price = _column(asks, _PRICE)
    ask_time = _positions(_sorting(_column(asks, _SEQ), ask_rank, unique=True))
    ask_order = _sorting(ask_price, ask_time, unique=True)
    if max(_total(qty), _total(units)) >= _TOTAL_LIMIT:  # nowhere near a market's size
        raise ValueError("the book's total quantity or units do not fit in 62 bits")

    bid_sig = np.fromiter(map(sig_ix.__getitem__, sig_of), np.int64, len(bids))
    return _FlowBook(
        book=book,
        cls_keys=cls_keys,
        sigs=sigs,
        arcs=arcs,
        arc_sig=arc_sig,
        arc_cls=arc_cls,
        bids=bids,
        bid_order=bid_order,
        bid_id=np.fromiter(bid_ids, dtype=np.object_, count=len(bids))[bid_order],
        bid_sig=bid_sig[bid_order],
        bid_qty=qty[bid_order],
        bid_price=bid_price[bid_order],
        bid_time=bid_time[bid_order],
        bid_hours=_column(bids, _HOURS)[bid_order],
        bid_rank=bid_rank[bid_order],
        asks=asks,
        ask_order=ask_order,
        ask_id=np.fromiter(ask_ids, dtype=np.object_, count=len(asks))[ask_order],
        ask_cls=cls[ask_order],
        ask_units=units[ask_order],
        ask_price=ask_price[ask_order],
        ask_rank=ask_rank[ask_order],
    )


def _sorting(*keys: _Ints, unique: bool = False) -> _Ints:
    """The stable order of rows by `keys`, the first most significant (`np.lexsort` with the keys
    reversed): where the keys' ranges allow, one int64 key (the row number last, unless the keys
    are `unique` together) and NumPy's quicker unstable sort, which then gives the same order."""
    n = len(keys[0])
    combined = np.zeros(n, dtype=np.int64) if unique else np.arange(n, dtype=np.int64)
    span = 1 if unique else max(n, 1)
    for key in reversed(keys):
        if n == 0:
            break
        low = int(key.min())
        width = int(key.max()) - low + 1
        if span * width >= 2**63:
            return np.lexsort(keys[::-1])
        combined += (key - low) * span
        span *= width
    return np.argsort(combined)


def _positions(order: _Ints) -> _Ints:
    """The inverse permutation: each row's position in `order`."""
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(len(order), dtype=np.int64)
    return out


def _total(values: _Ints) -> int:
    """Σ values (all positive), exact where int64 would wrap."""
    if len(values) and int(values.max()) > (2**63 - 1) // len(values):
        return sum(values.tolist())
    return int(values.sum())


def _id_ranks(ids: list[str], what: str) -> _Ints:
    """Each id's position in Python's string order; ids must be unique.

    ASCII ids without NUL (uuids, the market's) compare as fixed-width bytes, in the same order
    (code points): sorted on their first eight bytes as one integer, then, where those tie, on the
    whole id; several times faster than sorting a million strings in Python."""
    n = len(ids)
    joined = "".join(ids)
    order: _Ints
    if joined.isascii() and "\x00" not in joined:
        lengths = np.fromiter(map(len, ids), np.int64, n)
        width = max(1, int(lengths.max(initial=0)))
        if len(joined) == n * width:  # all the same length
            keys = np.frombuffer(joined.encode("ascii"), dtype=f"S{width}")
        else:
            keys = np.zeros(n, dtype=f"S{width}")
            for length in np.flatnonzero(np.bincount(lengths)).tolist():
                if length:  # an empty id stays all zero bytes
                    rows = np.flatnonzero(lengths == length)
                    chunk = "".join(map(ids.__getitem__, rows.tolist())).encode("ascii")
                    keys[rows] = np.frombuffer(chunk, dtype=f"S{length}")
        head = np.zeros((n, 8), dtype=np.uint8)
        head[:, : min(8, width)] = keys.view(np.uint8).reshape(n, width)[:, :8]
        prefix = head.view(">u8").ravel().astype(np.uint64)
        order = np.argsort(prefix)
        ranked = prefix[order]
        same = ranked[1:] == ranked[:-1]
        unique = True
        if same.any():  # runs of ids that share their first eight bytes: by the whole id
            tied = np.zeros(n, dtype=np.bool_)
            tied[1:] |= same
            tied[:-1] |= same
            at = np.flatnonzero(tied)
            run = np.cumsum(np.concatenate([[True], ~same]))[at]
            order[at] = order[at][np.lexsort((keys[order[at]], run))]
            whole = keys[order[at]]
            unique = not bool(((whole[1:] == whole[:-1]) & (run[1:] == run[:-1])).any())
    else:
        order = np.array(sorted(range(n), key=ids.__getitem__), dtype=np.int64)
        unique = len(set(ids)) == n
    if not unique:
        raise ValueError(f"{what} ids are not unique")
    return _positions(order)


def _clear_flow(fb: _FlowBook) -> Clearing:
    from ortools.graph.python import min_cost_flow

    nb, na, narc = len(fb.bid_id), len(fb.ask_id), len(fb.arc_sig)
    nsig, ncls = len(fb.sigs), len(fb.cls_keys)
    bound = min(int(fb.bid_qty.sum()), int(fb.ask_units.sum()))
    if bound == 0:
        nothing = _FillColumns.empty()
        return _flow_result(fb, nothing, {}, np.zeros(nb, dtype=np.int64), {}, {})

    # Nodes: 0 (buyers' side), 1 (sellers' side), signatures, classes. Arcs: bids, (signature,
    # class) pairs, asks, and the bypass 0 → 1 that balances the flow.
    sig_node, cls_node = 2, 2 + nsig
    one = np.ones(1, dtype=np.int64)
    tails = np.concatenate(
        [np.zeros(nb, dtype=np.int64), sig_node + fb.arc_sig, cls_node + fb.ask_cls, 0 * one]
    )
    heads = np.concatenate(
        [sig_node + fb.bid_sig, cls_node + fb.arc_cls, np.ones(na, dtype=np.int64), one]
    )
    caps = np.concatenate(
        [fb.bid_qty, np.full(narc, bound, dtype=np.int64), fb.ask_units, bound * one]
    )
    costs = np.concatenate([-fb.bid_price, np.zeros(narc, dtype=np.int64), fb.ask_price, 0 * one])
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    solver.set_nodes_supplies(np.array([0, 1]), np.array([bound, -bound]))
    status = solver.solve()
    if status != solver.OPTIMAL:  # pragma: no cover - a balanced network with a bypass is feasible
        raise RuntimeError(f"min-cost flow failed with status {status}")
    flows = np.asarray(solver.flows(arcs), dtype=np.int64)
    arc_flow = flows[nb : nb + narc]
    sig_total = np.zeros(nsig, dtype=np.int64)
    np.add.at(sig_total, fb.bid_sig, flows[:nb])
    cls_total = np.zeros(ncls, dtype=np.int64)
    np.add.at(cls_total, fb.ask_cls, flows[nb + narc : nb + narc + na])

    bid_fill = _ration_columns(fb.bid_sig, fb.bid_price, fb.bid_qty, sig_total)
    ask_fill = _ration_columns(fb.ask_cls, fb.ask_price, fb.ask_units, cls_total)
    low, high = _equilibrium_bounds(fb, bid_fill, ask_fill, arc_flow)
    prices: dict[str, int] = {}
    rounded = False  # an exact midpoint is an average of two equilibria, hence one itself
    for c in fb.cls_keys:
        lo, hi = low.get(c), high.get(c)
        if lo is not None and hi is not None:
            prices[c] = _half_even_mid(lo, hi)
            rounded |= (lo + hi) % 2 == 1
        elif hi is not None:
            prices[c] = hi
        elif lo is not None:
            prices[c] = lo
    fills = _disaggregate(fb, bid_fill, ask_fill, arc_flow, prices)
    clearing = _flow_result(fb, fills, prices, bid_fill, low, high)
    if rounded and _verify(fb.normalized(), clearing):
        fallback = {c: low.get(c, p) for c, p in prices.items()}
        clearing = _flow_result(
            fb,
            fills,
            fallback,
            bid_fill,
            low,
            high,
            notes=("midpoint failed the certificate after rounding: minimum prices used",),
        )
    return clearing


def _ration_columns(group: _Ints, price: _Ints, qty: _Ints, totals: _Ints) -> _Ints:
    """`_ration` on columns: items in priority order ((−price, time, id) for bids, (price, time,
    id) for asks), each group's total shared best price first; at the marginal price level pro
    rata to quantity, the remainder by time priority (the order within the level)."""
    n = len(group)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    order = _sorting(group)  # by group, priority order within
    g, p, q = group[order], price[order], qty[order]
    group_start = np.ones(n, dtype=np.bool_)
    group_start[1:] = g[1:] != g[:-1]
    level_start = group_start.copy()
    level_start[1:] |= p[1:] != p[:-1]
    level = np.cumsum(level_start) - 1
    first_of_level = np.flatnonzero(level_start)
    before = np.cumsum(q) - q  # quantity ahead of each item overall
    before -= before[np.flatnonzero(group_start)][np.cumsum(group_start) - 1]  # … in its group
    ahead = before[first_of_level][level]  # quantity at better price levels of the group
    want = np.add.reduceat(q, first_of_level)[level]
    total = totals[g]
    fill = np.where(ahead + want <= total, q, 0)
    marginal = np.flatnonzero((ahead < total) & (ahead + want > total))
    if len(marginal):
        left = total[marginal] - ahead[marginal]
        # left × q can pass 64 bits: Python ints, for the few items at a marginal level
        share = np.array(
            [
                x * y // w
                for x, y, w in zip(
                    left.tolist(), q[marginal].tolist(), want[marginal].tolist(), strict=True
                )
            ],
            dtype=np.int64,
        )
        run_start = np.ones(len(marginal), dtype=np.bool_)
        run_start[1:] = level[marginal][1:] != level[marginal][:-1]
        run = np.cumsum(run_start) - 1
        firsts = np.flatnonzero(run_start)
        rest = left - np.add.reduceat(share, firsts)[run]
        room = q[marginal] - share
        room_ahead = np.cumsum(room) - room
        room_ahead -= room_ahead[firsts][run]
        fill[marginal] = share + np.clip(rest - room_ahead, 0, room)
    out[order] = fill
    return out


def _first_per_group(group: _Ints, value: _Ints, where: _Mask) -> tuple[_Ints, _Ints]:
    """(groups, value of the first item of each where `where` holds)."""
    rows = np.flatnonzero(where)
    groups, first = np.unique(group[rows], return_index=True)
    return groups, value[rows[first]]


def _last_per_group(group: _Ints, value: _Ints, where: _Mask) -> tuple[_Ints, _Ints]:
    rows = np.flatnonzero(where)[::-1]
    groups, first = np.unique(group[rows], return_index=True)
    return groups, value[rows[first]]


def _equilibrium_bounds(
    fb: _FlowBook, bid_fill: _Ints, ask_fill: _Ints, arc_flow: _Ints
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
    nsig = len(fb.sigs)
    sig_node, cls_node = 2, 2 + nsig
    # Bids come by price, highest first; asks by price, lowest first.
    room_sig, room_value = _first_per_group(fb.bid_sig, fb.bid_price, bid_fill < fb.bid_qty)
    filled_sig, filled_value = _last_per_group(fb.bid_sig, fb.bid_price, bid_fill > 0)
    room_cls, room_price = _first_per_group(fb.ask_cls, fb.ask_price, ask_fill < fb.ask_units)
    sold_cls, sold_price = _last_per_group(fb.ask_cls, fb.ask_price, ask_fill > 0)
    bought = np.flatnonzero(arc_flow > 0)
    tail = np.concatenate(
        [
            np.array([0, 1], dtype=np.int64),
            np.zeros(len(room_sig), dtype=np.int64),
            sig_node + filled_sig,
            cls_node + room_cls,
            np.ones(len(sold_cls), dtype=np.int64),
            sig_node + fb.arc_sig,
            cls_node + fb.arc_cls[bought],
        ]
    )
    head = np.concatenate(
        [
            np.array([1, 0], dtype=np.int64),
            sig_node + room_sig,
            np.zeros(len(filled_sig), dtype=np.int64),
            np.ones(len(room_cls), dtype=np.int64),
            cls_node + sold_cls,
            cls_node + fb.arc_cls,
            sig_node + fb.arc_sig[bought],
        ]
    )
    cost = np.concatenate(
        [
            np.zeros(2, dtype=np.int64),
            -room_value,
            filled_value,
            room_price,
            -sold_price,
            np.zeros(len(fb.arc_sig) + len(bought), dtype=np.int64),
        ]
    ).astype(np.float64)
    n = 2 + nsig + len(fb.cls_keys)
    dist_from_s = _bellman_ford(n, tail, head, cost, source=0)
    dist_to_t = _bellman_ford(n, head, tail, cost, source=1)  # reversed graph: distances to T
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for i in np.flatnonzero(np.bincount(fb.ask_cls, minlength=1)).tolist():  # classes with asks
        c, node = fb.cls_keys[i], cls_node + i
        if math.isfinite(dist_from_s[node]):
            low[c] = round(-dist_from_s[node])
        if math.isfinite(dist_to_t[node]):
            high[c] = round(dist_to_t[node])
    return low, high


@dataclass(frozen=True, eq=False)
class _FillColumns:
    """Fills as columns: bid and ask (normalized positions), class index, units."""

    bid: _Ints
    ask: _Ints
    cls: _Ints
    units: _Ints

    @classmethod
    def empty(cls) -> _FillColumns:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, none)


def _disaggregate(
    fb: _FlowBook, bid_fill: _Ints, ask_fill: _Ints, arc_flow: _Ints, prices: Mapping[str, int]
) -> _FillColumns:
    """Turn per-bid, per-arc and per-ask totals into fills (bid, ask, units), deterministically:
    a signature's bids take its classes cheapest first, in time priority; a class's inflow takes
    its asks in (price, time, id) order. A class meets its buyers signature by signature, in the
    order of each signature's earliest filled bid, and each signature's bids in time priority."""
    filled = np.flatnonzero(bid_fill > 0)
    sig_first = np.full(len(fb.sigs), len(fb.bid_time), dtype=np.int64)  # earliest filled bid
    np.minimum.at(sig_first, fb.bid_sig[filled], fb.bid_time[filled])
    # Bids meet classes signature by signature: bids in time priority, classes cheapest first.
    buyers = filled[_sorting(fb.bid_sig[filled], fb.bid_time[filled], unique=True)]
    class_price = np.array([prices.get(c, 0) for c in fb.cls_keys], dtype=np.int64)
    used = np.flatnonzero(arc_flow > 0)
    used_cls = fb.arc_cls[used]
    used = used[_sorting(fb.arc_sig[used], class_price[used_cls], used_cls, unique=True)]
    b, a, units = _overlaps(bid_fill[buyers], arc_flow[used])
    piece_bid, piece_cls = buyers[b], fb.arc_cls[used[a]]
    # Classes meet their asks: pieces class by class, asks in (price, time, id) order.
    order = _sorting(
        piece_cls, sig_first[fb.bid_sig[piece_bid]], fb.bid_time[piece_bid], unique=True
    )
    sellers = np.flatnonzero(ask_fill > 0)
    sellers = sellers[_sorting(fb.ask_cls[sellers])]
    p, s, units = _overlaps(units[order], ask_fill[sellers])
    return _FillColumns(piece_bid[order][p], sellers[s], piece_cls[order][p], units)


def _overlaps(left: _Ints, right: _Ints) -> tuple[_Ints, _Ints, _Ints]:
    """Two rows of pieces with the same total, laid end to end on one line of units: where a
    piece of `left` meets a piece of `right`, (its index in left, in right, units), in order."""
    if len(left) == len(right) == 0:
        none = np.zeros(0, dtype=np.int64)
        return none, none, none
    left_end, right_end = np.cumsum(left), np.cumsum(right)
    if len(left) == 0 or len(right) == 0 or left_end[-1] != right_end[-1]:  # pragma: no cover
        raise RuntimeError("flows do not balance")  # conservation of flow: it cannot happen
    ends = np.concatenate([left_end, right_end])
    ends.sort()
    ends = ends[np.concatenate([[True], ends[1:] != ends[:-1]])]
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1]])
    return (
        np.searchsorted(left_end, starts, side="right"),
        np.searchsorted(right_end, starts, side="right"),
        ends - starts,
    )


def _flow_result(
    fb: _FlowBook,
    fills: _FillColumns,
    prices: Mapping[str, int],
    bid_fill: _Ints,
    low: Mapping[str, int],
    high: Mapping[str, int],
    *,
    notes: tuple[str, ...] = (),
) -> Clearing:
    """`_result` on columns (for unit bids, a fill's units are the bid's own quantity)."""
    ncls = len(fb.cls_keys)
    price = np.array([prices.get(c, 0) for c in fb.cls_keys], dtype=np.int64)
    hours = fb.bid_hours[fills.bid]
    gain = fb.bid_price[fills.bid] - fb.ask_price[fills.ask]
    units = fills.units
    if _product_bound(gain, units, hours) >= 2**63:  # exact: Python ints
        hours, gain, units = hours.astype(object), gain.astype(object), units.astype(object)
    units_by_cls = np.zeros(ncls, dtype=units.dtype)
    np.add.at(units_by_cls, fills.cls, units)
    hours_by_cls = np.zeros(ncls, dtype=units.dtype)
    np.add.at(hours_by_cls, fills.cls, units * hours)
    has_asks = np.zeros(ncls, dtype=np.bool_)
    has_asks[fb.ask_cls] = True
    table = tuple(
        ClassPrice(
            cls=c,
            price=prices.get(c) if units_by_cls[i] else None,
            low=low.get(c),
            high=high.get(c),
            units=int(units_by_cls[i]),
            unit_hours=int(hours_by_cls[i]),
        )
        for i, c in enumerate(fb.cls_keys)
        if has_asks[i]
    )
    order = _sorting(fb.bid_rank[fills.bid], fb.ask_rank[fills.ask], unique=True)  # by ids
    return Clearing(
        mechanism="flow",
        fills=_fill_objects(
            fb.bid_id[fills.bid[order]].tolist(),
            fb.ask_id[fills.ask[order]].tolist(),
            np.array(fb.cls_keys, dtype=np.object_)[fills.cls[order]].tolist(),
            fills.units[order].tolist(),
            price[fills.cls[order]].tolist(),
        ),
        prices=table,
        unfilled=_flow_reasons(fb, bid_fill),
        welfare=int((gain * units).sum()),
        welfare_total=int((gain * units * hours).sum()),
        volume_units=int(units_by_cls.sum()),
        volume_unit_hours=int(hours_by_cls.sum()),
        notes=notes,
    )


def _product_bound(*factors: _Ints) -> int:
    """An upper bound of |Σ Π factors| over rows (Python ints: it may pass 64 bits)."""
    if len(factors[0]) == 0:
        return 0
    bound = len(factors[0])
    for f in factors:
        bound *= max(1, abs(int(f.min())), abs(int(f.max())))
    return bound


def _fill_objects(
    bid: list[str], ask: list[str], cls: list[str], units: list[int], price: list[int]
) -> tuple[Fill, ...]:
    """Fills made in C loops: each a bare `Fill` whose slots are set through their descriptors,
    as the dataclass's `__init__` sets them (through `object.__setattr__`, frozen), without a Python
    frame per fill; half the time of calling `Fill` at a million orders."""
    made: list[Fill] = list(map(object.__new__, repeat(Fill, len(units))))
    for name, values in (
        ("bid", bid),
        ("ask", ask),
        ("cls", cls),
        ("units", units),
        ("price", price),
    ):
        deque(map(getattr(Fill, name).__set__, made, values), maxlen=0)
    return tuple(made)


def _flow_reasons(fb: _FlowBook, bid_fill: _Ints) -> tuple[tuple[str, Reason], ...]:
    """`_reasons` on columns: bids not completely filled, by id, and why."""
    short = np.flatnonzero(bid_fill < fb.bid_qty)
    short = short[np.argsort(fb.bid_rank[short])]
    supplied = np.zeros(len(fb.cls_keys), dtype=np.bool_)
    supplied[fb.ask_cls] = True
    reachable = np.zeros(len(fb.sigs), dtype=np.bool_)
    reachable[fb.arc_sig[supplied[fb.arc_cls]]] = True
    sig = fb.bid_sig[short]
    why = np.where(~reachable[sig], 0, np.where(bid_fill[short] > 0, 1, 2))
    return tuple(
        zip(
            fb.bid_id[short].tolist(),
            map(_REASONS.__getitem__, why.tolist()),
            strict=True,
        )
    )


_Item = TypeVar("_Item", Bid, Ask)


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


def _clear_mip(book: Book, *, time_limit: float | None, node_limit: int = 0) -> Clearing:
    from matching.highs import solve

    return solve(book, integer=True, time_limit=time_limit, node_limit=node_limit)


def _mcafee(book: Book, clearing: Clearing) -> Clearing:
    from matching.reduction import trade_reduction

    result: Clearing = trade_reduction(book, clearing)
    return result
