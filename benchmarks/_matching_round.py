"""One clearing round, database to database: load N open orders (with their ledger holds) and the
offers of 120 pools, then time ``matching.services.clear_round`` — snapshot, engine, certificate,
round, classes, leases, ledger moves, order and offer updates, events, all in one transaction.

    .venv/bin/python benchmarks/_matching_round.py           # 100,000 orders
    .venv/bin/python benchmarks/_matching_round.py --quick   # or BENCH_QUICK=1: 10,000 orders

``benchmarks/matching.py`` runs it and reports its figures as ``round_*``. The book is built once
and each of ``BENCH_ROUNDS`` rounds (3) clears a fresh copy of it; the figure is the fastest. With
``BENCH_DATA_DIR`` the servers' files stay there, and so does the built book: a later run with the
same directory starts at the rounds (delete the directory after changing the schema).

Prints ``round_100k_s`` (or ``round_10k_s`` when quick), ``runs_s``, ``median_s``, and where the
fastest round's time went: ``phases_s`` (seconds in the snapshot, the engine, the certificate and
each write of the round, and in the commit, which runs the deferred foreign-key checks) and
``wal_mb`` (what the round wrote to the WAL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import django_stack, report

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
ORDERS = 10_000 if QUICK else 100_000
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DEVICES = 12
REGIONS = ["CN-GS", "CN-NM", "CN-GZ", "CN-NX", "CN-QH", "CN-SH", "CN-BJ", "CN-GD", "CN-ZJ", "CN-JS"]
OFFERS_PER_POOL = 10
# Rounds cleared, each on a fresh copy of the built database (BENCH_ROUNDS).
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def build(seed: int = 7) -> dict[str, float]:
    from ledger import services as ledger
    from ledger.models import Kind, Purpose
    from marketplace.core.owners import ledger_owner
    from marketplace.models import (
        DeviceModel,
        Market,
        Offer,
        Order,
        Organization,
        Pool,
        Site,
    )

    rng = random.Random(seed)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    market = Market.objects.create(slug="bench", name="Bench", currency="CNY", buyer_fee_bps=100)
    devices = [
        DeviceModel.objects.create(
            slug=f"dev-{i}",
            vendor="Bench",
            name=f"Device {i}",
            kind="gpu",
            memory_gb=Decimal(24 + 8 * i),
            memory_bandwidth_gbps=Decimal(1000),
            fp64_tflops=Decimal(10),
            fp32_tflops=Decimal(50),
            bf16_tflops=Decimal(100 + 80 * i),
            int8_tops=Decimal(400),
            tdp_watts=400,
            source_url="https://example.com",
        )
        for i in range(DEVICES)
    ]
    provider = Organization.objects.create(
        legal_name="Provider",
        country="CN",
        registration_id="P",
        is_provider=True,
        kyb_status="approved",
    )
    buyers = [
        Organization.objects.create(
            legal_name=f"Buyer {i}",
            country="CN",
            registration_id=f"B{i}",
            is_buyer=True,
            kyb_status="approved",
        )
        for i in range(100)
    ]
    reference_price = {d.pk: Decimal(2 + 3 * i) for i, d in enumerate(devices)}
    pools: list[Pool] = []
    for r, region in enumerate(REGIONS):
        site = Site.objects.create(
            organization=provider,
            name=f"Site {region}",
            country="CN",
            region=region,
            city=f"City {r}",
            jurisdiction="CN",
            pue=Decimal("1.2") + Decimal(r) / 100,
            renewable_share=Decimal("0.9") - Decimal(r) / 20,
            carbon_g_per_kwh=300 + 20 * r,
        )
        for d in devices:
            pools.append(
                Pool.objects.create(
                    site=site, name=f"pool-{d.slug}", device_model=d, units=100_000, verified=True
                )
            )
    offers = []
    for pool in pools:
        ref = reference_price[pool.device_model_id]
        region_discount = Decimal(1) - Decimal(REGIONS.index(pool.site.region)) / 40
        for _ in range(OFFERS_PER_POOL):
            noise = Decimal(rng.randint(80, 120)) / 100
            offers.append(
                Offer(
                    market=market,
                    pool=pool,
                    units=rng.randint(2, 6) * max(1, ORDERS // 1_000),
                    available_from=NOW - HOUR,
                    available_until=NOW + 30 * 24 * HOUR,
                    min_price=(ref * region_discount * noise).quantize(Decimal("0.01")),
                )
            )
    Offer.objects.bulk_create(offers)
    timings["setup_supply_s"] = time.perf_counter() - started

    started = time.perf_counter()
    orders = []
    device_sets = []
    for i in range(ORDERS):
        k = rng.randrange(DEVICES)
        accepted = sorted({k, min(DEVICES - 1, k + rng.choice([0, 1]))})
        regions = sorted(rng.sample(REGIONS, rng.choice([2, 4, 10]))) if rng.random() < 0.6 else []
        ref = reference_price[devices[k].pk]
        limit = (ref * Decimal(rng.randint(70, 140)) / 100).quantize(Decimal("0.01"))
        quantity = rng.randint(1, 16)
        hours = rng.choice([1, 2, 4, 8, 24, 72])
        volume = quantity * hours
        hold = int(limit * volume * 100) + int(limit * volume)  # + 1% fee, in fen (bounded above)
        orders.append(
            Order(
                market=market,
                organization=buyers[i % len(buyers)],
                placed_by="bench",
                quantity=Decimal(quantity),
                duration_hours=hours,
                earliest_start=NOW - HOUR,
                latest_start=NOW + HOUR,
                limit_price=limit,
                allowed_regions=regions,
                expires_at=NOW + 2 * HOUR,
                hold_amount=hold + 2,
                hold_transfer_id=uuid.uuid4(),
                min_fill=Decimal(1),
                created_at=NOW - HOUR,
            )
        )
        device_sets.append([devices[j] for j in accepted])
    # 1,000 rows × 33 columns stay under the 65,535 parameters of server-side binding.
    Order.objects.bulk_create(orders, batch_size=1000)
    through = Order.device_models.through
    through.objects.bulk_create(
        [
            through(order=o, devicemodel=d)
            for o, ds in zip(orders, device_sets, strict=True)
            for d in ds
        ],
        batch_size=10_000,
    )
    # Fund each buyer and place every order's hold, as place_order does.
    source = ledger.open_account(
        owner="platform", purpose=Purpose.ADJUSTMENT, currency="CNY", now=NOW
    )
    keys = [ledger.AccountKey(ledger_owner(b), Purpose.WALLET, "CNY") for b in buyers] + [
        ledger.AccountKey(
            ledger_owner(o.organization), Purpose.ORDER_HOLD, "CNY", f"order:{o.public_id}"
        )
        for o in orders
    ]
    accounts = ledger.open_accounts(keys, now=NOW)
    funding = [
        ledger.NewTransfer(
            id=uuid.uuid4(),
            debit_account_id=source.pk,
            credit_account_id=accounts[ledger.AccountKey(ledger_owner(b), Purpose.WALLET, "CNY")],
            amount=10**12,
        )
        for b in buyers
    ]
    assert set(ledger.create_transfers(funding, now=NOW)) == {ledger.Result.OK}
    holds = [
        ledger.NewTransfer(
            id=o.hold_transfer_id,
            debit_account_id=accounts[
                ledger.AccountKey(ledger_owner(o.organization), Purpose.WALLET, "CNY")
            ],
            credit_account_id=accounts[
                ledger.AccountKey(
                    ledger_owner(o.organization), Purpose.ORDER_HOLD, "CNY", f"order:{o.public_id}"
                )
            ],
            amount=o.hold_amount,
            kind=Kind.PENDING,
            timeout=10 * 24 * 3600,
        )
        for o in orders
    ]
    for i in range(0, len(holds), 5000):
        assert set(ledger.create_transfers(holds[i : i + 5000], now=NOW)) == {ledger.Result.OK}
    timings["setup_orders_s"] = time.perf_counter() - started
    return timings


# Where the round's time goes: these functions are wrapped with timers (a dozen calls in all).
PHASES = (
    ("matching.snapshot", "take"),
    ("matching.engine", "clear"),
    ("matching.engine", "verify"),
    ("matching.services", "_plans"),
    ("matching.services", "_create_leases"),
    ("matching.services", "_transfers"),
    ("matching.services", "_order_events"),
    ("matching.services", "_notify_scheduled"),
    ("ledger.services", "open_batch"),
    ("ledger.services", "OpenBatch.write"),
    ("matching.services", "_copy"),
    ("matching.services", "_update_offers"),
)


@contextlib.contextmanager
def phases() -> Iterator[dict[str, float]]:
    """Seconds spent in each of ``PHASES`` and in the commit while the block runs."""
    import importlib

    from django.db.backends.base.base import BaseDatabaseWrapper

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    targets: list[tuple[Any, str, str]] = []  # owner, attribute, phase
    for module, path in PHASES:  # a function, or a class's method ("Class.method")
        owner: Any = importlib.import_module(module)
        *classes, name = path.split(".")
        for cls in classes:
            owner = getattr(owner, cls)
        targets.append((owner, name, path))
    targets.append((BaseDatabaseWrapper, "commit", "commit"))
    originals = [getattr(owner, name) for owner, name, _phase in targets]
    for (owner, name, phase), original in zip(targets, originals, strict=True):
        setattr(owner, name, timed(phase, original))
    try:
        yield spent
    finally:
        for (owner, name, _phase), original in zip(targets, originals, strict=True):
            setattr(owner, name, original)


def _server(statement: str, values: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A statement on the benchmark's server outside its database (autocommit, as CREATE and DROP
    DATABASE need): the maintenance database ``postgres``."""
    import psycopg
    from django.db import connection

    params = {**connection.get_connection_params(), "dbname": "postgres", "autocommit": True}
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params) as server, server.cursor() as cursor:
        cursor.execute(statement, values)
        return cursor.fetchall() if cursor.description else []


def _copy_database(source: str, target: str) -> None:
    """``target`` becomes a copy of ``source`` (file by file, which is quicker than through the
    WAL); every connection to either is closed first."""
    from django.db import connections

    connections.close_all()
    _server(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    _server(f'CREATE DATABASE "{target}" TEMPLATE "{source}" STRATEGY FILE_COPY')


def one_round() -> dict[str, Any]:
    """Clear the round on the database as built; the figures of that round."""
    from django.db import connection

    from marketplace.models import ClearingRound, Lease, Market
    from matching import services

    with connection.cursor() as cursor:
        # Every run starts right after a checkpoint: the first change to each page then writes
        # the whole page to the WAL, as a round that follows a checkpoint does (and in a market
        # clearing every minute under a five-minute checkpoint interval, most do).
        cursor.execute("CHECKPOINT")
        cursor.execute("SELECT pg_current_wal_lsn()")
        (wal_start,) = cursor.fetchone()
    market = Market.objects.get(slug="bench")
    with phases() as spent:
        started = time.perf_counter()
        outcome = services.clear_round(market=market, now=NOW)
        elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        # What the round wrote to the WAL (all of it committed and flushed before returning).
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_start])
        (wal_bytes,) = cursor.fetchone()
    rnd = ClearingRound.objects.get(pk=outcome.round.pk)
    return {
        "seconds": elapsed,
        "orders": rnd.orders,
        "offers": rnd.offers,
        "leases": Lease.objects.count(),
        "volume_units": rnd.volume_units,
        "mechanism": rnd.mechanism,
        "snapshot_and_engine_s": rnd.duration_ms / 1000,
        "wal_mb": round(float(wal_bytes) / 2**20, 1),
        "phases_s": {k: round(v, 3) for k, v in spent.items()},
        "certificate_violations": len(rnd.certificate["violations"]),
    }


def main() -> None:
    """Build the book once, keep a copy of the database, and clear ``ROUNDS`` rounds, each on a
    fresh copy. The figure is the fastest round (as the engine's is the fastest of its runs);
    every run's time and the median are printed too, and the phases of the fastest."""
    with django_stack():
        from django.db import connection

        database = connection.settings_dict["NAME"]
        built = f"{database}_bench_round_{ORDERS}"
        timings: dict[str, float] = {}
        if not _server("SELECT 1 FROM pg_database WHERE datname = %s", (built,)):
            timings = build()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            _copy_database(database, built)
        runs = []
        for _ in range(ROUNDS):
            _copy_database(built, database)
            runs.append(one_round())
        seconds = [r.pop("seconds") for r in runs]
        best = runs[seconds.index(min(seconds))]
        key = "round_10k_s" if QUICK else "round_100k_s"
        report(
            "matching_round",
            {
                key: round(min(seconds), 3),
                "runs_s": [round(s, 3) for s in seconds],
                "median_s": round(statistics.median(seconds), 3),
                **best,
                "target_s": 10 if not QUICK else None,
                **{k: round(v, 2) for k, v in timings.items()},
            },
        )


if __name__ == "__main__":
    main()
