"""Markets, supply (sites, pools, offers) and demand (orders), with their append-only events.

Prices are Decimal per unit-hour (or per SCU-hour for orders that say so) in the market's
currency, a whole number of price ticks. Time windows are half-open ``[from, until)``.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ledger.models import AppendOnly
from marketplace.models.accounts import Organization
from marketplace.models.catalog import DeviceModel


class MarketManager(models.Manager["Market"]):
    def get_by_natural_key(self, slug: str) -> Market:
        return self.get(slug=slug)


class Market(models.Model):
    """One currency and its rules. Each round clears every ``round_seconds``."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    currency = models.CharField(_("currency"), max_length=3)
    round_seconds = models.PositiveIntegerField(_("round interval (s)"), default=60)
    price_tick = models.DecimalField(
        _("price tick"), default=Decimal("0.01"), max_digits=14, decimal_places=6
    )
    fee_bps = models.PositiveIntegerField(_("platform fee (bp of provider proceeds)"), default=300)
    buyer_fee_bps = models.PositiveIntegerField(_("buyer fee (bp of cost)"), default=0)
    sla_target = models.DecimalField(
        _("SLA availability target"), default=Decimal("0.995"), max_digits=5, decimal_places=4
    )
    sla_credit_schedule = models.JSONField(
        _("SLA credits"),
        default=list,
        blank=True,
        help_text=_('[[availability below, credit share], …] e.g. [["0.995", "0.10"]]'),
    )
    max_units_per_order = models.PositiveIntegerField(_("max units per order"), default=512)
    max_scu_per_order = models.DecimalField(
        _("max SCU per order"), max_digits=12, decimal_places=3, default=Decimal("1000")
    )
    max_duration_hours = models.PositiveIntegerField(_("max lease hours"), default=720)
    horizon_hours = models.PositiveIntegerField(_("horizon (h)"), default=24 * 14)
    active = models.BooleanField(_("open"), default=True)

    objects = MarketManager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price_tick__gt=0), name="market_tick_positive"),
            models.CheckConstraint(
                condition=Q(fee_bps__lte=10_000, buyer_fee_bps__lte=10_000),
                name="market_fees_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"

    def natural_key(self) -> tuple[str]:
        return (self.slug,)


class LatencyTier(models.IntegerChoices):
    """How close a site is to the buyer. Ordered: a smaller tier is closer."""

    CITY = 1, _("Same city (~1 ms)")
    REGIONAL = 2, _("Same region (~5 ms)")
    NATIONAL = 3, _("Same country (~20 ms)")
    INTERNATIONAL = 4, _("Another country")


class Site(models.Model):
    """A data centre of a provider."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(_("name"), max_length=100)
    country = models.CharField(_("country"), max_length=2)
    region = models.CharField(_("region (ISO 3166-2)"), max_length=8)
    city = models.CharField(_("city"), max_length=64)
    jurisdiction = models.CharField(
        _("jurisdiction"), max_length=16, help_text=_("data-residency area, e.g. CN, EU, US")
    )
    pue = models.DecimalField(_("PUE"), max_digits=4, decimal_places=2)
    renewable_share = models.DecimalField(_("renewable share"), max_digits=5, decimal_places=4)
    carbon_g_per_kwh = models.PositiveIntegerField(_("grid carbon intensity (gCO₂/kWh)"))
    certifications = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="site_name_unique"),
            models.CheckConstraint(condition=Q(pue__gte=1, pue__lte=5), name="site_pue_range"),
            models.CheckConstraint(
                condition=Q(renewable_share__gte=0, renewable_share__lte=1),
                name="site_renewable_share_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.region})"


class Interconnect(models.TextChoices):
    NONE = "none", _("None / Ethernet")
    PCIE = "pcie", _("PCIe")
    NVLINK = "nvlink", _("NVLink / NVSwitch")
    HCCS = "hccs", _("HCCS")
    INFINIBAND = "infiniband", _("InfiniBand")
    ROCE = "roce", _("RoCE")


class Pool(models.Model):
    """Identical units at a site; a unit is what one lease slot gets (one GPU, or a node)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="pools")
    name = models.CharField(_("name"), max_length=100)
    device_model = models.ForeignKey(DeviceModel, on_delete=models.PROTECT, related_name="pools")
    devices_per_unit = models.PositiveSmallIntegerField(_("devices per unit"), default=1)
    units = models.PositiveIntegerField(_("units"))
    cpu_cores = models.PositiveIntegerField(_("CPU cores per unit"), default=0)
    ram_gb = models.PositiveIntegerField(_("RAM per unit (GB)"), default=0)
    disk_gb = models.PositiveIntegerField(_("disk per unit (GB)"), default=0)
    interconnect = models.CharField(
        _("interconnect"), max_length=16, choices=Interconnect.choices, default=Interconnect.NONE
    )
    verified = models.BooleanField(_("verified by the exchange"), default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="pool_name_unique"),
            models.CheckConstraint(
                condition=Q(devices_per_unit__gte=1, units__gte=1), name="pool_counts_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.site.name}"

    @property
    def scu_per_unit(self) -> Decimal:
        return self.device_model.scu(self.devices_per_unit)

    @property
    def memory_gb_per_unit(self) -> Decimal:
        return self.device_model.memory_gb * self.devices_per_unit


class OfferStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    EXHAUSTED = "exhausted", _("Exhausted")
    EXPIRED = "expired", _("Expired")


class Offer(models.Model):
    """An ask: ``units`` of a pool for ``[available_from, available_until)`` at a minimum price."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="offers")
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="offers")
    units = models.PositiveIntegerField(_("units"))
    available_from = models.DateTimeField(_("available from"))
    available_until = models.DateTimeField(_("available until"))
    min_price = models.DecimalField(
        _("minimum price per unit-hour"), max_digits=14, decimal_places=6
    )
    min_lease_hours = models.PositiveIntegerField(_("minimum lease (h)"), default=1)
    max_lease_hours = models.PositiveIntegerField(_("maximum lease (h)"), default=720)
    status = models.CharField(
        _("status"), max_length=16, choices=OfferStatus.choices, default=OfferStatus.ACTIVE
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            # What a lease's composite reference to its offer names (lease_offer_pool_market).
            models.UniqueConstraint(fields=["id", "pool", "market"], name="offer_pool_market_key"),
            models.CheckConstraint(condition=Q(units__gte=1), name="offer_units_positive"),
            models.CheckConstraint(condition=Q(min_price__gt=0), name="offer_price_positive"),
            models.CheckConstraint(
                condition=Q(available_until__gt=F("available_from")), name="offer_window_valid"
            ),
            models.CheckConstraint(
                condition=Q(min_lease_hours__gte=1, max_lease_hours__gte=F("min_lease_hours")),
                name="offer_lease_hours_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=OfferStatus.values), name="offer_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["market", "status"], name="offer_market_status")]

    def __str__(self) -> str:
        return f"offer {self.public_id} ({self.units} × {self.pool})"


class QuantityKind(models.TextChoices):
    UNITS = "units", _("Units")
    SCU = "scu", _("Standard compute units (SCU)")


class Placement(models.TextChoices):
    ANY = "any", _("Any pools")
    SAME_POOL = "same_pool", _("All in one pool (gang job)")


class FillPolicy(models.TextChoices):
    """How an order may be filled (not to be confused with a fill, ``matching.engine.Fill``: one
    order's units from one class in a round)."""

    PARTIAL = "partial", _("Partial fills allowed")
    ALL_OR_NONE = "all_or_none", _("All or none")


class OrderStatus(models.TextChoices):
    OPEN = "open", _("Open")
    PARTIALLY_FILLED = "partially_filled", _("Partially filled")
    FILLED = "filled", _("Filled")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")
    REJECTED = "rejected", _("Rejected")


OPEN_ORDER_STATUSES = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class UnfilledReason(models.TextChoices):
    """Why a round left an order (partly) unfilled: the codes of ``matching.engine.Reason`` (a test
    keeps the two in step) with what they mean to a buyer. Not the field's choices: the matcher
    owns the codes, and a new one should show as itself rather than fail."""

    PRICED_OUT = (
        "priced_out",
        _("Priced out: compatible supply cleared only above your limit price."),
    )
    NO_COMPATIBLE_SUPPLY = (
        "no_compatible_supply",
        _("No compatible supply: no offer in the round met your order's constraints."),
    )
    ALL_OR_NONE_UNSATISFIABLE = (
        "all_or_none_unsatisfiable",
        _(
            "All or none not satisfiable: the whole quantity (or the minimum fill, or one pool "
            "for a gang job) could not be filled at once."
        ),
    )
    RATIONED = (
        "rationed",
        _(
            "Rationed: partly filled; the rest was priced at exactly your limit, or no supply "
            "was left."
        ),
    )
    TRADE_REDUCTION = (
        "trade_reduction",
        _(
            "Left out by trade reduction: to keep prices truthful, the round dropped the least "
            "valuable trade of its class."
        ),
    )


class Order(models.Model):
    """A bid. Placing it holds ``hold_amount`` (maximum cost plus maximum buyer fee, minor units)
    in the ledger by the pending transfer ``hold_transfer_id``; cancel or expiry voids it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Indexed by order_market_status and order_org_recent (every round rewrites every open
    # order, and so every index of the table).
    market = models.ForeignKey(
        Market, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    placed_by = models.CharField(max_length=64, help_text="user:<id> or key:<prefix>")
    quantity_kind = models.CharField(
        max_length=8, choices=QuantityKind.choices, default=QuantityKind.UNITS
    )
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    device_models = models.ManyToManyField(DeviceModel, blank=True, related_name="+")
    min_memory_gb = models.DecimalField(max_digits=8, decimal_places=1, null=True, blank=True)
    min_scu_per_unit = models.DecimalField(max_digits=9, decimal_places=4, null=True, blank=True)
    duration_hours = models.PositiveIntegerField()
    earliest_start = models.DateTimeField()
    latest_start = models.DateTimeField()
    limit_price = models.DecimalField(max_digits=14, decimal_places=6)
    price_per = models.CharField(
        max_length=8, choices=QuantityKind.choices, default=QuantityKind.UNITS
    )
    allowed_regions = ArrayField(models.CharField(max_length=8), default=list, blank=True)
    allowed_jurisdictions = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    buyer_country = models.CharField(max_length=2, blank=True)
    buyer_region = models.CharField(max_length=8, blank=True)
    buyer_city = models.CharField(max_length=64, blank=True)
    max_latency_tier = models.PositiveSmallIntegerField(
        choices=LatencyTier.choices, null=True, blank=True
    )
    min_renewable_share = models.DecimalField(null=True, blank=True, max_digits=5, decimal_places=4)
    max_pue = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    verified_only = models.BooleanField(default=False)
    placement = models.CharField(max_length=16, choices=Placement.choices, default=Placement.ANY)
    fill = models.CharField(max_length=16, choices=FillPolicy.choices, default=FillPolicy.PARTIAL)
    min_fill = models.DecimalField(max_digits=12, decimal_places=3, default=Decimal(1))
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.OPEN)
    filled_quantity = models.DecimalField(max_digits=12, decimal_places=3, default=Decimal(0))
    hold_amount = models.BigIntegerField()
    hold_transfer_id = models.UUIDField(unique=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Why the last round that saw this order left it (partly) unfilled; see matching.engine.Reason.
    unfilled_reason = models.CharField(max_length=32, blank=True)
    last_round = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(limit_price__gt=0), name="order_price_positive"),
            models.CheckConstraint(
                condition=Q(duration_hours__gte=1, duration_hours__lte=720),
                name="order_duration_range",
            ),
            models.CheckConstraint(
                condition=Q(latest_start__gte=F("earliest_start")), name="order_window_valid"
            ),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0, filled_quantity__lte=F("quantity")),
                name="order_fill_within_quantity",
            ),
            models.CheckConstraint(condition=Q(hold_amount__gt=0), name="order_hold_positive"),
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="order_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["market", "status"], name="order_market_status"),
            models.Index(fields=["organization", "-created_at"], name="order_org_recent"),
        ]

    def __str__(self) -> str:
        return f"order {self.public_id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ORDER_STATUSES

    @property
    def unfilled_reason_display(self) -> str | None:
        """The last round's reason in words, or None when there is none (filled, or not yet in a
        round); an unknown code shows as itself."""
        if not self.unfilled_reason:
            return None
        try:
            return str(UnfilledReason(self.unfilled_reason).label)
        except ValueError:
            return self.unfilled_reason


class MarketEvent(AppendOnly):
    """A change in an order's or offer's history: what, who and when. Never edited."""

    kind = models.CharField(max_length=32)
    actor = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.kind} at {self.at}"


class OrderEvent(MarketEvent):
    order = models.ForeignKey(  # order_event_order
        Order, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    status = models.CharField(max_length=20, choices=OrderStatus.choices)

    class Meta:
        indexes = [models.Index(fields=["order", "at"], name="order_event_order")]


class OfferEvent(MarketEvent):
    offer = models.ForeignKey(  # offer_event_offer
        Offer, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    status = models.CharField(max_length=16, choices=OfferStatus.choices)

    class Meta:
        indexes = [models.Index(fields=["offer", "at"], name="offer_event_offer")]


def event_data(**values: Any) -> dict[str, Any]:
    """Event payloads hold strings for Decimals and datetimes (JSON has no exact decimals)."""
    return {
        k: (str(v) if v is not None and not isinstance(v, bool | int | str) else v)
        for k, v in values.items()
    }
