"""Money ledger: transfer throughput (one per call, batched, hot vs spread accounts), sealing,
and verification of a million sealed transfers from an export file and from the database.

Everything goes through ``ledger.services`` against a real PostgreSQL (``_harness.django_stack``);
only the 10,000 "spread" accounts are created with ``bulk_create`` (set-up, not measured).

    .venv/bin/python benchmarks/ledger.py            # full: 1,000,000 transfers (several minutes)
    .venv/bin/python benchmarks/ledger.py --quick    # or BENCH_QUICK=1: ~10,000 transfers
    .venv/bin/python benchmarks/ledger.py --quick --profile single,batched,seal,verify_db

``--profile PHASES`` (or BENCH_PROFILE) runs the named phases under cProfile and prints the top
functions and a per-statement SQL time breakdown to stderr (figures are then inflated by the
profiler); ``--sql-times PHASES`` (BENCH_SQL_TIMES) prints only the SQL breakdown: every statement
sent through psycopg (Django's cursors and the ledger's raw ones), and commits, but not server-side
cursors' fetches, nor the forked callers of single_concurrent. Phases: setup, single,
single_concurrent, batched, hot, seal, bulk, seal_bulk, export, verify_file, verify_db.
BENCH_TARGET overrides the total number of transfers, BENCH_BULK_ACCOUNTS the accounts the filler
transfers use. Progress goes to stderr; the last line on stdout is the JSON report.
"""

from __future__ import annotations

import base64
import contextlib
import cProfile
import io
import os
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import django_stack, report

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"


def _phases(option: str, variable: str) -> set[str]:
    names = os.environ.get(variable, "")
    for n, arg in enumerate(sys.argv):
        if arg == option and n + 1 < len(sys.argv):
            names += "," + sys.argv[n + 1]
        elif arg.startswith(option + "="):
            names += "," + arg.split("=", 1)[1]
    return {name.strip() for name in names.split(",") if name.strip()}


PROFILE = _phases("--profile", "BENCH_PROFILE")  # cProfile + SQL time per statement
SQL_TIMES = _phases("--sql-times", "BENCH_SQL_TIMES") | PROFILE  # SQL time only (cheap)

# Sizes. The full run makes TARGET transfers in all (every phase's transfers count towards it).
if QUICK:
    SINGLE_CALLS = 300
    BATCH_SIZE = 1000
    BATCHES = 5
    HOT_ACCOUNTS = 10
    SPREAD_ACCOUNTS = 2_000
    HOT_BATCHES = 3  # each of hot and spread, interleaved
    TARGET = 30_000
    BULK_BATCH = 5_000
    OPEN_ACCOUNT_CALLS = 100
else:
    SINGLE_CALLS = 3_000
    BATCH_SIZE = 1000
    BATCHES = 50
    HOT_ACCOUNTS = 10
    SPREAD_ACCOUNTS = 10_000
    HOT_BATCHES = 20
    TARGET = 1_000_000
    BULK_BATCH = 10_000
    OPEN_ACCOUNT_CALLS = 500
DESTINATIONS = 8
CALLERS = 4  # concurrent callers for the one-transfer-per-call figure (each with its own wallet)
# The transfers that fill the ledger up to TARGET move money among this many accounts. Few on
# purpose: ``create_transfers`` costs O(batch size x accounts in the batch) in Python (see the
# report), so 10,000-transfer batches over 10,000 accounts would take over an hour for 1M.
BULK_ACCOUNTS = int(os.environ.get("BENCH_BULK_ACCOUNTS", "20"))
TARGET = int(os.environ.get("BENCH_TARGET", TARGET))
SEAL_LIMIT = 50_000
FUNDING = 10**12  # minor units credited to every wallet that pays
# Stop making transfers for the verification set after this long and scale the verify figures
# (reported as such) rather than run for an hour on a slow machine.
BULK_BUDGET_S = float(os.environ.get("BENCH_BULK_BUDGET_S", "1500"))

# Settings read when Django starts: checkpoints during sealing, no query log (a bulk insert of
# 10,000 transfers is megabytes of SQL; DEBUG would keep 9,000 of them), and a throwaway signing
# key so that nothing is written under var/.
os.environ.setdefault("LEDGER_CHECKPOINT_EVERY", "10000")
os.environ.setdefault("DEBUG", "0")
if not os.environ.get("LEDGER_SIGNING_KEY"):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    os.environ["LEDGER_SIGNING_KEY"] = base64.b64encode(
        Ed25519PrivateKey.generate().private_bytes_raw()
    ).decode()


def log(message: str) -> None:
    print(f"[ledger {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SqlTimes:
    """Database time per statement shape, taken on psycopg's cursors and connection: statements
    through Django's cursor and through ``ledger.db.raw_cursor`` alike (the ledger's hot paths
    use the latter), and each commit and rollback (where a durable commit waits for its flush)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @staticmethod
    def shape(sql: Any) -> str:
        sql = re.sub(r"\s+", " ", sql if isinstance(sql, str) else str(sql))
        sql = re.sub(r"\(%s(, %s)*\)(, \(%s(, %s)*\))*", "(...)", sql)
        sql = re.sub(r"IN \([^)]*\)", "IN (...)", sql)
        return sql.strip()[:150]

    def timed(self, method: Any, key: Any) -> Any:
        def wrapper(this: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(this, *args, **kwargs)
            finally:
                shape = key(args)
                self.seconds[shape] += time.perf_counter() - started
                self.calls[shape] += 1

        return wrapper

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        import psycopg

        methods = [
            (psycopg.Cursor, "execute", lambda args: self.shape(args[0])),
            (psycopg.Cursor, "executemany", lambda args: "many: " + self.shape(args[0])),
            (psycopg.Connection, "commit", lambda args: "COMMIT"),
            (psycopg.Connection, "rollback", lambda args: "ROLLBACK"),
        ]
        originals = [(cls, name, getattr(cls, name)) for cls, name, _key in methods]
        for (cls, name, original), (_cls, _name, key) in zip(originals, methods, strict=True):
            setattr(cls, name, self.timed(original, key))
        try:
            yield
        finally:
            for cls, name, original in originals:
                setattr(cls, name, original)

    def dump(self, total: float) -> str:
        lines = [f"  SQL time {sum(self.seconds.values()):.3f}s of {total:.3f}s wall:"]
        for key, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1])[:12]:
            lines.append(f"    {seconds:8.3f}s {self.calls[key]:7d}x  {key}")
        return "\n".join(lines)


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time a phase (into ``timings[name]``); profile it if asked to."""
    log(f"{name} ...")
    profiler = cProfile.Profile() if name in PROFILE else None
    sql = SqlTimes() if name in SQL_TIMES else None
    with sql.patched() if sql else contextlib.nullcontext():
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            if profiler:
                profiler.disable()
    timings[name] = elapsed
    log(f"{name}: {elapsed:.3f}s")
    out = io.StringIO()
    if profiler:
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
    if sql:
        print(f"===== profile of {name}\n{sql.dump(elapsed)}\n{out.getvalue()}", file=sys.stderr)


def main() -> None:
    wall_started = time.perf_counter()
    export_dir = Path(tempfile.mkdtemp(prefix="suanli-ledger-export-"))
    try:
        with django_stack():
            figures = run(export_dir)
    finally:
        shutil.rmtree(export_dir, ignore_errors=True)
    figures["wall_s"] = round(time.perf_counter() - wall_started, 1)
    report("ledger", figures)


def run(export_dir: Path) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from ledger import export, verify
    from ledger.models import Account, AccountFlags, Purpose, SealQueue, Transfer
    from ledger.services import NewTransfer, Result, create_transfers, open_account, seal
    from ledger.signing import public_key_bytes

    rng = random.Random(20240601)
    timings: dict[str, float] = {}
    counts: dict[str, int] = defaultdict(int)
    now = timezone.now

    def submit(batch: list[NewTransfer], what: str) -> None:
        results = create_transfers(batch, now=now())
        bad = [r for r in results if r != Result.OK]
        if bad:
            raise SystemExit(f"{what}: {len(bad)} transfers failed, e.g. {bad[:3]}")
        counts[what] += len(batch)

    def new_id() -> uuid.UUID:
        return uuid.uuid4()

    # ------------------------------------------------------------------ accounts and funding
    with phase("setup", timings):
        cny = "CNY"
        clearing = open_account(
            owner="platform", purpose=Purpose.STRIPE_CLEARING, currency=cny, now=now()
        ).pk  # no flags: money enters the ledger here
        source = open_account(owner="bench:source", purpose=Purpose.WALLET, currency=cny, now=now())
        destinations = [
            open_account(owner=f"bench:dest{i}", purpose=Purpose.WALLET, currency=cny, now=now()).pk
            for i in range(DESTINATIONS)
        ]
        hot = [
            open_account(owner=f"bench:hot{i}", purpose=Purpose.WALLET, currency=cny, now=now()).pk
            for i in range(HOT_ACCOUNTS)
        ]
        started = time.perf_counter()
        spread = [
            open_account(
                owner=f"bench:spread{i}", purpose=Purpose.WALLET, currency=cny, now=now()
            ).pk
            for i in range(OPEN_ACCOUNT_CALLS)
        ]
        open_account_seconds = time.perf_counter() - started
        created = Account.objects.bulk_create(
            [
                Account(
                    owner=f"bench:spread{i}",
                    purpose=Purpose.WALLET,
                    currency=cny,
                    flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                    created_at=now(),
                )
                for i in range(OPEN_ACCOUNT_CALLS, SPREAD_ACCOUNTS)
            ],
            batch_size=5000,
        )
        spread += [a.pk for a in created]
        caller_wallets = [
            open_account(
                owner=f"bench:caller{i}", purpose=Purpose.WALLET, currency=cny, now=now()
            ).pk
            for i in range(CALLERS)
        ]
        payers = [source.pk, *caller_wallets, *hot, *spread]
        for start in range(0, len(payers), BATCH_SIZE):
            submit(
                [
                    NewTransfer(
                        id=new_id(), debit_account_id=clearing, credit_account_id=a, amount=FUNDING
                    )
                    for a in payers[start : start + BATCH_SIZE]
                ],
                "funding",
            )

    # ------------------------------------------------------------------ one transfer per call
    with phase("single", timings):
        for i in range(SINGLE_CALLS):
            submit(
                [
                    NewTransfer(
                        id=new_id(),
                        debit_account_id=source.pk,
                        credit_account_id=destinations[i % DESTINATIONS],
                        amount=1 + i % 97,
                    )
                ],
                "single",
            )

    # ------------------------------------------------------------------ one per call, concurrent
    # Each durable commit waits for its WAL flush; callers in parallel share flushes (group
    # commit), as a busy exchange's web workers do. Each caller pays from its own wallet.
    def caller(index: int) -> None:
        for i in range(SINGLE_CALLS // CALLERS):
            results = create_transfers(
                [
                    NewTransfer(
                        id=new_id(),
                        debit_account_id=caller_wallets[index],
                        credit_account_id=destinations[i % DESTINATIONS],
                        amount=1 + i % 97,
                    )
                ],
                now=now(),
            )
            if results != [Result.OK]:
                os._exit(3)
        connection.close()
        os._exit(0)

    with phase("single_concurrent", timings):
        connection.close()
        children = []
        for index in range(CALLERS):
            pid = os.fork()
            if pid == 0:  # child: a fresh database connection of its own
                try:
                    caller(index)
                finally:
                    os._exit(4)
            children.append(pid)
        statuses = [os.waitpid(pid, 0)[1] for pid in children]
        if any(statuses):
            raise SystemExit(f"concurrent single transfers failed: {statuses}")
        counts["single_concurrent"] = CALLERS * (SINGLE_CALLS // CALLERS)

    # ------------------------------------------------------------------ batches of 1,000
    with phase("batched", timings):
        for b in range(BATCHES):
            submit(
                [
                    NewTransfer(
                        id=new_id(),
                        debit_account_id=source.pk,
                        credit_account_id=destinations[(b + i) % DESTINATIONS],
                        amount=1 + i % 97,
                    )
                    for i in range(BATCH_SIZE)
                ],
                "batched",
            )

    # ------------------------------------------------------------------ hot vs spread accounts
    def random_batch(accounts: list[int]) -> list[NewTransfer]:
        batch = []
        for _ in range(BATCH_SIZE):
            debit, credit = rng.sample(accounts, 2)
            batch.append(
                NewTransfer(
                    id=new_id(),
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount=rng.randint(1, 10_000),
                )
            )
        return batch

    hot_seconds = spread_seconds = 0.0
    with phase("hot", timings):
        for _ in range(HOT_BATCHES):  # interleaved, so background load hits both alike
            started = time.perf_counter()
            submit(random_batch(hot), "hot")
            hot_seconds += time.perf_counter() - started
            started = time.perf_counter()
            submit(random_batch(spread), "spread")
            spread_seconds += time.perf_counter() - started

    # ------------------------------------------------------------------ sealing a backlog
    def seal_all() -> tuple[int, int]:
        sealed = calls = 0
        while n := seal(now=now(), limit=SEAL_LIMIT):
            sealed += n
            calls += 1
        return sealed, calls

    backlog = SealQueue.objects.count()
    with phase("seal", timings):
        sealed_backlog, _ = seal_all()
    assert sealed_backlog == backlog, (sealed_backlog, backlog)

    # ------------------------------------------------------------------ up to TARGET transfers
    remaining = TARGET - Transfer.objects.count()
    bulk_accounts = spread[:BULK_ACCOUNTS]
    bulk_scaled = False
    with phase("bulk", timings):
        started = time.perf_counter()
        batches_done = 0
        while remaining > 0:
            size = min(BULK_BATCH, remaining)
            batch = []
            for _ in range(size):
                debit, credit = rng.sample(bulk_accounts, 2)
                batch.append(
                    NewTransfer(
                        id=new_id(),
                        debit_account_id=debit,
                        credit_account_id=credit,
                        amount=rng.randint(1, 10_000),
                        metadata={"ref": "bench"} if rng.random() < 0.1 else {},
                    )
                )
            submit(batch, "bulk")
            remaining -= size
            batches_done += 1
            elapsed = time.perf_counter() - started
            if batches_done % 10 == 0:
                rate = counts["bulk"] / elapsed
                log(
                    f"bulk: {counts['bulk']:,} in {elapsed:.0f}s ({rate:,.0f}/s), "
                    f"{remaining:,} to go, ~{remaining / rate:.0f}s"
                )
            if elapsed > BULK_BUDGET_S and remaining > 0:
                log(f"bulk: over the {BULK_BUDGET_S:.0f}s budget, stopping; verify is scaled")
                bulk_scaled = True
                break
    backlog_bulk = SealQueue.objects.count()
    with phase("seal_bulk", timings):
        sealed_bulk, _ = seal_all()
    assert sealed_bulk == backlog_bulk, (sealed_bulk, backlog_bulk)

    # ------------------------------------------------------------------ export and verification
    public_key = public_key_bytes()
    with phase("export", timings):
        exported, exported_checkpoints = export.export_ledger(export_dir)
    with phase("verify_file", timings):
        file_report = export.verify_export(export_dir, public_key=public_key)
    with connection.cursor() as cursor:  # a fresh view of the tables for the planner
        cursor.execute("ANALYZE")
    with phase("verify_db", timings):
        db_report = verify.verify(public_key=public_key)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT currency, SUM(credits_posted - debits_posted), "
            "SUM(credits_pending - debits_pending), COUNT(*) FROM ledger_account GROUP BY currency"
        )
        balances = cursor.fetchall()
        cursor.execute("SELECT pg_database_size(current_database())")
        database_bytes = cursor.fetchone()[0]
    transfers_total = Transfer.objects.count()
    for problem in (file_report.problems or []) + (db_report.problems or []):
        log(f"verify problem: {problem}")

    verified = db_report.transfers
    scale = 1_000_000 / verified if verified else 0.0
    ok = file_report.ok and db_report.ok and file_report.transfers == exported == transfers_total

    def per_s(n: int, seconds: float) -> float:
        return round(n / seconds, 1) if seconds else 0.0

    batched_rate = per_s(counts["batched"], timings["batched"])
    hot_rate = per_s(counts["hot"], hot_seconds)
    spread_rate = per_s(counts["spread"], spread_seconds)
    return {
        "quick": QUICK,
        "profiled_phases": sorted(PROFILE),
        "single_transfers_per_s": per_s(counts["single_concurrent"], timings["single_concurrent"]),
        "single_callers": CALLERS,
        "single_sequential_per_s": per_s(counts["single"], timings["single"]),
        "single_ms_mean": round(1000 * timings["single"] / SINGLE_CALLS, 3),
        "batched_transfers_per_s": batched_rate,
        "hot_account_ratio": round(hot_rate / spread_rate, 3) if spread_rate else None,
        "hot_batched_transfers_per_s": hot_rate,
        "spread_batched_transfers_per_s": spread_rate,
        "seal_transfers_per_s": per_s(sealed_backlog, timings["seal"]),
        "seal_backlog": sealed_backlog,
        "seal_bulk_transfers_per_s": per_s(sealed_bulk, timings["seal_bulk"]),
        "seal_bulk_backlog": sealed_bulk,
        "seal_limit": SEAL_LIMIT,
        "bulk_transfers": counts["bulk"],
        "bulk_batch_size": BULK_BATCH,
        "bulk_accounts": BULK_ACCOUNTS,
        "bulk_s": round(timings["bulk"], 1),
        "bulk_transfers_per_s": per_s(counts["bulk"], timings["bulk"]),
        "bulk_stopped_at_budget": bulk_scaled,
        "export_s": round(timings["export"], 2),
        "exported_transfers": exported,
        "checkpoints": exported_checkpoints,
        "checkpoint_every": settings.LEDGER_CHECKPOINT_EVERY,
        "verified_transfers": verified,
        "verify_file_s": round(timings["verify_file"], 2),
        "verify_db_s": round(timings["verify_db"], 2),
        # Per million transfers: equal to the measured times when 1,000,000 were verified.
        "verify_1m_file_s": round(timings["verify_file"] * scale, 2),
        "verify_1m_db_s": round(timings["verify_db"] * scale, 2),
        "verify_scaled_from": None if verified == 1_000_000 else verified,
        "verify_ok": ok,
        "verify_file_checkpoints": file_report.checkpoints,
        "verify_db_checkpoints": db_report.checkpoints,
        "imbalance": sum(int(row[1]) for row in balances),
        "imbalance_pending": sum(int(row[2]) for row in balances),
        "imbalance_by_currency": {row[0]: int(row[1]) for row in balances},
        "accounts": sum(row[3] for row in balances),
        "open_account_per_s": per_s(OPEN_ACCOUNT_CALLS, open_account_seconds),
        "setup_s": round(timings["setup"], 1),
        "transfers_total": transfers_total,
        "database_mb": round(database_bytes / 2**20),
        "sizes": {
            "single_calls": SINGLE_CALLS,
            "batch_size": BATCH_SIZE,
            "batches": BATCHES,
            "destinations": DESTINATIONS,
            "hot_accounts": HOT_ACCOUNTS,
            "spread_accounts": SPREAD_ACCOUNTS,
            "hot_and_spread_batches_each": HOT_BATCHES,
            "funding_transfers": counts["funding"],
            "target_transfers": TARGET,
        },
    }


if __name__ == "__main__":
    main()
