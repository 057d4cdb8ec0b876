"""Order placement through the HTTP API under load.

gunicorn serves the app on the embedded PostgreSQL and Redis; client threads on loopback post
orders with bearer keys of several buyer organizations (each order holds real money in the
ledger) and the script reports throughput and latency percentiles.

    make bench NAME=api_orders              # BENCH_QUICK=1 for a short run
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import statistics
import threading
import time
import uuid

from _harness import django_stack, report, serve

QUICK = os.environ.get("BENCH_QUICK") == "1"
CLIENTS = 16
ORDERS = 600 if QUICK else 6000
BUYERS = 8
WARMUP = 50


def setup() -> list[str]:
    """Buyers with funded wallets and trade keys, a market, and a device; returns the keys."""
    import uuid as _uuid

    from django.core.management import call_command
    from django.utils import timezone

    from ledger import services as ledger
    from marketplace.accounts import services
    from marketplace.models import KybStatus, Organization, User

    call_command("loaddata", "catalog", "markets", verbosity=0)
    now = timezone.now()
    source = ledger.open_account(owner="platform", purpose="adjustment", currency="CNY", now=now)
    keys = []
    for n in range(BUYERS):
        user = User.objects.create_user(f"buyer{n}@bench.test", "bench-password-123")
        org = services.create_organization(
            user=user,
            legal_name=f"Buyer {n}",
            country="CN",
            registration_id=f"BENCH-{n}",
            is_provider=False,
            is_buyer=True,
        )
        Organization.objects.filter(pk=org.pk).update(kyb_status=KybStatus.APPROVED)
        wallet = ledger.open_account(
            owner=f"org:{org.public_id}", purpose="wallet", currency="CNY", now=now
        )
        ledger.transfer(
            ledger.NewTransfer(
                id=_uuid.uuid4(),
                debit_account_id=source.pk,
                credit_account_id=wallet.pk,
                amount=10**12,
            ),
            now=now,
        )
        _key, secret = services.create_api_key(
            organization=org, created_by=user, name="bench", scopes=["read", "trade"]
        )
        keys.append(secret)
    return keys


def order_body(now: dt.datetime, n: int) -> bytes:
    start = now + dt.timedelta(hours=1 + n % 5)
    return json.dumps(
        {
            "market": "cny",
            "quantity": str(1 + n % 8),
            "limit_price": f"{40 + n % 50}.00",
            "duration_hours": 1 + n % 48,
            "earliest_start": start.isoformat(),
            "latest_start": (start + dt.timedelta(hours=2)).isoformat(),
            "device_models": ["nvidia-h100-sxm", "nvidia-h200-sxm"][: 1 + n % 2],
            "allowed_jurisdictions": ["CN"],
        }
    ).encode()


def client(
    port: int,
    keys: list[str],
    jobs: list[int],
    latencies: list[float],
    errors: list[str],
    now: dt.datetime,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in jobs:
        body = order_body(now, n)
        headers = {
            "Authorization": f"Bearer {keys[n % len(keys)]}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/orders", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        if response.status != 201:
            errors.append(f"{response.status} {payload[:200]!r}")
    connection.close()


def run_load(
    port: int, keys: list[str], count: int, offset: int
) -> tuple[float, list[float], list[str]]:
    from django.utils import timezone

    now = timezone.now()
    latencies: list[float] = []
    errors: list[str] = []
    jobs = [list(range(offset + i, offset + count, CLIENTS)) for i in range(CLIENTS)]
    threads = [
        threading.Thread(target=client, args=(port, keys, job, latencies, errors, now))
        for job in jobs
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, errors


def main() -> None:
    with django_stack():
        keys = setup()
        with serve() as port:
            run_load(port, keys, WARMUP, 0)  # connections, caches, query plans
            elapsed, latencies, errors = run_load(port, keys, ORDERS, WARMUP)
        from marketplace.models import Order

        placed = Order.objects.count()
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    report(
        "api_orders",
        {
            "orders": ORDERS,
            "clients": CLIENTS,
            "buyers": BUYERS,
            "orders_per_s": round(ORDERS / elapsed, 1),
            "p50_ms": percentile(0.50),
            "p95_ms": percentile(0.95),
            "p99_ms": percentile(0.99),
            "mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
            "errors": len(errors),
            "error_samples": errors[:3],
            "orders_in_db": placed,
        },
    )


if __name__ == "__main__":
    main()
