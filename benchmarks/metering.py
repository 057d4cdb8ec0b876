"""Metering and settlement at scale, through the real services and PostgreSQL.

A round clears ~10,000 leases (the matching round's book, grown to fit); agents' heartbeats for
ten minutes of every lease are recorded in batches of 1,000 (``ledger.metering.record``); then one
settlement pass (``leases.settle_due``) values and pays them.

    make bench NAME=metering            # BENCH_QUICK=1: ~1,000 leases

Then the agent API over HTTP: gunicorn (3 workers × 4 threads) and 4 client threads posting
signed batches of 1,000 heartbeats to ``POST /api/v1/agent/events`` (``usage_events_per_s``).

Prints ``usage_events_per_s`` (HTTP), ``record_events_per_s`` (service level, batches of 1,000),
``settle_10k_leases_s`` and the ledger's conservation after it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _matching_round as book
from _harness import django_stack, report, serve

QUICK = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
MINUTES = 10
BATCH = 1000
CLIENTS = 4
HTTP_MINUTES = 3 if QUICK else 10  # minutes of heartbeats per lease posted over HTTP


def agent_key() -> tuple[str, str]:
    """A provider-agent key of the benchmark's provider: (bearer secret, signing key)."""
    from marketplace.accounts import services as accounts_services
    from marketplace.models import ApiKey, Organization, User

    provider = Organization.objects.get(legal_name="Provider")
    user = User.objects.create_user("agent@bench.test", "bench-password-123")
    api_key, secret = accounts_services.create_api_key(
        organization=provider, created_by=user, name="bench agent", scopes=["provider-agent"]
    )
    return secret, ApiKey.objects.get(pk=api_key.pk).secret_hash


def post_batches(
    port: int, secret: str, signing: str, bodies: list[bytes], errors: list[str]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for body in bodies:
        digest = hmac.new(signing.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            "X-Suanli-Signature": f"sha256={digest}",
        }
        connection.request("POST", "/api/v1/agent/events", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            errors.append(f"{response.status} {payload[:200]!r}")
    connection.close()


def http_phase(leases: list[tuple[str, int]]) -> dict[str, object]:
    secret, signing = agent_key()
    events = [
        {
            "specversion": "1.0",
            "id": f"http:{public_id}:{m}",
            "source": "bench-http-agent",
            "type": "com.suanli.heartbeat",
            "subject": f"lease:{public_id}",
            "time": (book.NOW + dt.timedelta(minutes=MINUTES + m, seconds=5)).isoformat(),
            "data": {"units_up": units},
        }
        for public_id, units in leases
        for m in range(HTTP_MINUTES)
    ]
    bodies = [
        json.dumps({"events": events[i : i + BATCH]}).encode() for i in range(0, len(events), BATCH)
    ]
    errors: list[str] = []
    with serve() as port:
        threads = [
            threading.Thread(
                target=post_batches, args=(port, secret, signing, bodies[i::CLIENTS], errors)
            )
            for i in range(CLIENTS)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    return {
        "http_events": len(events),
        "usage_events_per_s": round(len(events) / elapsed),
        "http_errors": len(errors),
        "http_error_samples": errors[:3],
    }


def main() -> None:
    book.ORDERS = 2_000 if QUICK else 17_000  # about 60% of orders become leases
    with django_stack():
        from django.db import connection
        from django.db.models import Sum

        from ledger import metering
        from ledger.models import Entry
        from marketplace.leases import services as leases_services
        from marketplace.models import Lease, Market, Settlement
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
        settled = leases_services.settle_due(now=book.NOW + dt.timedelta(minutes=MINUTES))
        settling = time.perf_counter() - started

        figures = http_phase([(str(lease.public_id), lease.units) for lease in all_leases])
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
                **figures,
                "targets": {"usage_events_per_s": ">= 5000 (HTTP)", "settle_10k_leases_s": "<= 10"},
            },
        )


if __name__ == "__main__":
    main()
