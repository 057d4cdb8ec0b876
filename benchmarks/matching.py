"""The clearing engine on synthetic books: wall time of ``matching.engine.clear`` at 100k and 1M
orders, an all-or-none book through the MIP path, the certificate, and welfare against an
independent LP (HiGHS) and a first-come-first-served matcher.

Books are seeded and realistic in shape: 120 classes (12 device types x 10 regions), a few hundred
to a few thousand bid signatures each accepting a device set x a region set (popularity skewed),
prices around per-device reference prices with log-normal noise, bids of 1-16 units, asks of
1-64. About 60% of orders are bids. Generating a book is not timed; ``clear`` is timed whole
(normalization, flow, prices, disaggregation and its own certificate check).

    make bench NAME=matching                 # full: 100k and 1M (about 2-3 minutes)
    BENCH_QUICK=1 make bench NAME=matching   # 10k and 100k, no 1M, no 1M profile

Progress and the profiles go to stderr; the last line on stdout is the JSON report.
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _harness import report

from matching.engine import Ask, Bid, Book, Class, Clearing, clear, verify

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
SEED = 20240601
SMALL = 10_000  # the LP-comparison and all-or-none books
MID = 100_000
LARGE = 0 if QUICK else 1_000_000
MID_REPEATS = 1 if QUICK else 3
AON_SHARE = 0.10  # of the bids in the MIP book

# Reference prices, ticks per unit-hour, in ascending order so neighbours are substitutes.
DEVICES = {
    "t4": 150,
    "a10": 380,
    "l4": 420,
    "rtx4090": 520,
    "a40": 700,
    "l40s": 980,
    "a100-40g": 1350,
    "a100-80g": 1700,
    "h20": 1900,
    "h100-pcie": 2600,
    "h100-sxm": 3000,
    "h200": 3600,
}
REGIONS = [
    "cn-beijing",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-hangzhou",
    "cn-chengdu",
    "cn-wuhan",
    "cn-guiyang",
    "cn-ulanqab",
    "hk",
    "sg",
]


def log(message: str) -> None:
    print(f"[matching {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def signatures_for(orders: int) -> int:
    """A few hundred signatures for small books, a few thousand for a million orders."""
    return int(min(3000, max(300, orders // 100 if orders <= 100_000 else orders // 333)))


def make_book(orders: int, seed: int, *, aon_share: float = 0.0) -> Book:
    rng = np.random.default_rng(seed)
    devices = list(DEVICES)
    ref = np.array(list(DEVICES.values()), dtype=np.float64)
    nd, nr = len(devices), len(REGIONS)
    classes = {f"{d}/{r}": Class(f"{d}/{r}") for d in devices for r in REGIONS}

    # Signatures: a device (sometimes with its neighbour) x a set of regions.
    ns = signatures_for(orders)
    device_pop = rng.dirichlet(np.full(nd, 2.0))
    region_pop = rng.dirichlet(np.full(nr, 1.5))
    arcs: dict[str, tuple[str, ...]] = {}
    sig_device = np.empty(ns, dtype=np.int64)
    for s in range(ns):
        d = int(rng.choice(nd, p=device_pop))
        devs = {d}
        if rng.random() < 0.3:
            devs.add(min(nd - 1, max(0, d + int(rng.choice([-1, 1])))))
        if rng.random() < 0.2:
            regions = list(range(nr))
        else:
            k = int(rng.integers(1, 6))
            regions = sorted(rng.choice(nr, size=k, replace=False, p=region_pop).tolist())
        arcs[f"s{s}"] = tuple(f"{devices[i]}/{REGIONS[r]}" for i in sorted(devs) for r in regions)
        sig_device[s] = d
    sig_pop = 1.0 / np.arange(1, ns + 1) ** 0.8
    sig_pop /= sig_pop.sum()

    n_bids = round(orders * 0.6)
    n_asks = orders - n_bids
    seqs = rng.permutation(orders)
    bid_sig = rng.choice(ns, size=n_bids, p=sig_pop)
    bid_price = np.maximum(
        1, np.rint(ref[sig_device[bid_sig]] * rng.lognormal(0.05, 0.2, n_bids))
    ).astype(np.int64)
    bid_qty = rng.integers(1, 17, n_bids)
    aon = rng.random(n_bids) < aon_share
    bids = [
        Bid(f"b{i}", f"s{s}", q, p, seq, all_or_none=a)
        for i, (s, q, p, seq, a) in enumerate(
            zip(
                bid_sig.tolist(),
                bid_qty.tolist(),
                bid_price.tolist(),
                seqs[:n_bids].tolist(),
                aon.tolist(),
                strict=True,
            )
        )
    ]

    cls_pop = np.outer(device_pop, region_pop).ravel()  # supply follows demand, roughly
    cls_pop = 0.5 * cls_pop / cls_pop.sum() + 0.5 / len(classes)
    ask_cls = rng.choice(len(classes), size=n_asks, p=cls_pop)
    ask_price = np.maximum(
        1, np.rint(ref[ask_cls // nr] * rng.lognormal(-0.05, 0.2, n_asks))
    ).astype(np.int64)
    ask_units = rng.integers(1, 65, n_asks)
    ask_pool = rng.integers(0, 40, n_asks)
    keys = list(classes)
    asks = [
        Ask(f"a{i}", keys[c], f"{keys[c]}#{p}", u, price, seq)
        for i, (c, p, u, price, seq) in enumerate(
            zip(
                ask_cls.tolist(),
                ask_pool.tolist(),
                ask_units.tolist(),
                ask_price.tolist(),
                seqs[n_bids:].tolist(),
                strict=True,
            )
        )
    ]
    return Book(asks=asks, bids=bids, arcs=arcs, classes=classes)


def describe(book: Book) -> dict[str, Any]:
    arcs = [len(v) for v in book.arcs.values()]
    return {
        "bids": len(book.bids),
        "asks": len(book.asks),
        "signatures": len(book.arcs),
        "classes": len(book.classes),
        "arcs": sum(arcs),
        "demand_units": sum(b.quantity for b in book.bids),
        "supply_units": sum(a.units for a in book.asks),
    }


def timed(fn: Callable[[], Clearing]) -> tuple[Clearing, float]:
    gc.collect()
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


# The engine's steps, timed exclusively (a step's time excludes the other steps it calls; verify
# keeps its own normalization). Wrapping the module's functions costs a few microseconds a call.
STEPS = (
    "_flow_book",  # reading the orders into columns, sorted
    "_clear_flow",  # own time: the network's arrays, the OR-Tools solve, per-group totals
    "_ration_columns",
    "_equilibrium_bounds",
    "_disaggregate",
    "_flow_result",
    "_fill_objects",
    "_flow_reasons",
    "_verify",  # the certificate, when a midpoint price was rounded
    # the LP and MIP paths
    "_normalized",
    "_ration",
    "_merged",
    "_result",
    "_reasons",
    "verify",
)


@contextlib.contextmanager
def steps_timed(into: dict[str, float]) -> Iterator[None]:
    import matching.engine as engine

    stack: list[list[Any]] = []  # [name, time spent in timed children]
    originals = {name: getattr(engine, name) for name in STEPS}

    def wrapped(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if stack and stack[-1][0] == "verify":
                return fn(*args, **kwargs)
            stack.append([name, 0.0])
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                _, children = stack.pop()
                into[name] = into.get(name, 0.0) + elapsed - children
                if stack:
                    stack[-1][1] += elapsed

        return step

    for name, fn in originals.items():
        setattr(engine, name, wrapped(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(engine, name, fn)


def timed_steps(book: Book) -> tuple[Clearing, float, dict[str, float]]:
    steps: dict[str, float] = {}
    with steps_timed(steps):
        clearing, seconds = timed(lambda: clear(book))
    steps["clear (own)"] = seconds - sum(steps.values())
    return clearing, seconds, {k: round(v, 3) for k, v in steps.items()}


# ------------------------------------------------------------------ profile


def profiled(book: Book, label: str) -> dict[str, Any]:
    """One clear() under cProfile: the top functions by cumulative and by own time (the profiler
    inflates Python-heavy steps, so read them as proportions)."""
    gc.collect()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    clear(book)
    profiler.disable()
    wall = time.perf_counter() - started
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        where = f"{os.path.basename(file)}:{line}" if file != "~" else "builtin"
        rows.append((cumtime, tottime, ncalls, f"{name} ({where})"))
    by_cum = [
        f"cum {cum:7.3f}s own {own:7.3f}s {n:>9}x {what}"
        for cum, own, n, what in sorted(rows, key=lambda r: -r[0])[:20]
        if cum >= 0.01 * wall
    ]
    by_own = [
        f"own {own:7.3f}s cum {cum:7.3f}s {n:>9}x {what}"
        for cum, own, n, what in sorted(rows, key=lambda r: -r[1])[:12]
        if own >= 0.01 * wall
    ]
    print(f"===== clear() on the {label} book under cProfile: {wall:.2f}s", file=sys.stderr)
    for line in [*by_cum, "-- by own time:", *by_own]:
        print("  " + line, file=sys.stderr)
    return {"wall_under_cprofile_s": round(wall, 3), "by_cumulative": by_cum, "by_own": by_own}


# ------------------------------------------------------------------ comparisons


def fcfs_welfare(book: Book) -> int:
    """Bids in time order, each taking the cheapest compatible ask units at or below its price."""
    prices: dict[str, list[int]] = {c: [] for c in book.classes}
    units: dict[str, list[int]] = {c: [] for c in book.classes}
    for a in sorted(book.asks, key=lambda a: (a.price, a.seq, a.id)):
        prices[a.cls].append(a.price)
        units[a.cls].append(a.units)
    head = dict.fromkeys(book.classes, 0)
    welfare = 0
    for b in sorted(book.bids, key=lambda b: (b.seq, b.id)):
        classes = book.arcs.get(b.signature, ())
        need = b.quantity
        while need:
            best, best_price = None, b.price + 1
            for c in classes:
                i = head[c]
                if i < len(prices[c]) and prices[c][i] < best_price:
                    best, best_price = c, prices[c][i]
            if best is None:
                break
            i = head[best]
            take = min(need, units[best][i])
            welfare += (b.price - best_price) * take
            need -= take
            units[best][i] -= take
            if units[best][i] == 0:
                head[best] = i + 1
    return welfare


def lp_welfare(book: Book) -> tuple[float, float]:
    """An independent LP with HiGHS, presolve off: columns per bid, per (signature, class) arc and
    per ask; a balance row per signature and per class. Returns (welfare, solve seconds)."""
    import highspy

    sigs = sorted(book.arcs)
    classes = sorted(book.classes)
    sig_row = {s: i for i, s in enumerate(sigs)}
    cls_row = {c: len(sigs) + i for i, c in enumerate(classes)}
    pairs = [(s, c) for s in sigs for c in book.arcs[s] if c in cls_row]
    nb, na, nk = len(book.bids), len(pairs), len(book.asks)

    cost = np.concatenate(
        [
            -np.array([b.price for b in book.bids], dtype=np.float64),
            np.zeros(na),
            np.array([a.price for a in book.asks], dtype=np.float64),
        ]
    )
    upper = np.concatenate(
        [
            np.array([b.quantity for b in book.bids], dtype=np.float64),
            np.full(na, highspy.kHighsInf),
            np.array([a.units for a in book.asks], dtype=np.float64),
        ]
    )
    # Bid: +1 in its signature row. Arc: -1 in the signature row, +1 in the class row (two
    # entries). Ask: -1 in its class row.
    counts = np.concatenate([np.ones(nb), np.full(na, 2), np.ones(nk)]).astype(np.int32)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    index = np.empty(int(start[-1]), dtype=np.int32)
    value = np.empty(int(start[-1]), dtype=np.float64)
    index[:nb] = [sig_row[b.signature] for b in book.bids]
    value[:nb] = 1.0
    arc_index = np.array([[sig_row[s], cls_row[c]] for s, c in pairs], dtype=np.int32)
    index[nb : nb + 2 * na] = arc_index.ravel()
    value[nb : nb + 2 * na] = np.tile([-1.0, 1.0], na)
    index[nb + 2 * na :] = [cls_row[a.cls] for a in book.asks]
    value[nb + 2 * na :] = -1.0

    lp = highspy.HighsLp()
    lp.num_col_ = nb + na + nk
    lp.num_row_ = len(sigs) + len(classes)
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(lp.num_col_)
    lp.col_upper_ = upper
    lp.row_lower_ = np.zeros(lp.num_row_)
    lp.row_upper_ = np.zeros(lp.num_row_)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    # As matching/highs.py does: HiGHS refuses a different thread count once its (process-wide)
    # scheduler has started, so a default-threads solve here would break the engine's later ones.
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    started = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - started
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"reference LP: {h.modelStatusToString(status)}")
    return -h.getInfo().objective_function_value, seconds


# ------------------------------------------------------------------ main


def round_figures() -> dict[str, Any]:
    """The database-to-database round (benchmarks/_matching_round.py), in its own process: it
    starts its own PostgreSQL and Redis."""
    import json
    import subprocess

    log("round: loading the book into PostgreSQL and clearing it (takes a few minutes)")
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_matching_round.py"))]
        + (["--quick"] if QUICK else []),
        cwd=Path(__file__).resolve().parent.parent,  # the repository root (see run.py)
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"round_100k_s": None, "round_error": done.stderr[-2000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return {
        f"round_{k}" if not k.startswith("round_") else k: v
        for k, v in result.items()
        if k not in {"benchmark", "machine"}
    }


def main() -> None:
    wall_started = time.perf_counter()
    figures: dict[str, Any] = {"quick": QUICK, "seed": SEED}
    books: dict[str, Any] = {}
    violations: dict[str, int] = {}
    examples: list[str] = []

    def check(name: str, book: Book, clearing: Clearing) -> None:
        v = verify(book, clearing)
        violations[name] = len(v)
        if v:
            examples.extend(f"{name}: {x}" for x in v[:5])
            log(f"{name}: {len(v)} certificate violations, e.g. {v[:3]}")

    # ---- 10k: welfare against an independent LP
    log(f"generating {SMALL:,}-order book")
    small = make_book(SMALL, SEED)
    books["10k"] = describe(small)
    small_clearing, small_s = timed(lambda: clear(small))
    check("10k", small, small_clearing)
    lp, lp_s = lp_welfare(small)
    figures["engine_10k_s"] = round(small_s, 4)
    figures["lp_10k_solve_s"] = round(lp_s, 4)
    figures["welfare_10k"] = small_clearing.welfare
    figures["welfare_lp_10k"] = lp
    figures["welfare_vs_lp"] = round(small_clearing.welfare / lp, 9) if lp else None
    log(f"10k: clear {small_s:.3f}s, welfare {small_clearing.welfare} vs LP {lp:.0f}")

    # ---- 10k with 10% all-or-none bids: the MIP path (matching/highs.py)
    aon = make_book(SMALL, SEED, aon_share=AON_SHARE)
    books["10k_aon"] = {
        **describe(aon),
        "all_or_none_bids": sum(b.all_or_none for b in aon.bids),
    }
    figures["mip_10k_aon_s"] = None
    figures["mip_error"] = None
    try:
        mip_clearing, mip_s = timed(lambda: clear(aon))
    except ImportError as exc:
        figures["mip_error"] = f"{type(exc).__name__}: {exc}"
        log(f"MIP skipped: {figures['mip_error']}")
    except Exception as exc:  # noqa: BLE001 - reported as a figure, the other figures still count
        traceback.print_exc()
        figures["mip_error"] = f"{type(exc).__name__}: {exc}"
    else:
        check("10k_aon", aon, mip_clearing)
        figures["mip_10k_aon_s"] = round(mip_s, 3)
        figures["mip_mechanism"] = mip_clearing.mechanism
        figures["mip_optimal"] = mip_clearing.optimal
        figures["mip_welfare"] = mip_clearing.welfare
        figures["mip_notes"] = list(mip_clearing.notes)
        log(f"MIP: {mip_s:.3f}s, optimal={mip_clearing.optimal}")

    # ---- 100k: timing (best of a few), determinism, FCFS, profile
    log(f"generating {MID:,}-order book")
    mid = make_book(MID, SEED + 1)
    books["100k"] = describe(mid)
    runs = []
    digests = set()
    mid_clearing = None
    breakdown: dict[str, float] = {}
    for _ in range(MID_REPEATS):
        mid_clearing, seconds, breakdown = timed_steps(mid)
        runs.append(seconds)
        digests.add(mid_clearing.digest())
        log(f"100k: clear {seconds:.3f}s")
    assert mid_clearing is not None
    check("100k", mid, mid_clearing)
    figures["engine_100k_s"] = round(min(runs), 3)
    figures["engine_100k_runs_s"] = [round(s, 3) for s in runs]
    figures["engine_100k_median_s"] = round(statistics.median(runs), 3)
    figures["engine_100k_steps_s"] = breakdown
    figures["deterministic_100k"] = len(digests) == 1
    gc.collect()
    gc.disable()
    try:
        _, seconds = timed(lambda: clear(mid))
    finally:
        gc.enable()
    figures["engine_100k_gc_off_s"] = round(seconds, 3)
    log(f"100k: clear {seconds:.3f}s with the garbage collector off")
    figures["volume_units_100k"] = mid_clearing.volume_units
    figures["fills_100k"] = len(mid_clearing.fills)
    figures["priced_classes_100k"] = sum(p.price is not None for p in mid_clearing.prices)
    notes = list(mid_clearing.notes)
    started = time.perf_counter()
    fcfs = fcfs_welfare(mid)
    figures["fcfs_s"] = round(time.perf_counter() - started, 3)
    figures["fcfs_welfare_ratio"] = (
        round(fcfs / mid_clearing.welfare, 6) if mid_clearing.welfare else None
    )
    log(f"100k: FCFS welfare {fcfs} vs {mid_clearing.welfare}")
    figures["profile_100k"] = profiled(mid, "100k")

    # ---- 1M
    figures["engine_1m_s"] = None
    if LARGE:
        log(f"generating {LARGE:,}-order book")
        large = make_book(LARGE, SEED + 2)
        books["1m"] = describe(large)
        large_clearing, large_s, breakdown = timed_steps(large)
        log(f"1M: clear {large_s:.3f}s")
        figures["engine_1m_s"] = round(large_s, 3)
        figures["engine_1m_steps_s"] = breakdown
        figures["volume_units_1m"] = large_clearing.volume_units
        figures["fills_1m"] = len(large_clearing.fills)
        notes += list(large_clearing.notes)
        started = time.perf_counter()
        check("1m", large, large_clearing)
        figures["verify_1m_s"] = round(time.perf_counter() - started, 3)
        del large_clearing
        figures["profile_1m"] = profiled(large, "1M")

    figures["certificate_violations"] = sum(violations.values())
    figures["certificate_violations_by_book"] = violations
    figures["certificate_examples"] = examples[:10]
    figures["engine_notes"] = sorted(set(notes))
    figures.update(round_figures())
    figures["books"] = books
    figures["wall_s"] = round(time.perf_counter() - wall_started, 1)
    report("matching", figures)


if __name__ == "__main__":
    main()
