"""Leases from clearing to the last settlement: metered delivery pays the provider exactly, the
buyer gets the rest back, SLA misses are credited, replays count once, reclaims need notice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from ledger import metering
from ledger.models import Entry, Transfer
from ledger.services import seal
from ledger.verify import verify
from marketplace.core.errors import Forbidden
from marketplace.leases import services as leases_services
from marketplace.models import Lease, LeaseStatus, Organization, Settlement
from tests.fixtures.clearing import MINUTE, balance, heartbeats
from tests.fixtures.market import HOUR, NOW

pytestmark = pytest.mark.django_db


def test_delivery_pays_the_provider_exactly_and_the_buyer_gets_the_rest(
    lease: Lease, buyer_org: Organization, provider_org: Organization
) -> None:
    assert set(heartbeats(lease, range(60))) == {metering.Outcome.ACCEPTED}  # one hour, 4 units
    leases_services.acknowledge(lease=lease, actor="key:agent", now=NOW)
    leases_services.mark_ready(lease=lease, actor="key:agent", now=NOW)

    first = leases_services.settle(lease=lease, now=NOW + HOUR)

    # 4 unit-hours at 80.00 = 32,000; 3% platform fee 960; buyer fee share 3,200 × 4/40 = 320.
    assert first is not None
    assert (first.delivered_unit_seconds, first.charge, first.platform_fee, first.buyer_fee) == (
        14_400,
        32_000,
        960,
        320,
    )
    assert (
        leases_services.settle(lease=lease, now=NOW + HOUR) is None
    )  # nothing new: nothing posted
    transfers = Transfer.objects.count()

    ended = leases_services.end_lease(
        lease=lease, how="cancelled", actor="user:buyer", now=NOW + HOUR
    )

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
    assert (
        leases_services.end_lease(lease=lease, how="completed", actor="x", now=NOW + 2 * HOUR)
        == ended
    )


def test_a_lease_without_heartbeats_pays_nobody_and_the_buyer_gets_everything_back(
    lease: Lease, buyer_org: Organization, provider_org: Organization
) -> None:
    # given a lease whose provider's agent never reports, and a settlement pass an hour in
    buyer, provider = f"org:{buyer_org.public_id}", f"org:{provider_org.public_id}"
    assert balance(buyer, "order_hold") == 323_200  # cost and buyer fee, held at clearing
    assert leases_services.settle_due(now=NOW + HOUR) == 0  # nothing delivered: nothing to settle

    # when the buyer ends it early
    leases_services.end_lease(lease=lease, how="cancelled", actor="user:buyer", now=NOW + HOUR)

    # then nobody is paid for a minute, the buyer gets all of it back, the hold is empty
    [final] = Settlement.objects.filter(lease=lease)
    assert (final.delivered_unit_seconds, final.charge, final.buyer_fee, final.platform_fee) == (
        0,
        0,
        0,
        0,
    )
    assert (final.refund, final.sla_credit, final.adjustment) == (323_200, 0, 0)
    assert balance(buyer, "wallet") == 1_000_000
    assert balance(buyer, "order_hold") == 0
    assert balance(provider, "provider_payable") == 0
    assert balance("platform", "platform_fee_revenue") == 0
    seal(now=NOW + 2 * HOUR)
    report = verify()
    assert report.ok, report.problems


def test_a_final_count_below_what_was_paid_is_made_good_by_the_platform(
    lease: Lease, buyer_org: Organization, provider_org: Organization
) -> None:
    # given a settlement that paid for 30 minutes (as the phantom-minute defect once did) that the
    # final count of the heartbeats will not find
    heartbeats(lease, range(30))
    first = leases_services.settle(lease=lease, now=NOW + HOUR)
    assert first is not None and (first.charge, first.buyer_fee) == (16_000, 160)
    with connection.cursor() as cursor:  # a superuser going behind the triggers' back
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM ledger_usageevent")
        cursor.execute("SET LOCAL session_replication_role = origin")

    # when the lease ends
    leases_services.end_lease(lease=lease, how="cancelled", actor="user:buyer", now=NOW + HOUR)

    # then nothing is taken back from the provider, the platform makes the buyer whole, and no
    # SLA credit is paid on charges the buyer got back
    final = Settlement.objects.get(lease=lease, final=True)
    assert (final.charge, final.buyer_fee, final.delivered_unit_seconds) == (0, 0, 30 * 60 * 4)
    assert (final.refund, final.adjustment, final.sla_credit) == (
        323_200 - 16_000 - 160,
        16_000 + 160,
        0,
    )
    buyer, provider = f"org:{buyer_org.public_id}", f"org:{provider_org.public_id}"
    assert balance(buyer, "wallet") == 1_000_000
    assert balance(buyer, "order_hold") == 0
    assert balance(provider, "provider_payable") == 16_000 - 480
    assert balance("platform", "adjustment") == -(1_000_000 + 16_000 + 160)  # funding, then this


def test_a_replayed_batch_is_counted_once(lease: Lease) -> None:
    heartbeats(lease, range(30))
    leases_services.settle(lease=lease, now=NOW + HOUR)
    transfers = Transfer.objects.count()

    replay = heartbeats(lease, range(30))

    assert set(replay) == {metering.Outcome.DUPLICATE}
    assert leases_services.settle(lease=lease, now=NOW + HOUR) is None
    assert Transfer.objects.count() == transfers


def test_a_late_heartbeat_is_an_adjustment_in_the_next_settlement(lease: Lease) -> None:
    heartbeats(lease, range(0, 30))
    first = leases_services.settle(lease=lease, now=NOW + HOUR)

    heartbeats(lease, range(30, 45), source="agent-2")  # arrived late, inside grace
    second = leases_services.settle(lease=lease, now=NOW + HOUR)

    assert first is not None and second is not None
    assert (first.charge, second.charge) == (16_000, 8_000)  # 2 unit-hours, then 1
    assert second.delivered_unit_seconds == 45 * 60 * 4


def test_missed_availability_is_credited_to_the_buyer(
    lease: Lease, buyer_org: Organization, provider_org: Organization
) -> None:
    heartbeats(lease, range(30))  # 30 of 60 minutes

    leases_services.end_lease(lease=lease, how="failed", actor="key:agent", now=NOW + HOUR)

    final = Settlement.objects.get(lease=lease, final=True)
    # Half the hour delivered: 2 unit-hours = 16,000; availability 0.5 < 99.5% → 10% back.
    assert (final.charge, final.availability, final.sla_credit) == (16_000, Decimal("0.5"), 1_600)
    provider = f"org:{provider_org.public_id}"
    assert balance(provider, "provider_payable") == 16_000 - 480 - 1_600
    assert balance(f"org:{buyer_org.public_id}", "wallet") == 1_000_000 - 16_000 - 160 + 1_600


def test_a_reclaim_needs_notice(lease: Lease) -> None:
    before = (Lease.objects.get().reclaim_at, lease.events.count())

    with pytest.raises(Forbidden) as refused:
        leases_services.give_reclaim_notice(
            lease=lease, actor="key:provider", at=NOW + 30 * MINUTE, now=NOW
        )

    assert refused.value.code == "reclaim_notice_too_short"
    assert (Lease.objects.get().reclaim_at, lease.events.count()) == before


def test_a_reclaim_with_notice_refunds_and_pays_a_penalty(
    lease: Lease, buyer_org: Organization
) -> None:
    heartbeats(lease, range(150))  # two full hours, and half an hour past the reclaim
    leases_services.give_reclaim_notice(
        lease=lease, actor="key:provider", at=NOW + 2 * HOUR, now=NOW
    )

    assert (
        leases_services.end_due_leases(now=NOW + 2 * HOUR + 30 * MINUTE) == 1
    )  # the beat comes late

    final = Settlement.objects.get(lease=lease, final=True)
    charged = 64_000  # 8 unit-hours
    penalty = (320_000 - charged) // 10  # 10% of the undelivered value
    assert (Lease.objects.get().status, Lease.objects.get().closed_at) == (
        LeaseStatus.RECLAIMED,
        NOW + 2 * HOUR,
    )
    assert (final.charge, final.sla_credit) == (charged, penalty)
    assert balance(f"org:{buyer_org.public_id}", "wallet") == (1_000_000 - charged - 640 + penalty)


def test_leases_complete_at_their_end_time(lease: Lease) -> None:
    heartbeats(lease, range(600))  # the whole 10 hours

    assert leases_services.end_due_leases(now=NOW + 10 * HOUR) == 1

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

    assert leases_services.settle_due(now=NOW + HOUR) == 1
    assert leases_services.settle_due(now=NOW + HOUR) == 0  # a re-run finds nothing new

    settlement = Settlement.objects.get()
    assert (settlement.delivered_unit_seconds, settlement.charge, settlement.final) == (
        14_400,
        32_000,
        False,
    )
    assert Transfer.objects.filter(metadata__lease=str(lease.public_id)).count() == 2


# --------------------------------------------------------------------------- heartbeat spans


def span(lease: Lease, at: dt.datetime, minutes: int, *, units: int = 4) -> metering.Outcome:
    """One heartbeat attesting ``units`` up during each of ``minutes`` minutes from ``at``."""
    event = metering.Event(
        source="agent-1",
        event_id=f"span-{at:%H%M%S}-{minutes}-{units}",
        type=metering.HEARTBEAT,
        subject=leases_services.subject(lease),
        time=at,
        data={"units_up": units, "minutes": minutes},
    )
    [outcome] = metering.record([event], now=NOW + 10 * HOUR, not_before=NOW - 2 * HOUR)
    return outcome


def delivered(lease: Lease, *, end: dt.datetime) -> tuple[int, int]:
    """The single-lease query (``settle``) and the batched one (``settle_due``), side by side."""
    through = metering.last_event_id()
    single = metering.delivered_unit_seconds(
        leases_services.subject(lease),
        units=lease.units,
        start=lease.starts_at,
        end=end,
        through_id=through,
    )
    batched = leases_services._delivered([lease], now=end, through=through)[
        leases_services.subject(lease)
    ]
    return single, batched


def test_a_sixty_minute_heartbeat_counts_the_whole_hour(lease: Lease) -> None:
    assert span(lease, NOW + dt.timedelta(seconds=7), 60) == metering.Outcome.ACCEPTED

    assert delivered(lease, end=NOW + HOUR) == (3600 * 4, 3600 * 4)
    assert delivered(lease, end=NOW + 30 * MINUTE) == (1800 * 4, 1800 * 4)  # not the future half
    assert leases_services.settle_due(now=NOW + HOUR) == 1
    settlement = Settlement.objects.get()
    assert (settlement.delivered_unit_seconds, settlement.charge) == (14_400, 32_000)


def test_a_span_counts_only_its_minutes_inside_the_lease(lease: Lease) -> None:
    span(lease, NOW - 20 * MINUTE, 60)  # 40 of its minutes from the start
    span(lease, NOW - 59 * MINUTE + dt.timedelta(seconds=7), 60, units=1)  # its last: NOW + 7 s
    span(lease, NOW - HOUR + dt.timedelta(seconds=7), 60, units=3)  # ends before the lease
    span(lease, NOW + 50 * MINUTE, 60, units=2)  # 10 of its minutes before the end of the window

    # Minutes 0–39 at 4 units; 40–49 nothing; 50–59 at 2 units.
    assert delivered(lease, end=NOW + HOUR) == ((40 * 4 + 10 * 2) * 60,) * 2


def test_overlapping_spans_and_single_heartbeats_count_each_minute_once(lease: Lease) -> None:
    heartbeats(lease, range(10), units=2)  # minutes 0–9
    span(lease, NOW + 5 * MINUTE, 20, units=3)  # minutes 5–24
    span(lease, NOW + 20 * MINUTE + dt.timedelta(seconds=30), 10)  # minutes 20–29, 4 units
    span(lease, NOW, 30, units=1)  # minutes 0–29, the fewest units: never the maximum
    span(lease, NOW + 40 * MINUTE, 2, units=9)  # minutes 40–41: more units than the lease has

    # 0–4 at 2, 5–19 at 3, 20–29 at 4, 40–41 capped at the lease's 4 units.
    unit_minutes = 5 * 2 + 15 * 3 + 10 * 4 + 2 * 4
    assert delivered(lease, end=NOW + HOUR) == (unit_minutes * 60,) * 2
    assert leases_services.settle_due(now=NOW + HOUR) == 1
    assert (
        leases_services.settle(lease=lease, now=NOW + HOUR) is None
    )  # both paths agree: nothing new
    assert Settlement.objects.get().delivered_unit_seconds == unit_minutes * 60
