"""LP and MIP clearing with HiGHS, for books the min-cost flow cannot express.

Columns: x_b (each bid's fill, in its own quantity: units, or SCU·10⁻⁴), z_gc (units a signature
group takes from a class), y_k (units an ask sells); for blocks a binary δ_b (accepted or not), and
for same-pool bids z_bk (units from one ask) and a binary u_bP (the pool chosen). Rows: each group
balances its bids against its classes (an SCU group counts a unit of class c as scu_c), each class
balances what groups take against what its asks sell (**its dual is the class price**), and the
block rows (x_b = q_b·δ_b for all-or-none; m_b·δ_b ≤ x_b ≤ q_b·δ_b for a minimum fill; Σ_P u_bP ≤ 1
and Σ_{k∈P} z_bk ≤ q_b·u_bP for same-pool).

Presolve is off: on this model HiGHS's presolve costs about ten times the solve.

Integer mode (blocks present): the MIP runs under a time limit and its best incumbent is kept; the
block decisions (δ, u) are then fixed and the LP is solved for prices. European day-ahead rule: an
accepted block that would pay more than its limit at those prices is rejected (the one with the
largest excess first) and the LP re-solved, until none is; a profitable block may thus be rejected,
but an accepted one is never charged above its limit.

Fractional units (SCU groups) are rounded down; the units that frees are simply not traded.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import highspy
import numpy as np

from matching.engine import (
    SCU_SCALE,
    Ask,
    Bid,
    Book,
    Clearing,
    Fill,
    Reason,
    _is_block,
    _merged,
    _ration,
    _result,
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
        col = m.col(value_per_quantity(b), 0.0, float(b.quantity))
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
        for c in book.arcs.get(group_sig[g], ()):
            if c not in class_row:
                continue
            col = m.col(0.0, 0.0, math.inf, integer=integer and group_scu[g])
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


def _run(model: _Model, *, time_limit: float | None) -> tuple[list[float], list[float], bool]:
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
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    solution = h.getSolution()
    optimal = status == highspy.HighsModelStatus.kOptimal
    if not solution.value_valid:  # pragma: no cover - x = 0 is always feasible
        raise RuntimeError(f"HiGHS found no solution: {h.modelStatusToString(status)}")
    duals = list(solution.row_dual) if (not mip and solution.dual_valid) else []
    return list(solution.col_value), duals, optimal


def solve(book: Book, *, integer: bool, time_limit: float | None) -> Clearing:
    optimal = True
    rejected: dict[str, Reason] = {}
    fixed: dict[int, float] = {}
    notes: list[str] = []
    if integer:
        layout = _layout(book, integer=True, fixed={})
        values, _, optimal = _run(layout.model, time_limit=time_limit)
        if not optimal:
            notes.append("MIP time limit reached: best incumbent kept")
        for cols in (layout.delta, layout.u):
            for col in cols.values():
                fixed[col] = float(round(values[col]))
    # Fix block decisions; solve the LP for prices; reject blocks charged above their limit.
    while True:
        layout = _layout(book, integer=False, fixed=fixed)
        values, duals, lp_optimal = _run(layout.model, time_limit=None)
        prices = {c: _tick(duals[r]) for c, r in layout.class_row.items()}
        worst = _paradoxically_accepted(book, layout, values, prices)
        if worst is None:
            break
        fixed[layout.delta[worst]] = 0.0
        for (bid, _pool), col in layout.u.items():
            if bid == worst:
                fixed[col] = 0.0
        rejected[worst] = "all_or_none_unsatisfiable"
        notes.append(f"block {worst} rejected: its limit is below the clearing price")
    fills = _allocate(book, layout, values, prices)
    filled: dict[str, int] = defaultdict(int)
    by_id = {b.id: b for b in book.bids}
    for f in fills:
        filled[f.bid] += f.units * (book.classes[f.cls].scu if by_id[f.bid].per_scu else 1)
    traded = {f.cls for f in fills}
    prices = _repair_prices(book, fills, {c: p for c, p in prices.items() if c in traded})
    fills = [replace(f, price=prices[f.cls]) for f in fills]
    clearing = _result(
        book,
        "mip" if integer else "lp",
        fills,
        prices,
        filled,
        optimal=optimal and lp_optimal,
        notes=tuple(notes),
        reasons=rejected,
    )
    return clearing


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
    for bid_id, d in layout.delta.items():
        if values[d] < 0.5:
            continue
        b = by_id[bid_id]
        if b.same_pool:
            used = {
                asks[k].cls
                for (bb, k), col in layout.zk.items()
                if bb == bid_id and values[col] > EPS
            }
        else:
            g = _group_of(b)
            used = {c for (gg, c), col in layout.z.items() if gg == g and values[col] > EPS}
        for c in used:
            num, den = unit_value(b, book.classes[c])
            excess = prices[c] - num / den
            if excess > EPS and (worst is None or (excess, bid_id) > worst):
                worst = (excess, bid_id)
    return None if worst is None else worst[1]


def _allocate(
    book: Book, layout: _Layout, values: Sequence[float], prices: Mapping[str, int]
) -> list[Fill]:
    """Whole units from the LP's (possibly fractional) solution, then fills per ask."""
    classes = book.classes
    asks = {a.id: a for a in book.asks}
    pieces: dict[str, list[tuple[Bid, int]]] = defaultdict(list)  # class → (bid, units)
    direct: list[tuple[Bid, Ask, int]] = []
    # Same-pool bids draw from named asks.
    for (bid_id, ask_id), col in sorted(layout.zk.items()):
        units = math.floor(values[col] + EPS)
        if units:
            b = next(b for b in book.bids if b.id == bid_id)
            direct.append((b, asks[ask_id], units))
    # Groups: whole units per class, shared among the group's bids.
    for g, members in layout.groups.items():
        room = {
            c: math.floor(values[col] + EPS)
            for (gg, c), col in layout.z.items()
            if gg == g and values[col] > EPS
        }
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
                        pieces[current].append((b, take))
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
                whole = need < max((classes[c].scu for c in order), default=1)
                if (b.all_or_none and not whole) or (0 < got < b.min_fill):
                    continue
                for c, take in taken:
                    room[c] -= take
                    pieces[c].append((b, take))
    _top_up(book, pieces, direct, prices)
    # Asks: what each class sells, rationed over its asks after the same-pool draws.
    left = {a.id: a.units for a in book.asks}
    fills: list[Fill] = []
    for b, a, units in direct:
        units = min(units, left[a.id])
        left[a.id] -= units
        if units:
            fills.append(Fill(b.id, a.id, a.cls, units, prices.get(a.cls, 0)))
    totals = {c: sum(u for _, u in chunk) for c, chunk in pieces.items()}
    remaining = [replace(a, units=left[a.id]) for a in book.asks if left[a.id] > 0]
    sold = _ration(remaining, key=lambda a: a.cls, totals=totals, qty=lambda a: a.units)
    for c, chunk in sorted(pieces.items()):
        sells = [(a, sold[a.id]) for a in remaining if a.cls == c and sold.get(a.id, 0)]
        fills += pair(c, prices.get(c, 0), chunk, sells)
    return _merged(fills)


def _top_up(
    book: Book,
    pieces: dict[str, list[tuple[Bid, int]]],
    direct: Sequence[tuple[Bid, Ask, int]],
    prices: Mapping[str, int],
) -> None:
    """Rounding fractional units down can strand a unit that a divisible bid wants at the class
    price: hand such units out, best bid first ((price, time, id)), cheapest class first."""
    classes = book.classes
    cheap: dict[str, int] = defaultdict(int)  # units of asks at or below the class price
    for a in book.asks:
        p = prices.get(a.cls)
        if p is not None and a.price <= p:
            cheap[a.cls] += a.units
    for c, chunk in pieces.items():
        cheap[c] -= sum(u for _, u in chunk)
    for _, a, units in direct:
        cheap[a.cls] -= units
    got: dict[str, int] = defaultdict(int)
    for c, chunk in pieces.items():
        for b, u in chunk:
            got[b.id] += u * (classes[c].scu if b.per_scu else 1)
    for b in book.bids:  # sorted (price, time, id)
        if _is_block(b):
            continue
        options = sorted(
            (c for c in book.arcs.get(b.signature, ()) if cheap.get(c, 0) > 0 and c in prices),
            key=lambda c: (prices[c] / (classes[c].scu if b.per_scu else 1), c),
        )
        for c in options:
            num, den = unit_value(b, classes[c])
            if num // den < prices[c]:
                continue
            w = classes[c].scu if b.per_scu else 1
            take = min(cheap[c], (b.quantity - got[b.id]) // w)
            if take > 0:
                pieces[c].append((b, take))
                cheap[c] -= take
                got[b.id] += take * w


def _repair_prices(book: Book, fills: Sequence[Fill], prices: dict[str, int]) -> dict[str, int]:
    """Keep each traded class's price within [dearest ask sold, lowest value bought]."""
    bids = {b.id: b for b in book.bids}
    asks = {a.id: a for a in book.asks}
    floor: dict[str, int] = {}
    ceiling: dict[str, int] = {}
    for f in fills:
        floor[f.cls] = max(floor.get(f.cls, 0), asks[f.ask].price)
        num, den = unit_value(bids[f.bid], book.classes[f.cls])
        ceiling[f.cls] = min(ceiling.get(f.cls, num // den), num // den)
    return {c: min(max(p, floor.get(c, p)), ceiling.get(c, p)) for c, p in prices.items()}


__all__ = ["solve", "verify"]
