"""Serializers of the market API: one input and one output per operation; Decimals are strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.api.serializers import FlatOutput, ShallowFields
from marketplace.models import (
    ClearingRound,
    DeviceModel,
    FillPolicy,
    Interconnect,
    LatencyTier,
    Lease,
    Market,
    Offer,
    Order,
    OrderEvent,
    Placement,
    Pool,
    QuantityKind,
    RoundClass,
    Site,
    UnfilledReason,
)


class DeviceOut(serializers.ModelSerializer[DeviceModel]):
    scu = serializers.SerializerMethodField(help_text="SCU per device at the reference precision")

    class Meta:
        model = DeviceModel
        fields = [
            "slug",
            "vendor",
            "name",
            "kind",
            "memory_gb",
            "memory_bandwidth_gbps",
            "fp64_tflops",
            "fp32_tflops",
            "bf16_tflops",
            "int8_tops",
            "tdp_watts",
            "scu",
            "source_url",
            "notes",
        ]
        read_only_fields = fields

    def get_scu(self, device: DeviceModel) -> str:
        return str(device.scu())


class MarketOut(serializers.ModelSerializer[Market]):
    class Meta:
        model = Market
        fields = [
            "slug",
            "name",
            "currency",
            "round_seconds",
            "price_tick",
            "fee_bps",
            "buyer_fee_bps",
            "sla_target",
            "max_units_per_order",
            "max_scu_per_order",
            "max_duration_hours",
            "horizon_hours",
            "active",
        ]
        read_only_fields = fields


class SiteIn(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    country = serializers.CharField(min_length=2, max_length=2)
    region = serializers.CharField(max_length=8, help_text="ISO 3166-2, e.g. CN-GS")
    city = serializers.CharField(max_length=64)
    jurisdiction = serializers.CharField(max_length=16, help_text="e.g. CN, EU, US")
    pue = serializers.DecimalField(max_digits=4, decimal_places=2)
    renewable_share = serializers.DecimalField(max_digits=5, decimal_places=4)
    carbon_g_per_kwh = serializers.IntegerField(min_value=0)
    certifications = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, default=list
    )


class SiteOut(serializers.ModelSerializer[Site]):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Site
        fields = [
            "id",
            "name",
            "country",
            "region",
            "city",
            "jurisdiction",
            "pue",
            "renewable_share",
            "carbon_g_per_kwh",
            "certifications",
            "created_at",
        ]
        read_only_fields = fields


class PoolIn(serializers.Serializer[Any]):
    site = serializers.UUIDField(help_text="id of one of your sites")
    name = serializers.CharField(max_length=100)
    device_model = serializers.SlugField(help_text="catalog slug, e.g. nvidia-h100-sxm")
    units = serializers.IntegerField(min_value=1)
    devices_per_unit = serializers.IntegerField(min_value=1, default=1)
    cpu_cores = serializers.IntegerField(min_value=0, default=0)
    ram_gb = serializers.IntegerField(min_value=0, default=0)
    disk_gb = serializers.IntegerField(min_value=0, default=0)
    interconnect = serializers.ChoiceField(choices=Interconnect.choices, default="none")


class PoolOut(serializers.ModelSerializer[Pool]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    site = serializers.UUIDField(source="site.public_id", read_only=True)
    device_model = serializers.SlugField(source="device_model.slug", read_only=True)
    scu_per_unit = serializers.DecimalField(max_digits=12, decimal_places=4, read_only=True)

    class Meta:
        model = Pool
        fields = [
            "id",
            "site",
            "name",
            "device_model",
            "devices_per_unit",
            "units",
            "scu_per_unit",
            "cpu_cores",
            "ram_gb",
            "disk_gb",
            "interconnect",
            "verified",
            "created_at",
        ]
        read_only_fields = fields


class OfferIn(serializers.Serializer[Any]):
    market = serializers.SlugField(help_text="market slug, e.g. cny")
    pool = serializers.UUIDField(help_text="id of one of your pools")
    units = serializers.IntegerField()
    available_from = serializers.DateTimeField()
    available_until = serializers.DateTimeField()
    min_price = serializers.DecimalField(max_digits=14, decimal_places=6, help_text="per unit-hour")
    min_lease_hours = serializers.IntegerField(default=1)
    max_lease_hours = serializers.IntegerField(default=720)


class OfferOut(serializers.ModelSerializer[Offer]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    market = serializers.SlugField(source="market.slug", read_only=True)
    pool = serializers.UUIDField(source="pool.public_id", read_only=True)
    min_price_per_scu_hour = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = [
            "id",
            "market",
            "pool",
            "units",
            "available_from",
            "available_until",
            "min_price",
            "min_price_per_scu_hour",
            "min_lease_hours",
            "max_lease_hours",
            "status",
            "created_at",
        ]
        read_only_fields = fields

    def get_min_price_per_scu_hour(self, offer: Offer) -> str | None:
        scu = offer.pool.scu_per_unit
        return str((offer.min_price / scu).quantize(Decimal("0.0001"))) if scu else None


class LocationIn(serializers.Serializer[Any]):
    country = serializers.CharField(min_length=2, max_length=2)
    region = serializers.CharField(max_length=8, required=False, default="")
    city = serializers.CharField(max_length=64, required=False, default="")


class OrderIn(ShallowFields, serializers.Serializer[Any]):
    market = serializers.SlugField()
    quantity = serializers.DecimalField(max_digits=12, decimal_places=3)
    quantity_kind = serializers.ChoiceField(choices=QuantityKind.choices, default="units")
    limit_price = serializers.DecimalField(max_digits=14, decimal_places=6)
    price_per = serializers.ChoiceField(
        choices=QuantityKind.choices,
        default="units",
        help_text="units: per unit-hour; scu: per SCU-hour",
    )
    duration_hours = serializers.IntegerField()
    earliest_start = serializers.DateTimeField()
    latest_start = serializers.DateTimeField()
    device_models = serializers.ListField(
        child=serializers.SlugField(), required=False, default=list
    )
    min_memory_gb = serializers.DecimalField(
        max_digits=8, decimal_places=1, required=False, allow_null=True, default=None
    )
    min_scu_per_unit = serializers.DecimalField(
        max_digits=9, decimal_places=4, required=False, allow_null=True, default=None
    )
    allowed_regions = serializers.ListField(
        child=serializers.CharField(max_length=8), required=False, default=list
    )
    allowed_jurisdictions = serializers.ListField(
        child=serializers.CharField(max_length=16), required=False, default=list
    )
    buyer_location = LocationIn(required=False, allow_null=True, default=None)
    max_latency_tier = serializers.ChoiceField(
        choices=LatencyTier.choices, required=False, allow_null=True, default=None
    )
    min_renewable_share = serializers.DecimalField(
        max_digits=5, decimal_places=4, required=False, allow_null=True, default=None
    )
    max_pue = serializers.DecimalField(
        max_digits=4, decimal_places=2, required=False, allow_null=True, default=None
    )
    verified_only = serializers.BooleanField(default=False)
    placement = serializers.ChoiceField(choices=Placement.choices, default="any")
    fill = serializers.ChoiceField(choices=FillPolicy.choices, default="partial")
    min_fill = serializers.DecimalField(
        max_digits=12, decimal_places=3, required=False, allow_null=True, default=None
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="time in force; default: one round interval after latest_start (the round that "
        "delivers at latest_start still sees the order)",
    )


class OrderPreviewIn(OrderIn):
    """A draft: the same fields as an order; nothing is placed or held."""


class OrderEventOut(serializers.ModelSerializer[OrderEvent]):
    class Meta:
        model = OrderEvent
        fields = ["kind", "status", "actor", "data", "at"]
        read_only_fields = fields


def money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": currency}


class MoneyOut(serializers.Serializer[Any]):
    amount_minor = serializers.IntegerField(help_text="integer minor units (fen, cents)")
    currency = serializers.CharField(help_text="ISO 4217")


class LeaseOut(serializers.ModelSerializer[Lease]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    round = serializers.IntegerField(source="round.number", read_only=True)
    price = serializers.DecimalField(
        max_digits=14, decimal_places=6, read_only=True, help_text="per unit-hour"
    )
    price_per_scu_hour = serializers.SerializerMethodField()
    cost = serializers.SerializerMethodField(help_text="price × units × hours, frozen")
    buyer_fee = serializers.SerializerMethodField()

    class Meta:
        model = Lease
        fields = [
            "id",
            "round",
            "units",
            "price",
            "price_per_scu_hour",
            "duration_hours",
            "starts_at",
            "ends_at",
            "status",
            "cost",
            "buyer_fee",
        ]
        read_only_fields = fields

    def get_price_per_scu_hour(self, lease: Lease) -> str | None:
        scu = lease.scu_per_unit
        return str((lease.price / scu).quantize(Decimal("0.0001"))) if scu else None

    @extend_schema_field(MoneyOut)
    def get_cost(self, lease: Lease) -> dict[str, Any]:
        return money(lease.cost, lease.market.currency)

    @extend_schema_field(MoneyOut)
    def get_buyer_fee(self, lease: Lease) -> dict[str, Any]:
        return money(lease.buyer_fee, lease.market.currency)


class OrderOut(FlatOutput, serializers.ModelSerializer[Order]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    market = serializers.SlugField(source="market.slug", read_only=True)
    device_models: serializers.SlugRelatedField[DeviceModel] = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )
    buyer_location = serializers.SerializerMethodField()
    hold = serializers.SerializerMethodField()
    unfilled_reason = serializers.SerializerMethodField(
        help_text="why the last round left the order (partly) unfilled; null when filled or "
        "not yet in a round"
    )
    unfilled_reason_display = serializers.CharField(
        read_only=True, allow_null=True, help_text="the reason in words, in the request's language"
    )
    last_round = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="number of the last round that saw the order"
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "market",
            "status",
            "quantity",
            "quantity_kind",
            "filled_quantity",
            "limit_price",
            "price_per",
            "duration_hours",
            "earliest_start",
            "latest_start",
            "expires_at",
            "device_models",
            "min_memory_gb",
            "min_scu_per_unit",
            "allowed_regions",
            "allowed_jurisdictions",
            "buyer_location",
            "max_latency_tier",
            "min_renewable_share",
            "max_pue",
            "verified_only",
            "placement",
            "fill",
            "min_fill",
            "hold",
            "unfilled_reason",
            "unfilled_reason_display",
            "last_round",
            "cancel_requested_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_buyer_location(self, order: Order) -> dict[str, str] | None:
        if not order.buyer_country:
            return None
        return {
            "country": order.buyer_country,
            "region": order.buyer_region,
            "city": order.buyer_city,
        }

    def get_hold(self, order: Order) -> dict[str, Any]:
        return {
            "amount_minor": order.hold_amount,
            "currency": order.market.currency,
            "transfer_id": str(order.hold_transfer_id),
        }

    @extend_schema_field(serializers.ChoiceField(choices=UnfilledReason.choices, allow_null=True))
    def get_unfilled_reason(self, order: Order) -> str | None:
        return order.unfilled_reason or None


class OrderDetailOut(OrderOut):
    events = OrderEventOut(many=True, read_only=True)
    leases = LeaseOut(many=True, read_only=True)

    class Meta(OrderOut.Meta):
        fields = [*OrderOut.Meta.fields, "events", "leases"]
        read_only_fields = fields


class PreviewClassOut(serializers.Serializer[Any]):
    site = serializers.CharField()
    region = serializers.CharField()
    device = serializers.CharField()
    scu_per_unit = serializers.DecimalField(max_digits=12, decimal_places=4)
    free_units = serializers.IntegerField()
    min_price = serializers.DecimalField(max_digits=14, decimal_places=6)
    max_price = serializers.DecimalField(max_digits=14, decimal_places=6)


class PreviewOut(serializers.Serializer[Any]):
    classes = PreviewClassOut(many=True)
    excluded = serializers.DictField(
        child=serializers.IntegerField(), help_text="reason → offers it excluded"
    )
    compatible_units = serializers.IntegerField()
    affordable_units = serializers.IntegerField(help_text="compatible units at or under the limit")
    hold_amount_minor = serializers.IntegerField(allow_null=True)


class LevelOut(serializers.Serializer[Any]):
    price = serializers.DecimalField(max_digits=14, decimal_places=6)
    units = serializers.IntegerField()
    count = serializers.IntegerField()


class BookClassOut(serializers.Serializer[Any]):
    site = serializers.CharField()
    region = serializers.CharField()
    device = serializers.CharField()
    scu_per_unit = serializers.DecimalField(max_digits=12, decimal_places=4)
    asks = LevelOut(many=True)
    bids = LevelOut(many=True)
    last_price = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)


class BookOut(serializers.Serializer[Any]):
    market = serializers.SlugField()
    currency = serializers.CharField()
    classes = BookClassOut(many=True)


# --------------------------------------------------------------------------- market data


class RoundClassOut(serializers.ModelSerializer[RoundClass]):
    device = serializers.CharField(source="device_slug", read_only=True)
    price = serializers.DecimalField(
        max_digits=14,
        decimal_places=6,
        read_only=True,
        allow_null=True,
        help_text="clearing price per unit-hour; null when nothing traded and no price is defined",
    )
    price_per_scu_hour = serializers.DecimalField(
        source="price_per_scu", max_digits=20, decimal_places=6, read_only=True, allow_null=True
    )

    class Meta:
        model = RoundClass
        fields = [
            "key",
            "device",
            "region",
            "country",
            "scu_per_unit",
            "price",
            "price_per_scu_hour",
            "price_low",
            "price_high",
            "units",
            "offered_units",
            "unit_hours",
            "attributes",
        ]
        read_only_fields = fields


class RoundOut(serializers.ModelSerializer[ClearingRound]):
    currency = serializers.CharField(source="market.currency", read_only=True)
    buyer_payments_minor = serializers.IntegerField(source="buyer_payments", read_only=True)
    seller_receipts_minor = serializers.IntegerField(source="seller_receipts", read_only=True)

    class Meta:
        model = ClearingRound
        fields = [
            "number",
            "delivery_start",
            "mechanism",
            "optimal",
            "orders",
            "offers",
            "volume_units",
            "volume_unit_hours",
            "welfare_per_hour",
            "welfare",
            "currency",
            "buyer_payments_minor",
            "seller_receipts_minor",
            "certificate_ok",
            "started_at",
            "duration_ms",
        ]
        read_only_fields = fields


class RoundDetailOut(RoundOut):
    classes = RoundClassOut(many=True, read_only=True)

    class Meta(RoundOut.Meta):
        fields = [
            *RoundOut.Meta.fields,
            "inputs_digest",
            "result_digest",
            "certificate",
            "notes",
            "classes",
        ]
        read_only_fields = fields


class PricesOut(serializers.Serializer[Any]):
    market = serializers.SlugField()
    currency = serializers.CharField()
    round = RoundOut(allow_null=True, help_text="the last round; null before the first")
    classes = RoundClassOut(many=True)


class PriceHistoryIn(serializers.Serializer[Any]):
    device = serializers.SlugField(required=False, help_text="device model slug")
    region = serializers.CharField(required=False, max_length=8, help_text="ISO 3166-2")
    key = serializers.CharField(required=False, max_length=64, help_text="class key")
    limit = serializers.IntegerField(
        required=False, default=500, min_value=1, max_value=5000, help_text="latest points"
    )


class PricePointOut(serializers.Serializer[Any]):
    round = serializers.IntegerField()
    delivery_start = serializers.DateTimeField()
    price = serializers.DecimalField(
        max_digits=14,
        decimal_places=6,
        help_text="per unit-hour: the lowest clearing price among the series' classes",
    )
    price_high = serializers.DecimalField(
        max_digits=14, decimal_places=6, help_text="the highest (equal to price for one class)"
    )
    price_per_scu_hour = serializers.DecimalField(
        source="price_per_scu", max_digits=20, decimal_places=6, allow_null=True
    )
    units = serializers.IntegerField(help_text="units traded in the series' classes")


class PriceSeriesOut(serializers.Serializer[Any]):
    device = serializers.CharField()
    region = serializers.CharField()
    scu_per_unit = serializers.DecimalField(max_digits=9, decimal_places=4)
    points = PricePointOut(many=True)


class PriceHistoryOut(serializers.Serializer[Any]):
    market = serializers.SlugField()
    currency = serializers.CharField()
    series = PriceSeriesOut(many=True)
