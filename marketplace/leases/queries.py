"""Reads about leases: an organization's leases as buyer or provider, one with its history, and the
live summary of each (availability, delivered time, charges, the next settlement)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    Count,
    Max,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    TextChoices,
)
from django.utils.translation import gettext_lazy as _

from ledger import metering
from ledger.money import cost
from marketplace.core import access
from marketplace.core.access import Reader
from marketplace.leases.services import window as lease_window
from marketplace.models import (
    Lease,
    LeaseEvent,
    Settlement,
)

# --------------------------------------------------------------------------- leases


class LeaseRole(TextChoices):
    """An organization's side of a lease."""

    BUYER = "buyer", _("Buyer")
    PROVIDER = "provider", _("Provider")


def leases_of(reader: Reader, *, role: str | None = None) -> QuerySet[Lease]:
    """The leases the reader sees (``access.leases_visible_to``: its organization's, as buyer or
    provider, ``role`` narrowing to one side; every lease for a regulator), newest first, with what
    their pages and serializers show."""
    return (
        access.leases_visible_to(reader, side=role or None)
        .select_related(
            "market", "buyer", "provider", "order", "offer", "pool__site", "pool__device_model"
        )
        .order_by("-pk")
    )


def lease_with_history(leases: QuerySet[Lease], public_id: uuid.UUID) -> Lease | None:
    """One lease of ``leases`` with its settlements (by number) and events (by time)."""
    return (
        leases.filter(public_id=public_id)
        .prefetch_related(
            Prefetch("settlements", queryset=Settlement.objects.order_by("number")),
            Prefetch("events", queryset=LeaseEvent.objects.order_by("at", "pk")),
        )
        .first()
    )


@dataclass(frozen=True)
class LeaseSummary:
    """A lease as it stands at ``as_of``. Money in the lease market's minor units."""

    as_of: dt.datetime
    status: str
    currency: str
    elapsed_seconds: int  # of the lease's window, up to its end or now
    delivered_unit_seconds: int
    availability: Decimal | None  # delivered ÷ (units × elapsed); None before the start
    charged: int  # Σ settlement charges
    buyer_fees: int  # Σ settlement buyer fees
    platform_fees: int  # Σ settlement platform fees
    sla_credits: int  # Σ credits to the buyer (with any reclaim penalty)
    refunded: int  # what the final settlement returned to the buyer
    unsettled_estimate: int  # price × delivered since the last settlement: an estimate
    settlements: int
    next_settlement_at: dt.datetime | None  # None once the lease is settled for good

    @property
    def unit_hours_delivered(self) -> Decimal:
        return (Decimal(self.delivered_unit_seconds) / 3600).quantize(Decimal("0.01"))

    @property
    def cost_so_far(self) -> int:
        """Charged plus the unsettled estimate (so itself an estimate while the lease runs)."""
        return self.charged + self.unsettled_estimate


def lease_summaries(leases: Sequence[Lease], *, now: dt.datetime) -> dict[int, LeaseSummary]:
    """Live summaries (by lease pk): status, availability and usage so far, what was charged and
    an estimate of what was delivered since the last settlement, and when the next one is due.

    A lease settled for good reads what its final settlement counted; a running one asks metering
    for the heartbeats so far (one statement for all of them, another for the settlements' sums).
    Heartbeats count whole minutes, so availability is capped at 1 within a minute."""
    sums = {
        row["lease_id"]: row
        for row in Settlement.objects.filter(lease__in=[lease.pk for lease in leases])
        .values("lease_id")
        .annotate(
            charged=Sum("charge"),
            buyer_fees=Sum("buyer_fee"),
            platform_fees=Sum("platform_fee"),
            sla_credits=Sum("sla_credit"),
            refunded=Sum("refund"),
            delivered=Max("delivered_unit_seconds"),  # cumulative, never decreasing
            last_at=Max("at"),
            count=Count("pk"),
            finals=Count("pk", filter=Q(final=True)),
        )
    }
    interval = dt.timedelta(seconds=settings.SETTLEMENT_INTERVAL_SECONDS)
    running = [
        lease
        for lease in leases
        if not sums.get(lease.pk, {}).get("finals")
        and (lease.closed_at or min(now, lease.ends_at)) > lease.starts_at
    ]
    counted = dict(
        zip(
            [lease.pk for lease in running],
            metering.delivered_many(
                [lease_window(lease, now=now) for lease in running],
                through_id=metering.last_event_id() if running else 0,
            ),
            strict=True,
        )
    )
    out = {}
    for lease in leases:
        done = sums.get(lease.pk, {})
        settled = done.get("delivered") or 0
        end = lease.closed_at or min(now, lease.ends_at)
        elapsed = max(0, int((end - lease.starts_at).total_seconds()))
        final = bool(done.get("finals"))
        delivered = counted.get(lease.pk, settled)
        charged = done.get("charged") or 0
        estimate = 0
        if not final and delivered > settled:
            new = Decimal(delivered - settled)
            estimate = min(
                cost(lease.price * new / 3600, 1, lease.market.currency), lease.cost - charged
            )
        availability = None
        if elapsed:
            ratio = Decimal(delivered) / (lease.units * elapsed)
            availability = min(Decimal(1), ratio).quantize(Decimal("0.000001"))
        out[lease.pk] = LeaseSummary(
            as_of=now,
            status=lease.status,
            currency=lease.market.currency,
            elapsed_seconds=elapsed,
            delivered_unit_seconds=delivered,
            availability=availability,
            charged=charged,
            buyer_fees=done.get("buyer_fees") or 0,
            platform_fees=done.get("platform_fees") or 0,
            sla_credits=done.get("sla_credits") or 0,
            refunded=done.get("refunded") or 0,
            unsettled_estimate=estimate,
            settlements=done.get("count") or 0,
            next_settlement_at=None
            if final or lease.closed_at is not None
            else max(done.get("last_at") or lease.starts_at, lease.starts_at) + interval,
        )
    return out


def lease_summary(lease: Lease, *, now: dt.datetime) -> LeaseSummary:
    return lease_summaries([lease], now=now)[lease.pk]
