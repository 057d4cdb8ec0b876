"""Clearing rounds: one per market and slot, with the inputs' digest, the certificate, volumes and
one row per class with its uniform price."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

from ledger.models import AppendOnly
from marketplace.models.trading import Market


class ClearingRound(AppendOnly):
    """One cleared round of a market; written once, in the transaction that writes its leases and
    ledger moves. ``number`` is the round's slot (delivery start ÷ round interval), so a repeated
    task for the same slot finds the row and does nothing."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="rounds")
    number = models.BigIntegerField()
    delivery_start = models.DateTimeField()
    mechanism = models.CharField(max_length=8)
    optimal = models.BooleanField(default=True)
    inputs_digest = models.CharField(max_length=64)  # SHA-256 of the canonical book snapshot
    result_digest = models.CharField(max_length=64)  # SHA-256 of the canonical clearing
    orders = models.PositiveIntegerField()  # bids in the snapshot
    offers = models.PositiveIntegerField()  # asks in the snapshot
    volume_units = models.PositiveIntegerField()
    volume_unit_hours = models.BigIntegerField()
    # Gains from trade in the market's currency: per hour of delivery, and over the leases' hours.
    welfare_per_hour = models.DecimalField(max_digits=20, decimal_places=6)
    welfare = models.DecimalField(max_digits=24, decimal_places=6)
    buyer_payments = models.BigIntegerField()  # minor units, Σ lease cost
    seller_receipts = models.BigIntegerField()  # minor units, Σ lease cost (= buyer_payments)
    certificate = models.JSONField(default=dict)  # {"violations": [...], "checks": {...}}
    certificate_ok = models.BooleanField()
    notes = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "number"], name="round_number_unique"),
            models.CheckConstraint(
                condition=Q(buyer_payments=models.F("seller_receipts")),
                name="round_budget_balanced",
            ),
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.market.slug} round {self.number}"


class RoundClass(AppendOnly):
    """A class of identical supply in one round: its clearing price and volume (market data)."""

    round = models.ForeignKey(ClearingRound, on_delete=models.PROTECT, related_name="classes")
    key = models.CharField(max_length=64)
    device_slug = models.CharField(max_length=64)
    region = models.CharField(max_length=8)
    country = models.CharField(max_length=2)
    attributes = models.JSONField(default=dict)
    scu_per_unit = models.DecimalField(max_digits=9, decimal_places=4)
    price = models.DecimalField(max_digits=14, decimal_places=6, null=True)  # per unit-hour
    price_low = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    price_high = models.DecimalField(max_digits=14, decimal_places=6, null=True)
    offered_units = models.PositiveIntegerField()
    units = models.PositiveIntegerField()
    unit_hours = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "key"], name="round_class_unique"),
        ]
        indexes = [models.Index(fields=["device_slug", "region"], name="round_class_device")]

    def __str__(self) -> str:
        return f"{self.device_slug} {self.region} @ {self.price}"

    @property
    def price_per_scu(self) -> Decimal | None:
        if self.price is None or not self.scu_per_unit:
            return None
        return (self.price / self.scu_per_unit).quantize(Decimal("0.000001"))
