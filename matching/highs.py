"""LP and MIP clearing with HiGHS, for books the min-cost flow cannot express.

Columns: x_b (each bid's fill, in its own quantity: units, or SCU·10⁻⁴), z_gc (units a signature
group takes from a class), y_k (units an ask sells); for blocks a binary δ_b (accepted or not), and
for same-pool bids z_bk (units from one ask) and a binary u_bP (the pool chosen). Rows: each group
balances its bids against its classes (an SCU group counts a unit of class c as scu_c), each class
balances what groups take against what its asks sell (**its dual is the class's reference price**),
and the block rows (x_b = q_b·δ_b for all-or-none; m_b·δ_b ≤ x_b ≤ q_b·δ_b for a minimum fill;
Σ_P u_bP ≤ 1 and Σ_{k∈P} z_bk ≤ q_b·u_bP for same-pool). An SCU block is a group of its own:
whole units of several sizes shared by several bids need not add up to each bid's quantity.

Presolve is off: on this model HiGHS's presolve costs about ten times the solve.

Integer mode (blocks present): the MIP (whole units for blocks and SCU groups) runs under a time
limit and its best incumbent is kept; the block decisions (δ, u) are then fixed and the LP is solved
for reference prices. European day-ahead rule: an accepted block that would pay more than its limit
at those prices, or at the prices settling arrives at (below), is rejected (the one with the largest
excess first) and the round settled again without it, until none is; a profitable block may thus be
rejected, but an accepted one is never charged above its limit.

Whole units: the MIP's own (less a rejected block's, which settling hands out); on the LP path, the
LP's rounded down. Neither is what the LP's duals price, so `_Settlement` adjusts units and prices,
class by class, until the certificate (`engine.verify`) holds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

import highspy
import numpy as np

from matching.engine import (
    SCU_SCALE,
    Ask,
    Bid,
    Book,
    Class,
    Clearing,
    Fill,
    Reason,
    _is_block,
    _merged,
    _ration,
    _result,
    bid_units,
    pair,
    unit_value,
    verify,
)

EPS = 1e-6


@dataclass
class _Model:
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    cols: list[dict[int, float]] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)

    def col(self, cost: float, lower: float, upper: float, *, integer: bool = False) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        self.cols.append({})
        return len(self.cost) - 1

    def row(self, lower: float, upper: float) -> int:
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        return len(self.row_lower) - 1

    def put(self, row: int, col: int, value: float) -> None:
        self.cols[col][row] = self.cols[col].get(row, 0.0) + value


@dataclass
class _Layout:
    model: _Model
    x: dict[str, int]  # bid id → column
    delta: dict[str, int]  # block bid id → binary column
    z: dict[tuple[str, str], int]  # (group, class) → column
    zk: dict[tuple[str, str], int]  # (same-pool bid, ask id) → column
    u: dict[tuple[str, str], int]  # (same-pool bid, pool) → binary column
    y: dict[str, int]  # ask id → column
    class_row: dict[str, int]
    groups: dict[str, list[Bid]]  # group key → bids
    group_scu: dict[str, bool]
    group_sig: dict[str, str]


def _group_of(bid: Bid) -> str:
    if bid.per_scu and _is_block(bid):  # a group of its own (see the module docstring)
        return f"{bid.signature}\x00scu\x00{bid.id}"
    return f"{bid.signature}\x00{'scu' if bid.per_scu else 'units'}"


def _layout(book: Book, *, integer: bool, fixed: Mapping[int, float]) -> _Layout:
    m = _Model()
    classes = book.classes
    asks_by_cls: dict[str, list[Ask]] = defaultdict(list)
    for a in book.asks:
        asks_by_cls[a.cls].append(a)
    class_row = {c: m.row(0.0, 0.0) for c in classes if asks_by_cls.get(c)}
    y = {}
    for a in book.asks:
        y[a.id] = m.col(-float(a.price), 0.0, float(a.units))
        m.put(class_row[a.cls], y[a.id], -1.0)

    x: dict[str, int] = {}
    delta: dict[str, int] = {}
    groups: dict[str, list[Bid]] = defaultdict(list)
    same_pool: list[Bid] = []
    for b in book.bids:
        if b.same_pool:
            same_pool.append(b)
        else:
            groups[_group_of(b)].append(b)
    group_scu = {g: members[0].per_scu for g, members in groups.items()}
    group_sig = {g: members[0].signature for g, members in groups.items()}

    def value_per_quantity(b: Bid) -> float:
        return b.price / SCU_SCALE if b.per_scu else float(b.price)

    def add_bid(b: Bid) -> int:
        # A unit block's fill is whole in the MIP, so its group's whole units cover it exactly (a
        # same-pool bid's is the sum of its whole draws already).
        whole = integer and _is_block(b) and not (b.per_scu or b.same_pool)
        col = m.col(value_per_quantity(b), 0.0, float(b.quantity), integer=whole)
        x[b.id] = col
        if _is_block(b):
            d = m.col(0.0, 0.0, 1.0, integer=integer)
            delta[b.id] = d
            if b.all_or_none:
                r = m.row(0.0, 0.0)  # x − q·δ = 0
                m.put(r, col, 1.0)
                m.put(r, d, -float(b.quantity))
            else:
                hi = m.row(-math.inf, 0.0)  # x − q·δ ≤ 0
                m.put(hi, col, 1.0)
                m.put(hi, d, -float(b.quantity))
                lo = m.row(0.0, math.inf)  # x − min·δ ≥ 0
                m.put(lo, col, 1.0)
                m.put(lo, d, -float(b.min_fill))
        return col

    z: dict[tuple[str, str], int] = {}
    for g, members in groups.items():
        r = m.row(0.0, 0.0)  # Σ x_b − Σ w_c z_gc = 0
        for b in members:
            m.put(r, add_bid(b), 1.0)
        # Whole units from the MIP where rounding down could break a block (an SCU group's units
        # or a unit block's); divisible unit bids are rounded and settled as on the LP path.
        whole = integer and (group_scu[g] or any(_is_block(b) for b in members))
        for c in book.arcs.get(group_sig[g], ()):
            if c not in class_row:
                continue
            col = m.col(0.0, 0.0, math.inf, integer=whole)
            z[(g, c)] = col
            m.put(r, col, -float(classes[c].scu if group_scu[g] else 1))
            m.put(class_row[c], col, 1.0)

    zk: dict[tuple[str, str], int] = {}
    u: dict[tuple[str, str], int] = {}
    ask_rows: dict[str, int] = {}
    for sp in same_pool:
        r = m.row(0.0, 0.0)  # x_b − Σ w z_bk = 0
        m.put(r, add_bid(sp), 1.0)
        pools: dict[str, list[Ask]] = defaultdict(list)
        for c in book.arcs.get(sp.signature, ()):
            for a in asks_by_cls.get(c, ()):
                pools[a.pool].append(a)
        one = m.row(-math.inf, 1.0)  # Σ_P u_bP ≤ 1
        for pool, pool_asks in sorted(pools.items()):
            weight = [classes[a.cls].scu if sp.per_scu else 1 for a in pool_asks]
            room = sum(a.units * w for a, w in zip(pool_asks, weight, strict=True))
            if room < sp.min_fill:
                continue  # the pool cannot hold the bid's minimum: no column for it
            choose = m.col(0.0, 0.0, 1.0, integer=integer)
            u[(sp.id, pool)] = choose
            m.put(one, choose, 1.0)
            cap = m.row(-math.inf, 0.0)  # Σ_{k∈P} z_bk − units_max·u_bP ≤ 0
            units_max = 0
            for a, w in zip(pool_asks, weight, strict=True):
                col = m.col(0.0, 0.0, float(a.units), integer=integer)
                zk[(sp.id, a.id)] = col
                m.put(r, col, -float(w))
                m.put(class_row[a.cls], col, 1.0)
                m.put(cap, col, 1.0)
                if a.id not in ask_rows:
                    ask_rows[a.id] = m.row(-math.inf, 0.0)  # Σ_b z_bk − y_k ≤ 0
                    m.put(ask_rows[a.id], y[a.id], -1.0)
                m.put(ask_rows[a.id], col, 1.0)
                units_max += a.units
            # The bid never takes more than its quantity: the tighter bound helps branch and bound.
            m.put(cap, choose, -float(units_max if sp.per_scu else min(units_max, sp.quantity)))
    for col, value in fixed.items():
        m.lower[col] = m.upper[col] = value
    return _Layout(m, x, delta, z, zk, u, y, class_row, groups, group_scu, group_sig)


def _run(
    model: _Model, *, time_limit: float | None, node_limit: int = 0
) -> tuple[list[float], list[float], bool]:
    """Solve; return column values, row duals (empty for a MIP) and whether it proved optimality."""
    lp = highspy.HighsLp()
    n = len(model.cost)
    lp.num_col_ = n
    lp.num_row_ = len(model.row_lower)
    lp.col_cost_ = np.array(model.cost, dtype=np.float64)
    lp.col_lower_ = np.array(model.lower, dtype=np.float64)
    lp.col_upper_ = np.array(model.upper, dtype=np.float64)
    lp.row_lower_ = np.array(model.row_lower, dtype=np.float64)
    lp.row_upper_ = np.array(model.row_upper, dtype=np.float64)
    lp.sense_ = highspy.ObjSense.kMaximize
    starts = [0]
    index: list[int] = []
    values: list[float] = []
    for col in model.cols:
        for r, v in sorted(col.items()):
            index.append(r)
            values.append(v)
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(values, dtype=np.float64)
    mip = any(model.integer)
    if mip:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in model.integer
        ]
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("random_seed", 0)
    if mip:
        h.setOptionValue("mip_rel_gap", 1e-9)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    if mip and node_limit:
        h.setOptionValue("mip_max_nodes", int(node_limit))
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    solution = h.getSolution()
    optimal = status == highspy.HighsModelStatus.kOptimal
    if not solution.value_valid:  # pragma: no cover - x = 0 is always feasible
        raise RuntimeError(f"HiGHS found no solution: {h.modelStatusToString(status)}")
    duals = list(solution.row_dual) if (not mip and solution.dual_valid) else []
    return list(solution.col_value), duals, optimal


def solve(book: Book, *, integer: bool, time_limit: float | None, node_limit: int = 0) -> Clearing:
    optimal = True
    rejected: dict[str, Reason] = {}
    fixed: dict[int, float] = {}
    notes: list[str] = []
    whole: tuple[_Layout, list[float]] | None = None  # the MIP's whole units
    if integer:
        layout = _layout(book, integer=True, fixed={})
        values, _, optimal = _run(layout.model, time_limit=time_limit, node_limit=node_limit)
        if not optimal:
            notes.append("MIP time or node limit reached: best incumbent kept")
        for cols in (layout.delta, layout.u):
            for col in cols.values():
                fixed[col] = float(round(values[col]))
        whole = (layout, values)
    # Fix block decisions; the LP gives reference prices; whole units are settled at class prices;
    # a block charged above its limit on the way is rejected and the LP re-solved without it.
    while True:
        layout = _layout(book, integer=False, fixed=fixed)
        values, duals, lp_optimal = _run(layout.model, time_limit=None)
        reference = {c: _tick(duals[r]) for c, r in layout.class_row.items()}
        worst = _paradoxically_accepted(book, layout, values, reference)
        if worst is None:
            source, solution = whole or (layout, values)
            settlement = _Settlement(book, _rounded(book, source, solution, reference), reference)
            worst = settlement.run()
        if worst is None:
            break
        fixed[layout.delta[worst]] = 0.0
        for (bid, _pool), col in layout.u.items():
            if bid == worst:
                fixed[col] = 0.0
        if whole is not None:  # the MIP's units without the block's: settling hands those out
            whole = (whole[0], [fixed.get(col, v) for col, v in enumerate(whole[1])])
        rejected[worst] = "all_or_none_unsatisfiable"
        notes.append(f"block {worst} rejected: its limit is below the clearing price")
    prices = settlement.prices()
    fills = settlement.fills(prices)
    filled: dict[str, int] = defaultdict(int)
    by_id = {b.id: b for b in book.bids}
    for f in fills:
        filled[f.bid] += bid_units(by_id[f.bid], f.units, book.classes[f.cls])
    return _result(
        book,
        "mip" if integer else "lp",
        fills,
        prices,
        filled,
        optimal=optimal and lp_optimal,
        notes=tuple(notes),
        reasons=rejected,
    )


def _quantity(b: Bid) -> int:
    return b.quantity


def _tick(value: float) -> int:
    """A dual value rounded half-even to a whole tick."""
    return round(value)


def _paradoxically_accepted(
    book: Book, layout: _Layout, values: Sequence[float], prices: Mapping[str, int]
) -> str | None:
    """The accepted block with the largest excess of price over its value, if any."""
    worst: tuple[float, str] | None = None
    by_id = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}
    used: dict[str, set[str]] = defaultdict(set)  # group or same-pool bid → classes it buys
    for (g, c), col in layout.z.items():
        if values[col] > EPS:
            used[g].add(c)
    for (bid_id, ask_id), col in layout.zk.items():
        if values[col] > EPS:
            used[bid_id].add(asks[ask_id].cls)
    for bid_id, d in layout.delta.items():
        if values[d] < 0.5:
            continue
        b = by_id[bid_id]
        for c in sorted(used[bid_id if b.same_pool else _group_of(b)]):
            num, den = unit_value(b, book.classes[c])
            excess = prices[c] - num / den
            if excess > EPS and (worst is None or (excess, bid_id) > worst):
                worst = (excess, bid_id)
    return None if worst is None else worst[1]


@dataclass
class _Allocation:
    """Whole units: per class, what each bid buys through its group (insertion order is the order
    bids meet asks), and what same-pool bids buy from named asks."""

    pieces: dict[str, dict[str, int]]  # class → bid id → units
    direct: list[tuple[Bid, Ask, int]]


def _rounded(
    book: Book, layout: _Layout, values: Sequence[float], prices: Mapping[str, int]
) -> _Allocation:
    """Whole units from a solution (the MIP's are whole already; the LP's are rounded down)."""
    classes = book.classes
    asks = {a.id: a for a in book.asks}
    by_id = {b.id: b for b in book.bids}
    pieces: dict[str, dict[str, int]] = defaultdict(dict)

    def add(c: str, b: Bid, units: int) -> None:
        pieces[c][b.id] = pieces[c].get(b.id, 0) + units

    direct: list[tuple[Bid, Ask, int]] = []
    # Same-pool bids draw from named asks.
    for (bid_id, ask_id), col in sorted(layout.zk.items()):
        units = math.floor(values[col] + EPS)
        if units and values[layout.delta[bid_id]] > 0.5:
            direct.append((by_id[bid_id], asks[ask_id], units))
    # Groups: whole units per class, shared among the group's bids.
    rooms: dict[str, dict[str, int]] = defaultdict(dict)
    for (g, c), col in layout.z.items():
        if values[col] > EPS:
            rooms[g][c] = math.floor(values[col] + EPS)
    for g, members in layout.groups.items():
        room = rooms[g]
        # Cheapest first: per unit, or per SCU for an SCU group.
        scale = {c: classes[c].scu if layout.group_scu[g] else 1 for c in room}
        order = sorted(room, key=lambda c: (prices.get(c, 0) / scale[c], c))
        blocks = [b for b in members if b.id in layout.delta and values[layout.delta[b.id]] > 0.5]
        divisible = [b for b in members if b.id not in layout.delta]
        if not layout.group_scu[g]:
            total = sum(room.values())
            fixed = {b.id: round(values[layout.x[b.id]]) for b in blocks}
            rest = total - sum(fixed.values())
            share = _ration(divisible, key=lambda b: g, totals={g: max(rest, 0)}, qty=_quantity)
            wants = [(b, fixed[b.id]) for b in blocks] + [
                (b, share.get(b.id, 0)) for b in sorted(divisible, key=lambda b: (b.seq, b.id))
            ]
            it = iter(order)
            current = next(it, None)
            for b, need in wants:
                while need and current is not None:
                    take = min(need, room[current])
                    if take:
                        add(current, b, take)
                    need -= take
                    room[current] -= take
                    if room[current] == 0:
                        current = next(it, None)
        else:
            # SCU: whole units, blocks first, then by (price, time, id); a bid takes a unit only if
            # it still needs at least that unit's SCU.
            for b in blocks + divisible:
                need = b.quantity
                taken: list[tuple[str, int]] = []
                for c in order:
                    w = classes[c].scu
                    take = min(room[c], need // w)
                    if take:
                        taken.append((c, take))
                        need -= take * w
                got = b.quantity - need
                complete = need < max((classes[c].scu for c in order), default=1)
                if (b.all_or_none and not complete) or (0 < got < b.min_fill):
                    continue
                for c, take in taken:
                    room[c] -= take
                    add(c, b, take)
    return _Allocation(dict(pieces), direct)


class _Settlement:
    """Whole units and one price per class that meet the certificate (`engine.verify`).

    The LP's duals price the LP's own (fractional) solution. Whole units differ from it, and its
    duals need not be one price a class's every trader accepts: units rounded off stay unsold below
    the price while a bid at the price has room; a bid that lost a fraction of a unit has room again
    and values a class with units spare above its price; a same-pool bid buys through its ask's row,
    so the class row's dual can sit below the ask it bought. The certificate's conditions bind each
    class on its own, so prices are set per class: each traded class starts at its LP price, held
    within [dearest ask sold, lowest value of a bid that bought], then, until nothing changes,

    1. an accepted block that values a class it bought below the class price is rejected (European
       rule: `run` returns it, and the caller settles the round again without it);
    2. a divisible bid that values a class below its price gives up its units there (and the rest
       of its units if that leaves it below its minimum fill);
    3. divisible bids with room buy the units left unsold at or below the class price, best bid
       first ((price, time, id)), cheapest class first: each such trade adds welfare;
    4. a traded class with units spare whose price is below the value (on the tick grid) of a
       divisible bid with room for one of its units is raised, to the cheapest unsold ask (where 3
       lets the bid buy) or to that value, whichever is lower.

    It ends: prices only rise; a bid priced out of a class cannot buy there again at that price or
    any higher one; between those events units are only added, and supply is finite. When it ends,
    every condition holds: no filled bid is priced out (2), asks sold are at or below the price (the
    start, then 3 sells only those), no divisible bid with room values a class with units spare
    above its price (4), and no ask is unsold below the price while such a bid would pay it (3).
    """

    def __init__(self, book: Book, allocation: _Allocation, reference: Mapping[str, int]) -> None:
        self.book = book
        self.classes = book.classes
        self.bids = {b.id: b for b in book.bids}
        self.pieces: dict[str, dict[str, int]] = defaultdict(dict, allocation.pieces)
        self.direct = allocation.direct
        self.by_signature: dict[str, list[Bid]] = defaultdict(list)
        for b in book.bids:  # sorted by price, highest first
            if not _is_block(b):
                self.by_signature[b.signature].append(b)
        self.accepting: dict[str, list[str]] = defaultdict(list)
        for sig, accepted in book.arcs.items():
            for c in accepted:
                self.accepting[c].append(sig)
        drawn: dict[str, int] = defaultdict(int)
        self.got: dict[str, int] = defaultdict(int)  # in each bid's own quantity unit
        self.direct_units: dict[str, int] = defaultdict(int)
        self.direct_dearest: dict[str, int] = {}
        for b, a, units in self.direct:
            drawn[a.id] += units
            self.got[b.id] += units * self._weight(b, a.cls)
            self.direct_units[a.cls] += units
            self.direct_dearest[a.cls] = max(self.direct_dearest.get(a.cls, a.price), a.price)
        # Each class's units left after the same-pool draws, cheapest first (the order the class's
        # group units are rationed over its asks).
        self.free: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for a in book.asks:  # sorted by (price, time, id)
            if a.units > drawn[a.id]:
                self.free[a.cls].append((a.price, a.units - drawn[a.id]))
        for c, chunk in self.pieces.items():
            for bid_id, units in chunk.items():
                self.got[bid_id] += units * self._weight(self.bids[bid_id], c)
        self.price: dict[str, int] = {}
        for c, p in sorted(reference.items()):
            if self._traded(c):
                p = max(min(p, self._lowest_value(c)), self._dearest_sold(c))
            self.price[c] = p  # an untraded class keeps its LP price for units handed out (3)

    def _weight(self, b: Bid, c: str) -> int:
        return self.classes[c].scu if b.per_scu else 1

    def _total(self, c: str) -> int:
        return sum(self.pieces[c].values()) if c in self.pieces else 0

    def _traded(self, c: str) -> bool:
        return self._total(c) > 0 or self.direct_units.get(c, 0) > 0

    def _dearest_sold(self, c: str) -> int:
        dearest = self.direct_dearest.get(c, 0)
        left = self._total(c)
        for price, units in self.free.get(c, ()):
            if left <= 0:
                break
            dearest = max(dearest, price)
            left -= units
        if left > 0:  # pragma: no cover - the LP and MIP never take more than a class has
            raise RuntimeError(f"class {c} over-allocated by {left} units")
        return dearest

    def _buyers(self, c: str) -> Iterator[Bid]:
        yield from (self.bids[bid_id] for bid_id, units in self.pieces[c].items() if units)
        yield from (b for b, a, units in self.direct if a.cls == c and units)

    def _lowest_value(self, c: str) -> int:
        """The lowest value (on the tick grid) of a bid that bought in the class."""
        return min(_floor_value(b, self.classes[c]) for b in self._buyers(c))

    def _room(self, b: Bid) -> int:
        return b.quantity - self.got[b.id]

    def run(self) -> str | None:
        """Settle; return a block to reject, or None when done."""
        for _ in range(4 * (len(self.bids) + 1) * (len(self.price) + 1)):  # far more than needed
            worst = self._paradoxically_accepted()
            if worst is not None:
                return worst
            changed = self._drop_priced_out()
            changed |= self._hand_out()
            changed |= self._raise()
            if not changed:
                return None
        raise RuntimeError("settling the round's prices did not converge")  # pragma: no cover

    def _paradoxically_accepted(self) -> str | None:
        """The accepted block with the largest excess of its class price over its value, if any."""
        worst: tuple[Fraction, str] | None = None
        for c in sorted(self.price):
            if not self._traded(c):
                continue
            for b in self._buyers(c):
                if not _is_block(b):
                    continue
                num, den = unit_value(b, self.classes[c])
                excess = Fraction(self.price[c] * den - num, den)
                if excess > 0 and (worst is None or (excess, b.id) > worst):
                    worst = (excess, b.id)
        return None if worst is None else worst[1]

    def _drop_priced_out(self) -> bool:
        out: set[str] = set()
        for c, chunk in sorted(self.pieces.items()):
            p = self.price[c]
            for bid_id in [i for i in chunk if not _is_block(self.bids[i])]:
                b = self.bids[bid_id]
                num, den = unit_value(b, self.classes[c])
                if num < p * den:
                    self.got[bid_id] -= chunk.pop(bid_id) * self._weight(b, c)
                    out.add(bid_id)
        for bid_id in sorted(out):  # what is left below the bid's minimum goes too
            b = self.bids[bid_id]
            if 0 < self.got[bid_id] < b.min_fill:
                for c, chunk in sorted(self.pieces.items()):
                    if bid_id in chunk:
                        self.got[bid_id] -= chunk.pop(bid_id) * self._weight(b, c)
        return bool(out)

    def _hand_out(self) -> bool:
        """Units unsold at or below a class price to the divisible bids with room that pay it."""
        total = {c: self._total(c) for c in self.price}
        cheap = {
            c: sum(units for price, units in self.free.get(c, ()) if price <= p) - total[c]
            for c, p in self.price.items()
        }
        changed = False
        for b in self.book.bids:  # sorted (price, time, id)
            if _is_block(b) or self._room(b) <= 0:
                continue
            options = sorted(
                (c for c in self.book.arcs.get(b.signature, ()) if cheap.get(c, 0) > 0),
                key=lambda c: (self.price[c] / self._weight(b, c), c),
            )
            for c in options:
                w = self._weight(b, c)
                num, den = unit_value(b, self.classes[c])
                take = min(cheap[c], self._room(b) // w)
                if num < self.price[c] * den or take <= 0:
                    continue
                if self.got[b.id] == 0 and take * w < b.min_fill:
                    continue
                self.pieces[c][b.id] = self.pieces[c].get(b.id, 0) + take
                self.got[b.id] += take * w
                cheap[c] -= take
                changed = True
        return changed

    def _raise(self) -> bool:
        changed = False
        for c in sorted(self.price):
            next_ask = self._cheapest_unsold(c)
            if next_ask is None or not self._traded(c):
                continue
            klass = self.classes[c]
            values = [
                _floor_value(b, klass)
                for sig in self.accepting.get(c, ())
                for b in self.by_signature.get(sig, ())
                if self._room(b) >= self._weight(b, c)
            ]
            p = self.price[c]
            if values and max(values) > p:
                # An ascending clock: to the next unsold ask, where the bid can buy (3), unless the
                # bid's value comes first.
                self.price[c] = max(values) if next_ask <= p else min(max(values), next_ask)
                changed = True
        return changed

    def _cheapest_unsold(self, c: str) -> int | None:
        """The price of the cheapest ask in the class with units unsold, if any."""
        left = self._total(c)
        for price, units in self.free.get(c, ()):
            if units > left:
                return price
            left -= units
        return None

    def prices(self) -> dict[str, int]:
        return {c: p for c, p in self.price.items() if self._traded(c)}

    def fills(self, prices: Mapping[str, int]) -> list[Fill]:
        """Fills per ask: same-pool draws from their asks, then each class's units rationed over
        what its asks have left, cheapest first (pro rata at the marginal price, then time)."""
        left = {a.id: a.units for a in self.book.asks}
        fills: list[Fill] = []
        for b, a, units in self.direct:
            units = min(units, left[a.id])
            left[a.id] -= units
            if units:
                fills.append(Fill(b.id, a.id, a.cls, units, prices[a.cls]))
        chunks = {c: chunk for c, chunk in self.pieces.items() if any(chunk.values())}
        totals = {c: sum(chunk.values()) for c, chunk in chunks.items()}
        remaining = [replace(a, units=left[a.id]) for a in self.book.asks if left[a.id] > 0]
        sold = _ration(remaining, key=lambda a: a.cls, totals=totals, qty=lambda a: a.units)
        for c, chunk in sorted(chunks.items()):
            wants = [(self.bids[bid_id], units) for bid_id, units in chunk.items() if units]
            sells = [(a, sold[a.id]) for a in remaining if a.cls == c and sold.get(a.id, 0)]
            fills += pair(c, prices[c], wants, sells)
        return _merged(fills)


def _floor_value(b: Bid, klass: Class) -> int:
    """A bid's value for one unit-hour of a class, rounded down to the tick grid."""
    num, den = unit_value(b, klass)
    return num // den


__all__ = ["solve", "verify"]
