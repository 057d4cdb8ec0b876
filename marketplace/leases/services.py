"""Leases from start to finish: lifecycle, settlement of metered delivery, SLA credits, the end.

Money. At clearing, a lease's cost and buyer fee were posted into its order's hold account
(reference ``order:<id>``). Settlement pays out of it:
- each settlement values the unit-seconds the heartbeats counted since the last one at the
  lease's price (``charge``, rounded once, half-even) and the matching share of the buyer fee; the
  provider's payable gets the charge minus the platform fee (``Market.fee_bps``), platform fee
  revenue gets the fee and the buyer fee share; never more than the lease holds;
- the final settlement (when the lease ends, however it ends) also credits the buyer for missed
  availability (``Market.sla_target`` and ``sla_credit_schedule``: a share of the lease's charges,
  from the provider's payable) and returns the rest of the lease's money to the buyer's wallet —
  nobody is charged for time after a lease ended or that was not delivered;
- a provider's reclaim (allowed only with ``LEASE_RECLAIM_NOTICE_HOURS`` of notice) adds a
  penalty of ``LEASE_RECLAIM_PENALTY_BPS`` of the undelivered value, from the provider's payable
  to the buyer;
- a buyer who ends a lease early pays for what was delivered until then, nothing more;
- no settlement moves money backwards (every amount is ≥ 0, checked by the database): what was
  paid stays paid. Should a final count of the heartbeats come out below what earlier settlements
  paid for, the final settlement's ``adjustment`` pays the buyer that value (charge and buyer fee)
  from the platform's adjustment account; the provider keeps what it was paid. The order's hold
  account may not go below zero (a ledger flag), so a defect that would overdraw it is refused.
Delivered time has one definition, ``ledger.metering.delivered_many``, for one lease or a batch.
Transfer ids derive from ``(lease, settlement number, leg)``: re-running a settlement that posted
moves nothing, and a settlement with nothing new to count writes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from ledger import metering
from ledger import services as ledger
from ledger.models import Purpose
from ledger.money import cost, to_major
from marketplace.core.errors import Conflict, Forbidden
from marketplace.core.owners import ledger_owner
from marketplace.models import (
    LIVE_LEASE_STATUSES,
    Lease,
    LeaseEvent,
    LeaseStatus,
    NotificationKind,
    Organization,
    Settlement,
)
from marketplace.notifications.services import notify
from marketplace.trading.rules import BP

NAMESPACE = uuid.UUID("0b6f1c8e-5d2a-4f7e-9c3b-8a1d2e3f4a5b")
PLATFORM = "platform"
ENDED = {
    "completed": LeaseStatus.COMPLETED,
    "cancelled": LeaseStatus.CANCELLED,
    "reclaimed": LeaseStatus.RECLAIMED,
    "failed": LeaseStatus.FAILED,
}


def subject(lease: Lease) -> str:
    return f"lease:{lease.public_id}"


def window(lease: Lease, *, now: dt.datetime) -> metering.Window:
    """What metering counts for ``lease`` as of ``now``: its units from its start until it
    closed, or until now (never past its end)."""
    end = lease.closed_at or min(now, lease.ends_at)
    return metering.Window(subject(lease), lease.units, lease.starts_at, max(end, lease.starts_at))


def _event(lease: Lease, kind: str, *, actor: str, now: dt.datetime, reason: str = "") -> None:
    LeaseEvent.objects.create(
        lease=lease, kind=kind, status=lease.status, actor=actor, reason=reason, at=now
    )


def _locked(lease: Lease) -> Lease:
    return (
        Lease.objects.select_for_update(of=("self",))
        .select_related("market", "buyer", "provider", "order")
        .get(pk=lease.pk)
    )


def acknowledge(*, lease: Lease, actor: str, now: dt.datetime) -> Lease:
    """The provider's agent has the lease: ``scheduled → provisioning``."""
    with transaction.atomic():
        locked = _locked(lease)
        _require(locked, {LeaseStatus.SCHEDULED})
        locked.status = LeaseStatus.PROVISIONING
        locked.save(update_fields=["status"])
        _event(locked, "provisioning", actor=actor, now=now)
    return locked


def mark_ready(*, lease: Lease, actor: str, now: dt.datetime) -> Lease:
    """The machines are up and the buyer has access: ``provisioning → active``."""
    with transaction.atomic():
        locked = _locked(lease)
        _require(locked, {LeaseStatus.SCHEDULED, LeaseStatus.PROVISIONING})
        locked.status = LeaseStatus.ACTIVE
        locked.save(update_fields=["status"])
        _event(locked, "active", actor=actor, now=now)
        notify(
            organizations=[locked.buyer],
            kind=NotificationKind.LEASE_READY,
            lease=locked,
            now=now,
        )
    return locked


def _require(lease: Lease, allowed: set[str]) -> None:
    if lease.status not in allowed:
        raise Conflict(
            _("This lease is %(status)s.") % {"status": lease.get_status_display()},
            code="lease_state",
            field="status",
        )


def give_reclaim_notice(*, lease: Lease, actor: str, at: dt.datetime, now: dt.datetime) -> Lease:
    """A provider takes its units back at ``at``; refused with less than the notice period."""
    notice = dt.timedelta(hours=settings.LEASE_RECLAIM_NOTICE_HOURS)
    with transaction.atomic():
        locked = _locked(lease)
        _require(locked, set(LIVE_LEASE_STATUSES))
        if at - now < notice:
            raise Forbidden(
                _("A reclaim needs at least %(hours)s hours of notice.")
                % {"hours": settings.LEASE_RECLAIM_NOTICE_HOURS},
                code="reclaim_notice_too_short",
                field="at",
            )
        locked.reclaim_at = min(at, locked.ends_at)
        locked.save(update_fields=["reclaim_at"])
        _event(locked, "reclaim_notice", actor=actor, now=now, reason=locked.reclaim_at.isoformat())
        notify(
            organizations=[locked.buyer],
            kind=NotificationKind.LEASE_RECLAIM_NOTICE,
            lease=locked,
            now=now,
            payload={"reclaim_at": locked.reclaim_at.isoformat()},
        )
    return locked


def end_lease(*, lease: Lease, how: str, actor: str, now: dt.datetime, reason: str = "") -> Lease:
    """End a live lease now (``completed``, ``cancelled`` by the buyer, ``reclaimed``, ``failed``),
    then settle it finally. Idempotent for a lease that has already ended."""
    with transaction.atomic():
        locked = _locked(lease)
        if locked.closed_at is not None:
            return locked
        _require(locked, set(LIVE_LEASE_STATUSES))
        _close(locked, how, actor=actor, now=now, reason=reason)
        locked.save(update_fields=CLOSE_FIELDS)
        _event(locked, how, actor=actor, now=now, reason=locked.close_reason)
        _notify_ended(locked, now=now)
        settle(lease=locked, now=now)
    return locked


CLOSE_FIELDS = ["status", "closed_at", "close_reason", "closed_by"]


def _close(lease: Lease, how: str, *, actor: str, now: dt.datetime, reason: str = "") -> None:
    lease.status = ENDED[how]
    # A reclaim ends at its notice's end even when the beat comes round later.
    lease.closed_at = max(min(now, lease.ends_at, lease.reclaim_at or now), lease.starts_at)
    lease.close_reason = reason or how
    lease.closed_by = actor


def _notify_ended(lease: Lease, *, now: dt.datetime) -> None:
    notify(
        organizations=[lease.buyer, lease.provider],
        kind=NotificationKind.LEASE_ENDED,
        lease=lease,
        now=now,
        payload={"status": lease.status, "reason": lease.close_reason},
    )


def end_due_leases(*, now: dt.datetime, batch: int = 500) -> int:
    """Beat: leases past their end complete; reclaims whose notice ran out take effect. A batch
    at a time: one locking read, one update, one insert of events and one settlement pass (one
    delivered-time query, one ledger batch) per batch — the same as ``end_lease`` lease by lease.
    """
    count = 0
    for how, actor, due in (
        ("completed", "system:end-time", Q(ends_at__lte=now)),
        ("reclaimed", "system:reclaim", Q(reclaim_at__lte=now)),
    ):
        pks = list(
            Lease.objects.filter(due, status__in=LIVE_LEASE_STATUSES)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for i in range(0, len(pks), batch):
            with transaction.atomic():
                ending = _lock_live(pks[i : i + batch])
                for lease in ending:
                    _close(lease, how, actor=actor, now=now, reason=how)
                Lease.objects.bulk_update(ending, CLOSE_FIELDS)
                LeaseEvent.objects.bulk_create(
                    LeaseEvent(
                        lease=lease,
                        kind=how,
                        status=lease.status,
                        actor=actor,
                        reason=lease.close_reason,
                        at=now,
                    )
                    for lease in ending
                )
                for lease in ending:
                    _notify_ended(lease, now=now)
                _settle_locked(ending, now=now)
                count += len(ending)
    return count


# --------------------------------------------------------------------------- settlement


def _account_keys(lease: Lease) -> dict[str, ledger.AccountKey]:
    currency = lease.market.currency
    buyer = ledger_owner(lease.buyer)
    return {
        "hold": ledger.AccountKey(
            buyer, Purpose.ORDER_HOLD, currency, f"order:{lease.order.public_id}"
        ),
        "wallet": ledger.AccountKey(buyer, Purpose.WALLET, currency),
        "payable": ledger.AccountKey(
            ledger_owner(lease.provider), Purpose.PROVIDER_PAYABLE, currency
        ),
        "revenue": ledger.AccountKey(PLATFORM, Purpose.PLATFORM_FEE_REVENUE, currency),
        "adjustment": ledger.AccountKey(PLATFORM, Purpose.ADJUSTMENT, currency),
    }


def _sla_credit_share(
    market_target: Decimal, schedule: list[list[str]], availability: Decimal
) -> Decimal:
    """The largest credit share whose threshold the availability falls below (0 if none)."""
    share = Decimal(0)
    for below, credit in schedule or [[str(market_target), "0.10"]]:
        if availability < Decimal(below):
            share = max(share, Decimal(credit))
    return share


def _part(minor: int, fraction: Decimal, currency: str) -> int:
    """A fraction of an amount, through the one rounding function (half-even)."""
    return cost(to_major(minor, currency) * fraction, 1, currency)


def _next(
    lease: Lease,
    done: list[Settlement],
    *,
    delivered: int,
    through: int,
    now: dt.datetime,
) -> Settlement | None:
    """The settlement that comes next for ``lease`` (unsaved), or None if there is nothing new.
    ``delivered`` is the lease's cumulative delivered unit-seconds counted up to event ``through``.
    """
    if done and done[-1].final:
        return None
    before = done[-1].delivered_unit_seconds if done else 0
    charged = sum(s.charge for s in done)
    fees_charged = sum(s.buyer_fee for s in done)
    closed_at = lease.closed_at
    # Delivered time only grows (events are never removed, windows only lengthen); if a count
    # ever comes out lower than what was already settled, nothing is taken back here: the new
    # settlement counts nothing new and the final one makes the buyer whole (``adjustment``).
    new = max(delivered - before, 0)
    if new == 0 and closed_at is None:
        return None
    currency = lease.market.currency
    full_seconds = lease.units * lease.duration_hours * 3600
    charge = min(cost(lease.price * new / Decimal(3600), 1, currency), lease.cost - charged)
    buyer_fee = min(
        _part(lease.buyer_fee, Decimal(new) / full_seconds, currency),
        lease.buyer_fee - fees_charged,
    )
    platform_fee = _part(charge, lease.market.fee_bps / BP, currency)
    sla_credit = refund = adjustment = 0
    availability: Decimal | None = None
    if closed_at is not None:
        expected = lease.units * int((closed_at - lease.starts_at).total_seconds())
        availability = (
            (Decimal(delivered) / expected).quantize(Decimal("0.000001"))
            if expected
            else Decimal(1)
        )
        # Time settled earlier that the final count lacks: the buyer gets its value back from
        # the platform, and it counts as undelivered (never as charged) from here on.
        over = max(before - delivered, 0)
        overcharged = cost(lease.price * over / Decimal(3600), 1, currency) if over else 0
        if over:
            adjustment = overcharged + _part(
                lease.buyer_fee, Decimal(over) / full_seconds, currency
            )
        share = _sla_credit_share(
            lease.market.sla_target, lease.market.sla_credit_schedule, availability
        )
        sla_credit = _part(charged + charge - overcharged, share, currency)
        if lease.status == LeaseStatus.RECLAIMED:
            undelivered = lease.cost - charged - charge + overcharged
            sla_credit += _part(undelivered, settings.LEASE_RECLAIM_PENALTY_BPS / BP, currency)
        refund = (lease.cost + lease.buyer_fee) - (charged + charge) - (fees_charged + buyer_fee)
    return Settlement(
        lease=lease,
        number=len(done) + 1,
        at=now,
        events_through=through,
        delivered_unit_seconds=max(delivered, before),
        charge=charge,
        buyer_fee=buyer_fee,
        platform_fee=platform_fee,
        sla_credit=sla_credit,
        refund=refund,
        adjustment=adjustment,
        availability=availability,
        final=closed_at is not None,
    )


def settle(*, lease: Lease, now: dt.datetime) -> Settlement | None:
    """Settle what was delivered since the last settlement (and, once ended, close the books).
    Returns the new settlement, or None when there was nothing new to settle."""
    with transaction.atomic():
        lease = _locked(lease)
        through = metering.last_event_id()
        [delivered] = metering.delivered_many([window(lease, now=now)], through_id=through)
        done = list(lease.settlements.order_by("number"))
        settlement = _next(lease, done, delivered=delivered, through=through, now=now)
        if settlement is not None:
            settlement.save()
            _pay([(lease, settlement)], now=now)
            _notify_settled([(lease, settlement)], now=now)
    return settlement


def _notify_settled(settled: list[tuple[Lease, Settlement]], *, now: dt.datetime) -> None:
    """One ``lease.settled`` notification per organization and settlement run."""
    by_org: dict[int, tuple[Organization, list[dict[str, object]]]] = {}
    for lease, s in settled:
        line = {"lease": str(lease.public_id), "settlement": s.number, "charge": s.charge}
        for org in (lease.buyer, lease.provider):
            by_org.setdefault(org.pk, (org, []))[1].append(line)
    for org, lines in by_org.values():
        notify(
            organizations=[org],
            kind=NotificationKind.LEASE_SETTLED,
            lease=settled[0][0] if len(settled) == 1 else None,
            now=now,
            payload={"settlements": lines[:1000], "count": len(lines)},
        )


def _pay(settled: list[tuple[Lease, Settlement]], *, now: dt.datetime) -> None:
    """The ledger legs of settlements, in one batch; ids derive from (lease, number, leg)."""
    keys = {id(lease): _account_keys(lease) for lease, _ in settled}
    accounts = ledger.open_accounts(
        [k for lease_keys in keys.values() for k in lease_keys.values()], now=now
    )
    transfers: list[ledger.NewTransfer] = []
    for lease, s in settled:
        ids = {name: accounts[key] for name, key in keys[id(lease)].items()}
        legs = [
            ("provider", "hold", "payable", s.charge - s.platform_fee),
            ("fees", "hold", "revenue", s.platform_fee + s.buyer_fee),
            ("sla_credit", "payable", "wallet", s.sla_credit),
            ("refund", "hold", "wallet", s.refund),
            ("adjustment", "adjustment", "wallet", s.adjustment),
        ]
        transfers += [
            ledger.NewTransfer(
                id=uuid.uuid5(NAMESPACE, f"{lease.public_id}:{s.number}:{name}"),
                debit_account_id=ids[debit],
                credit_account_id=ids[credit],
                amount=amount,
                metadata={"lease": str(lease.public_id), "settlement": s.number, "leg": name},
            )
            for name, debit, credit, amount in legs
            if amount > 0
        ]
    results = ledger.create_transfers(transfers, now=now)
    refused = [
        (t.metadata["lease"], t.metadata["leg"], r)
        for t, r in zip(transfers, results, strict=True)
        if r not in (ledger.Result.OK, ledger.Result.EXISTS)
    ]
    if refused:
        raise RuntimeError(f"settlement refused by the ledger: {refused[:5]}")


def settle_due(*, now: dt.datetime, batch: int = 2000) -> int:
    """Beat: settle every live lease, a batch at a time (one delivered-time query, one insert
    and one ledger batch per batch of leases). Ended leases settle finally in ``end_lease``."""
    count = 0
    live = (
        Lease.objects.filter(status__in=LIVE_LEASE_STATUSES, starts_at__lt=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    pks = list(live)
    for i in range(0, len(pks), batch):
        with transaction.atomic():
            count += _settle_locked(_lock_live(pks[i : i + batch]), now=now)
    return count


def _lock_live(pks: list[int]) -> list[Lease]:
    return list(
        Lease.objects.select_for_update(of=("self",))
        .select_related("market", "buyer", "provider", "order")
        .filter(pk__in=pks, status__in=LIVE_LEASE_STATUSES)
        .order_by("pk")
    )


def _settle_locked(leases: list[Lease], *, now: dt.datetime) -> int:
    """Settle ``leases`` (locked, in pk order) in one pass; returns how many had something new."""
    through = metering.last_event_id()
    delivered = _delivered(leases, now=now, through=through)
    history: dict[int, list[Settlement]] = {lease.pk: [] for lease in leases}
    for s in Settlement.objects.filter(lease__in=leases).order_by("lease_id", "number"):
        history[s.lease_id].append(s)
    settled = []
    for lease in leases:
        s = _next(
            lease,
            history[lease.pk],
            delivered=delivered.get(subject(lease), 0),
            through=through,
            now=now,
        )
        if s is not None:
            settled.append((lease, s))
    Settlement.objects.bulk_create([s for _, s in settled])
    if settled:
        _pay(settled, now=now)
        _notify_settled(settled, now=now)
    return len(settled)


def _delivered(leases: list[Lease], *, now: dt.datetime, through: int) -> dict[str, int]:
    """Delivered unit-seconds of each lease so far (by subject), in one statement."""
    windows = [window(lease, now=now) for lease in leases]
    counted = metering.delivered_many(windows, through_id=through)
    return {w.subject: seconds for w, seconds in zip(windows, counted, strict=True)}
