"""Monthly statements: every settlement of an organization's leases in a month and currency, as
buyer and as provider, with totals, and as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from dataclasses import dataclass

from django.db.models import (
    Q,
)

from marketplace.leases.queries import LeaseRole
from marketplace.models import (
    Organization,
    Settlement,
)

# --------------------------------------------------------------------------- statements


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime] | None:
    """``"2026-11"`` → [2026-11-01, 2026-12-01) in UTC; None for anything else."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    year, number = int(match[1]), int(match[2])
    try:
        start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
        end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    except ValueError:  # the month after 9999-12
        return None
    return start, end


@dataclass(frozen=True)
class StatementLine:
    """One settlement as one side of its lease sees it, in minor units."""

    at: dt.datetime
    lease: uuid.UUID
    settlement: int
    final: bool
    charge: int
    fee: int  # buyer: the buyer fee; provider: the platform fee
    sla_credit: int  # buyer: received; provider: paid (with any reclaim penalty)
    refund: int  # buyer: the rest of the hold returned at the end; provider: always 0
    net: int  # buyer: charge + fee − credit (what it cost); provider: charge − fee − credit


_TOTALS = ("charge", "fee", "sla_credit", "refund", "net")


@dataclass(frozen=True)
class StatementTotals:
    charge: int
    fee: int
    sla_credit: int
    refund: int
    net: int


@dataclass(frozen=True)
class StatementSide:
    lines: list[StatementLine]

    @property
    def totals(self) -> StatementTotals:
        return StatementTotals(
            *(sum(getattr(line, name) for line in self.lines) for name in _TOTALS)
        )


@dataclass(frozen=True)
class MonthlyStatement:
    organization: Organization
    month: str  # yyyy-mm
    currency: str
    start: dt.datetime
    end: dt.datetime
    buyer: StatementSide  # settlements of leases it bought
    provider: StatementSide  # settlements of leases it provided


def monthly_statement(
    organization: Organization, *, start: dt.datetime, end: dt.datetime, currency: str
) -> MonthlyStatement:
    """The settlements made in ``[start, end)`` of the organization's leases in ``currency``:
    as buyer (charges, buyer fees, SLA credits received, refunds) and as provider (charges,
    platform fees, SLA credits paid, net proceeds), oldest first, with totals."""
    settlements = (
        Settlement.objects.filter(
            Q(lease__buyer=organization) | Q(lease__provider=organization),
            lease__market__currency=currency,
            at__gte=start,
            at__lt=end,
        )
        .select_related("lease")
        .order_by("at", "lease_id", "number")
    )
    bought, provided = [], []
    for s in settlements:
        common = (s.at, s.lease.public_id, s.number, s.final, s.charge)
        if s.lease.buyer_id == organization.pk:
            net = s.charge + s.buyer_fee - s.sla_credit
            bought.append(StatementLine(*common, s.buyer_fee, s.sla_credit, s.refund, net))
        if s.lease.provider_id == organization.pk:
            net = s.charge - s.platform_fee - s.sla_credit
            provided.append(StatementLine(*common, s.platform_fee, s.sla_credit, 0, net))
    month = start.strftime("%Y-%m")
    return MonthlyStatement(
        organization, month, currency, start, end, StatementSide(bought), StatementSide(provided)
    )


STATEMENT_CSV_HEADER = [
    "line",
    "role",
    "settled_at",
    "lease",
    "settlement",
    "final",
    "charge_minor",
    "fee_minor",
    "sla_credit_minor",
    "refund_minor",
    "net_minor",
    "currency",
]


def statement_csv(statement: MonthlyStatement) -> str:
    """One row per settlement and side (``fee`` is the buyer fee for the buyer, the platform fee
    for the provider), then one ``total`` row per side. Amounts in minor units."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(STATEMENT_CSV_HEADER)
    sides = [(LeaseRole.BUYER, statement.buyer), (LeaseRole.PROVIDER, statement.provider)]
    for role, side in sides:
        for line in side.lines:
            when, final = line.at.isoformat(), "true" if line.final else "false"
            amounts = [line.charge, line.fee, line.sla_credit, line.refund, line.net]
            row = ["settlement", role.value, when, line.lease, line.settlement, final, *amounts]
            writer.writerow([*row, statement.currency])
    for role, side in sides:
        t = side.totals
        amounts = [t.charge, t.fee, t.sla_credit, t.refund, t.net]
        writer.writerow(["total", role.value, "", "", "", "", *amounts, statement.currency])
    return buffer.getvalue()
