"""Metering and settlement at scale, through the real services and PostgreSQL.

A round clears ~10,000 leases (the matching round's book, grown to fit); agents' heartbeats for
ten minutes of every lease are recorded in batches of 1,000 (``ledger.metering.record``); then one
settlement pass (``leases.settle_due``) values and pays them.

    make bench NAME=metering            # BENCH_QUICK=1: ~1,000 leases

Prints ``record_events_per_s`` (service level, batches of 1,000), ``settle_10k_leases_s`` and the
ledger's conservation after it.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _matching_round as book
from _harness import django_stack, report

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
MINUTES = 10
BATCH = 1000


def main() -> None:
    book.ORDERS = 2_000 if QUICK else 17_000  # about 60% of orders become leases
    with django_stack():
        from django.db import connection
        from django.db.models import Sum

        from ledger import metering
        from ledger.models import Entry
        from marketplace.models import Lease, Market, Settlement
        from marketplace.services import leases
        from matching import services as matching

        book.build()
        market = Market.objects.get(slug="bench")
        matching.clear_round(market=market, now=book.NOW)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        all_leases = list(Lease.objects.only("public_id", "units"))
        events = [
            metering.Event(
                source="bench-agent",
                event_id=f"{lease.public_id}:{m}",
                type=metering.HEARTBEAT,
                subject=f"lease:{lease.public_id}",
                time=book.NOW + dt.timedelta(minutes=m, seconds=5),
                data={"units_up": lease.units},
            )
            for lease in all_leases
            for m in range(MINUTES)
        ]
        started = time.perf_counter()
        for i in range(0, len(events), BATCH):
            metering.record(
                events[i : i + BATCH],
                now=book.NOW + dt.timedelta(minutes=MINUTES),
                not_before=book.NOW - dt.timedelta(hours=1),
            )
        recorded = time.perf_counter() - started

        started = time.perf_counter()
        settled = leases.settle_due(now=book.NOW + dt.timedelta(minutes=MINUTES))
        settling = time.perf_counter() - started

        totals = Entry.objects.aggregate(c=Sum("credits_posted"), d=Sum("debits_posted"))
        charged = Settlement.objects.aggregate(s=Sum("charge"))["s"] or 0
        report(
            "metering",
            {
                "leases": len(all_leases),
                "events": len(events),
                "record_events_per_s": round(len(events) / recorded),
                "settled_leases": settled,
                "settle_s": round(settling, 2),
                "settle_10k_leases_s": round(settling * 10_000 / max(settled, 1), 2),
                "settle_leases_per_s": round(settled / settling),
                "charged_minor": charged,
                "imbalance": (totals["c"] or 0) - (totals["d"] or 0),
                "targets": {"usage_events_per_s": ">= 5000 (HTTP)", "settle_10k_leases_s": "<= 10"},
            },
        )


if __name__ == "__main__":
    main()
