"""Leases, what clearing rounds produce (each is one fill: an order's units from one offer at the
class price, terms frozen), with their append-only events, settlements and access details."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from ledger.models import AppendOnly
from marketplace.models.accounts import Organization
from marketplace.models.rounds import ClearingRound
from marketplace.models.trading import Market, Offer, Order, Pool


class LeaseStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    PROVISIONING = "provisioning", _("Provisioning")
    # Contexts: offers and orders use "Active" and "Cancelled" in other senses.
    ACTIVE = "active", pgettext_lazy("lease status", "Active")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", pgettext_lazy("lease status", "Cancelled")
    RECLAIMED = "reclaimed", _("Reclaimed")
    FAILED = "failed", _("Failed")


LIVE_LEASE_STATUSES = (LeaseStatus.SCHEDULED, LeaseStatus.PROVISIONING, LeaseStatus.ACTIVE)


class Lease(models.Model):
    """A fill: ``units`` of one offer's pool for one order, for ``[starts_at, ends_at)`` at the
    class price. The terms (price, units, window, cost) are frozen at creation."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The offer, its pool and its market are one reference: (offer, pool, market) must be a row of
    # marketplace_offer (lease_offer_pool_market, migration 0011), checked once per lease where
    # three foreign keys were three checks, and the copies of the offer's pool and market can
    # never disagree with it.
    market = models.ForeignKey(
        Market, on_delete=models.PROTECT, related_name="leases", db_constraint=False
    )
    # No index of their own where an index of Meta leads with the column (a round writes tens of
    # thousands of leases, and every index is written for each).
    round = models.ForeignKey(  # lease_fill_unique
        ClearingRound, on_delete=models.PROTECT, related_name="leases", db_index=False
    )
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="leases")
    offer = models.ForeignKey(  # lease_offer_end
        Offer, on_delete=models.PROTECT, related_name="leases", db_index=False, db_constraint=False
    )
    pool = models.ForeignKey(  # lease_pool_end
        Pool, on_delete=models.PROTECT, related_name="leases", db_index=False, db_constraint=False
    )
    buyer = models.ForeignKey(  # lease_buyer_recent
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    provider = models.ForeignKey(  # lease_provider_recent
        Organization, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    class_key = models.CharField(max_length=64)
    units = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=6)  # per unit-hour
    scu_per_unit = models.DecimalField(max_digits=9, decimal_places=4)
    duration_hours = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    cost = models.BigIntegerField()  # minor units: price × units × hours, rounded once
    buyer_fee = models.BigIntegerField()  # minor units
    # The ledger transfer that captured this lease's order hold for its charge (one per order and
    # round, shared by the order's leases of that round). The charge stays in the order's hold
    # account until settlement pays it out lease by lease. Not indexed: nothing looks leases up
    # by it (an audit joins whole tables), and a round writes 50,000 of them in random order.
    charge_transfer_id = models.UUIDField()
    status = models.CharField(
        max_length=16, choices=LeaseStatus.choices, default=LeaseStatus.SCHEDULED
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # How it ended (the terms above never change): when, why and who.
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=32, blank=True)
    closed_by = models.CharField(max_length=64, blank=True)
    # A provider's reclaim takes effect at the end of its notice.
    reclaim_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "order", "offer"], name="lease_fill_unique"),
            models.CheckConstraint(condition=Q(units__gte=1), name="lease_units_positive"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="lease_window"
            ),
            models.CheckConstraint(condition=Q(cost__gte=0, buyer_fee__gte=0), name="lease_money"),
        ]
        indexes = [
            models.Index(fields=["offer", "ends_at"], name="lease_offer_end"),
            models.Index(fields=["pool", "ends_at"], name="lease_pool_end"),
            models.Index(fields=["buyer", "-created_at"], name="lease_buyer_recent"),
            models.Index(fields=["provider", "-created_at"], name="lease_provider_recent"),
        ]

    def __str__(self) -> str:
        return f"lease {self.public_id} ({self.units} × {self.pool_id})"


class LeaseEvent(AppendOnly):
    """A change in a lease's life: what, who, when and why. Never edited."""

    lease = models.ForeignKey(Lease, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=LeaseStatus.choices)
    actor = models.CharField(max_length=64)
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["lease", "at"], name="lease_event_lease")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at}"


class Settlement(AppendOnly):
    """One settlement of one lease: what the heartbeats counted up to ``events_through`` were
    worth, and the ledger transfers that paid it (ids derived from ``(lease, number)``)."""

    lease = models.ForeignKey(Lease, on_delete=models.PROTECT, related_name="settlements")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    events_through = models.BigIntegerField()  # the last usage event id counted
    delivered_unit_seconds = models.BigIntegerField()  # cumulative for the lease
    charge = models.BigIntegerField()  # minor units, this settlement: price × delivered
    buyer_fee = models.BigIntegerField()  # minor units, this settlement
    platform_fee = models.BigIntegerField()  # minor units, out of the charge
    sla_credit = models.BigIntegerField(default=0)  # minor units, back to the buyer (final only)
    refund = models.BigIntegerField(default=0)  # minor units, the rest of the hold (final only)
    # Minor units the platform pays the buyer (final only) when the lease's charges exceed what
    # the final count of its heartbeats is worth: what the provider was paid stays paid, and the
    # buyer is made whole from the platform's adjustment account. Zero unless an earlier
    # settlement over-counted (the phantom-minute defect, fixed); kept so that one shows.
    adjustment = models.BigIntegerField(default=0)
    availability = models.DecimalField(max_digits=7, decimal_places=6, null=True)
    final = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lease", "number"], name="settlement_unique"),
            models.UniqueConstraint(
                fields=["lease"], condition=Q(final=True), name="settlement_one_final"
            ),
            # What is paid stays paid: a settlement only ever moves money forwards; a correction
            # is a positive ``adjustment``, never a negative charge.
            models.CheckConstraint(
                condition=Q(
                    delivered_unit_seconds__gte=0,
                    charge__gte=0,
                    buyer_fee__gte=0,
                    platform_fee__gte=0,
                    sla_credit__gte=0,
                    refund__gte=0,
                    adjustment__gte=0,
                ),
                name="settlement_amounts_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"settlement {self.number} of {self.lease_id}"


class LeaseAccess(models.Model):
    """How the buyer reaches a lease's machines, as the provider's agent posted it when the lease
    became active. Only a Fernet token is stored (``LEASE_ACCESS_KEY``); the plaintext names the
    lease, so a token copied onto another lease's row does not decrypt for it."""

    lease = models.OneToOneField(Lease, on_delete=models.PROTECT, related_name="access_details")
    ciphertext = models.TextField()
    posted_by = models.CharField(max_length=64)
    posted_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"access to {self.lease_id}"
