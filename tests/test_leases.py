"""Leases from clearing to the last settlement: metered delivery pays the provider exactly, the
buyer gets the rest back, SLA misses are credited, replays count once, reclaims need notice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from ledger import metering
from ledger.models import Account, Entry, Transfer
from ledger.services import seal
from ledger.verify import verify
from marketplace.access import Principal
from marketplace.errors import Forbidden
from marketplace.models import Lease, LeaseStatus, Market, Organization, Pool, Settlement
from marketplace.services import leases
from matching import services as matching
from tests.test_clearing import list_offer, place
from tests.test_market import HOUR, NOW, funded_buyer, h100, market, pool, seller, site

__all__ = ["funded_buyer", "h100", "market", "pool", "seller", "site"]  # fixtures, re-exported

pytestmark = pytest.mark.django_db
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def lease(market: Market, seller: Principal, pool: Pool, funded_buyer: Principal) -> Lease:
    """4 units × 10 h at 80.00 per unit-hour: cost 320,000 + 1% buyer fee 3,200 (fen)."""
    list_offer(seller, market, pool)
    place(funded_buyer, market)
    matching.clear_round(market=market, now=NOW)
    return Lease.objects.get()


def heartbeats(
    lease: Lease, minutes: range, *, units: int = 4, source: str = "agent-1"
) -> list[metering.Outcome]:
    events = [
        metering.Event(
            source=source,
            event_id=f"hb-{m}",
            type=metering.HEARTBEAT,
            subject=leases.subject(lease),
            time=NOW + m * MINUTE + dt.timedelta(seconds=7),
            data={"units_up": units},
        )
        for m in minutes
    ]
    return metering.record(events, now=NOW + 10 * HOUR, not_before=NOW - HOUR)


def balance(owner: str, purpose: str) -> int:
    totals = Account.objects.filter(owner=owner, purpose=purpose).aggregate(
        c=Sum("credits_posted"), d=Sum("debits_posted")
    )
    return (totals["c"] or 0) - (totals["d"] or 0)


def test_delivery_pays_the_provider_exactly_and_the_buyer_gets_the_rest(
    lease: Lease, buyer_org: Organization, provider_org: Organization
) -> None:
    assert set(heartbeats(lease, range(60))) == {metering.Outcome.ACCEPTED}  # one hour, 4 units
    leases.acknowledge(lease=lease, actor="key:agent", now=NOW)
    leases.mark_ready(lease=lease, actor="key:agent", now=NOW)

    first = leases.settle(lease=lease, now=NOW + HOUR)

    # 4 unit-hours at 80.00 = 32,000; 3% platform fee 960; buyer fee share 3,200 × 4/40 = 320.
    assert first is not None
    assert (first.delivered_unit_seconds, first.charge, first.platform_fee, first.buyer_fee) == (
        14_400,
        32_000,
        960,
        320,
    )
    assert leases.settle(lease=lease, now=NOW + HOUR) is None  # nothing new: nothing posted
    transfers = Transfer.objects.count()

    ended = leases.end_lease(lease=lease, how="cancelled", actor="user:buyer", now=NOW + HOUR)

    final = Settlement.objects.get(lease=lease, final=True)
    assert (ended.status, ended.close_reason, ended.closed_at) == (
        LeaseStatus.CANCELLED,
        "cancelled",
        NOW + HOUR,
    )
    assert (final.charge, final.sla_credit, final.availability) == (0, 0, Decimal(1))
    assert final.refund == 323_200 - 32_000 - 320  # the buyer ended early: the rest comes back
    assert Transfer.objects.count() == transfers + 1  # the refund only
    buyer, provider = f"org:{buyer_org.public_id}", f"org:{provider_org.public_id}"
    assert balance(buyer, "wallet") == 1_000_000 - 32_000 - 320
    assert balance(buyer, "order_hold") == 0
    assert balance(provider, "provider_payable") == 32_000 - 960
    assert balance("platform", "platform_fee_revenue") == 960 + 320
    # Conservation and the books: Σ entries is zero; the sealed ledger verifies.
    totals = Entry.objects.aggregate(c=Sum("credits_posted"), d=Sum("debits_posted"))
    assert totals["c"] == totals["d"]
    seal(now=NOW + 2 * HOUR)
    report = verify()
    assert report.ok, report.problems
    assert leases.end_lease(lease=lease, how="completed", actor="x", now=NOW + 2 * HOUR) == ended


def test_a_replayed_batch_is_counted_once(lease: Lease) -> None:
    heartbeats(lease, range(30))
    leases.settle(lease=lease, now=NOW + HOUR)
    transfers = Transfer.objects.count()

    replay = heartbeats(lease, range(30))

    assert set(replay) == {metering.Outcome.DUPLICATE}
    assert leases.settle(lease=lease, now=NOW + HOUR) is None
    assert Transfer.objects.count() == transfers


def test_a_late_heartbeat_is_an_adjustment_in_the_next_settlement(lease: Lease) -> None:
    heartbeats(lease, range(0, 30))
    first = leases.settle(lease=lease, now=NOW + HOUR)

    heartbeats(lease, range(30, 45), source="agent-2")  # arrived late, inside grace
    second = leases.settle(lease=lease, now=NOW + HOUR)

    assert first is not None and second is not None
    assert (first.charge, second.charge) == (16_000, 8_000)  # 2 unit-hours, then 1
    assert second.delivered_unit_seconds == 45 * 60 * 4


def test_missed_availability_is_credited_to_the_buyer(
    lease: Lease, buyer_org: Organization, provider_org: Organization
) -> None:
    heartbeats(lease, range(30))  # 30 of 60 minutes

    leases.end_lease(lease=lease, how="failed", actor="key:agent", now=NOW + HOUR)

    final = Settlement.objects.get(lease=lease, final=True)
    # Half the hour delivered: 2 unit-hours = 16,000; availability 0.5 < 99.5% → 10% back.
    assert (final.charge, final.availability, final.sla_credit) == (16_000, Decimal("0.5"), 1_600)
    provider = f"org:{provider_org.public_id}"
    assert balance(provider, "provider_payable") == 16_000 - 480 - 1_600
    assert balance(f"org:{buyer_org.public_id}", "wallet") == 1_000_000 - 16_000 - 160 + 1_600


def test_a_reclaim_needs_notice(lease: Lease) -> None:
    before = (Lease.objects.get().reclaim_at, lease.events.count())

    with pytest.raises(Forbidden) as refused:
        leases.give_reclaim_notice(lease=lease, actor="key:provider", at=NOW + 30 * MINUTE, now=NOW)

    assert refused.value.code == "reclaim_notice_too_short"
    assert (Lease.objects.get().reclaim_at, lease.events.count()) == before


def test_a_reclaim_with_notice_refunds_and_pays_a_penalty(
    lease: Lease, buyer_org: Organization
) -> None:
    heartbeats(lease, range(120))  # two full hours
    leases.give_reclaim_notice(lease=lease, actor="key:provider", at=NOW + 2 * HOUR, now=NOW)

    assert leases.end_due_leases(now=NOW + 2 * HOUR) == 1

    final = Settlement.objects.get(lease=lease, final=True)
    charged = 64_000  # 8 unit-hours
    penalty = (320_000 - charged) // 10  # 10% of the undelivered value
    assert Lease.objects.get().status == LeaseStatus.RECLAIMED
    assert (final.charge, final.sla_credit) == (charged, penalty)
    assert balance(f"org:{buyer_org.public_id}", "wallet") == (1_000_000 - charged - 640 + penalty)


def test_leases_complete_at_their_end_time(lease: Lease) -> None:
    heartbeats(lease, range(600))  # the whole 10 hours

    assert leases.end_due_leases(now=NOW + 10 * HOUR) == 1

    final = Settlement.objects.get(lease=lease, final=True)
    done = Lease.objects.get()
    assert (done.status, done.closed_by, done.closed_at) == (
        LeaseStatus.COMPLETED,
        "system:end-time",
        NOW + 10 * HOUR,
    )
    assert (final.charge, final.buyer_fee, final.refund) == (320_000, 3_200, 0)


def test_events_too_far_ahead_or_too_late_are_refused() -> None:
    events = [
        metering.Event("a", "1", metering.HEARTBEAT, "lease:x", NOW + 6 * MINUTE),
        metering.Event("a", "2", metering.HEARTBEAT, "lease:x", NOW - 2 * HOUR),
        metering.Event("a", "3", metering.HEARTBEAT, "lease:x", NOW),
        metering.Event("a", "3", metering.HEARTBEAT, "lease:x", NOW),
    ]

    outcomes = metering.record(events, now=NOW, not_before=NOW - HOUR)

    assert outcomes == [
        metering.Outcome.IN_THE_FUTURE,
        metering.Outcome.TOO_LATE,
        metering.Outcome.ACCEPTED,
        metering.Outcome.DUPLICATE,
    ]


def test_the_periodic_settlement_settles_each_live_lease_once(lease: Lease) -> None:
    heartbeats(lease, range(60))

    assert leases.settle_due(now=NOW + HOUR) == 1
    assert leases.settle_due(now=NOW + HOUR) == 0  # a re-run finds nothing new

    settlement = Settlement.objects.get()
    assert (settlement.delivered_unit_seconds, settlement.charge, settlement.final) == (
        14_400,
        32_000,
        False,
    )
    assert Transfer.objects.filter(metadata__lease=str(lease.public_id)).count() == 2
