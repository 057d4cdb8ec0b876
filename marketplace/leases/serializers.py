"""Serializers of the lease and statement API: one input and one output per operation. Terms
carry their currency (``MoneyOut``); summaries, settlements and statements are in integer minor
units of the currency they name."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.leases.queries import LeaseRole
from marketplace.models import Lease, LeaseEvent, LeaseStatus, Organization, Settlement
from marketplace.trading.serializers import LeaseOut


class LeaseListIn(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=LeaseStatus.choices, required=False)
    role = serializers.ChoiceField(
        choices=LeaseRole.choices,
        required=False,
        help_text="only the leases you bought (buyer) or provided (provider)",
    )


class LeaseSiteOut(serializers.Serializer[Any]):
    name = serializers.CharField()
    country = serializers.CharField()
    region = serializers.CharField()
    city = serializers.CharField()


class LeaseTermsOut(LeaseOut):
    """A lease's frozen terms and how it ended, seen by one of its sides (context
    ``organization``): the buyer sees its order, the provider its offer and pool. The price,
    cost and fee fields are the order page's (``LeaseOut``)."""

    role = serializers.SerializerMethodField(help_text="your side of the lease")
    market = serializers.SlugField(source="market.slug", read_only=True)
    order = serializers.SerializerMethodField(help_text="your order (buyer only)")
    offer = serializers.SerializerMethodField(help_text="your offer (provider only)")
    pool = serializers.SerializerMethodField(help_text="your pool (provider only)")
    device_model = serializers.SlugField(source="pool.device_model.slug", read_only=True)
    site = LeaseSiteOut(source="pool.site", read_only=True)

    class Meta:
        model = Lease
        fields = [
            "id",
            "role",
            "market",
            "round",
            "order",
            "offer",
            "pool",
            "device_model",
            "site",
            "units",
            "scu_per_unit",
            "price",
            "price_per_scu_hour",
            "duration_hours",
            "starts_at",
            "ends_at",
            "cost",
            "buyer_fee",
            "status",
            "reclaim_at",
            "closed_at",
            "close_reason",
            "created_at",
        ]
        read_only_fields = fields

    def _organization(self) -> Organization:
        organization: Organization = self.context["organization"]
        return organization

    @extend_schema_field(serializers.ChoiceField(choices=LeaseRole.choices))
    def get_role(self, lease: Lease) -> str:
        if lease.buyer_id == self._organization().pk:
            return LeaseRole.BUYER.value
        return LeaseRole.PROVIDER.value

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_order(self, lease: Lease) -> str | None:
        if lease.buyer_id != self._organization().pk:
            return None
        return str(lease.order.public_id)

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_offer(self, lease: Lease) -> str | None:
        if lease.provider_id != self._organization().pk:
            return None
        return str(lease.offer.public_id)

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_pool(self, lease: Lease) -> str | None:
        if lease.provider_id != self._organization().pk:
            return None
        return str(lease.pool.public_id)


class LeaseSummaryOut(serializers.Serializer[Any]):
    as_of = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=LeaseStatus.choices)
    currency = serializers.CharField(help_text="of every *_minor amount")
    elapsed_seconds = serializers.IntegerField(help_text="of the lease's window so far")
    delivered_unit_seconds = serializers.IntegerField(help_text="counted from the heartbeats")
    unit_hours_delivered = serializers.DecimalField(max_digits=14, decimal_places=2)
    availability = serializers.DecimalField(
        max_digits=7,
        decimal_places=6,
        allow_null=True,
        help_text="delivered ÷ (units × elapsed); null before the start",
    )
    charged_minor = serializers.IntegerField(source="charged", help_text="Σ settlement charges")
    buyer_fees_minor = serializers.IntegerField(source="buyer_fees")
    platform_fees_minor = serializers.IntegerField(source="platform_fees")
    sla_credits_minor = serializers.IntegerField(
        source="sla_credits", help_text="credited to the buyer (with any reclaim penalty)"
    )
    refunded_minor = serializers.IntegerField(
        source="refunded", help_text="returned to the buyer by the final settlement"
    )
    unsettled_estimate_minor = serializers.IntegerField(
        source="unsettled_estimate",
        help_text="an estimate: price × what was delivered since the last settlement",
    )
    cost_so_far_minor = serializers.IntegerField(
        source="cost_so_far", help_text="charged + the unsettled estimate"
    )
    settlements = serializers.IntegerField()
    next_settlement_at = serializers.DateTimeField(
        allow_null=True, help_text="null once the lease is settled for good"
    )


class SettlementOut(serializers.ModelSerializer[Settlement]):
    charge_minor = serializers.IntegerField(source="charge", read_only=True)
    buyer_fee_minor = serializers.IntegerField(source="buyer_fee", read_only=True)
    platform_fee_minor = serializers.IntegerField(source="platform_fee", read_only=True)
    sla_credit_minor = serializers.IntegerField(source="sla_credit", read_only=True)
    refund_minor = serializers.IntegerField(source="refund", read_only=True)

    class Meta:
        model = Settlement
        fields = [
            "number",
            "at",
            "delivered_unit_seconds",
            "charge_minor",
            "buyer_fee_minor",
            "platform_fee_minor",
            "sla_credit_minor",
            "refund_minor",
            "availability",
            "final",
        ]
        read_only_fields = fields


class LeaseEventOut(serializers.ModelSerializer[LeaseEvent]):
    class Meta:
        model = LeaseEvent
        fields = ["kind", "status", "actor", "reason", "at"]
        read_only_fields = fields


class LeaseDetailOut(LeaseTermsOut):
    """Context: ``organization`` and the lease's ``summary``."""

    summary = serializers.SerializerMethodField()
    settlements = SettlementOut(many=True, read_only=True)
    events = LeaseEventOut(many=True, read_only=True)

    class Meta(LeaseTermsOut.Meta):
        fields = [*LeaseTermsOut.Meta.fields, "summary", "settlements", "events"]
        read_only_fields = fields

    @extend_schema_field(LeaseSummaryOut)
    def get_summary(self, lease: Lease) -> dict[str, Any]:
        return dict(LeaseSummaryOut(self.context["summary"]).data)


class ReclaimIn(serializers.Serializer[Any]):
    at = serializers.DateTimeField(
        help_text="when the units come back; at least LEASE_RECLAIM_NOTICE_HOURS from now"
    )


class StatementIn(serializers.Serializer[Any]):
    currency = serializers.CharField(
        min_length=3,
        max_length=3,
        required=False,
        help_text="ISO 4217 of one of the markets; default: the first open market's",
    )


class _LineOut(serializers.Serializer[Any]):
    settled_at = serializers.DateTimeField(source="at")
    lease = serializers.UUIDField()
    settlement = serializers.IntegerField(help_text="the settlement's number within its lease")
    final = serializers.BooleanField()
    charge_minor = serializers.IntegerField(source="charge")


class BuyerLineOut(_LineOut):
    buyer_fee_minor = serializers.IntegerField(source="fee")
    sla_credit_minor = serializers.IntegerField(source="sla_credit", help_text="received")
    refund_minor = serializers.IntegerField(source="refund")
    net_minor = serializers.IntegerField(source="net", help_text="charge + buyer fee − credit")


class ProviderLineOut(_LineOut):
    platform_fee_minor = serializers.IntegerField(source="fee")
    sla_credit_minor = serializers.IntegerField(source="sla_credit", help_text="paid")
    net_minor = serializers.IntegerField(source="net", help_text="charge − platform fee − credit")


class BuyerTotalsOut(serializers.Serializer[Any]):
    charge_minor = serializers.IntegerField(source="charge")
    buyer_fee_minor = serializers.IntegerField(source="fee")
    sla_credit_minor = serializers.IntegerField(source="sla_credit")
    refund_minor = serializers.IntegerField(source="refund")
    net_minor = serializers.IntegerField(source="net")


class ProviderTotalsOut(serializers.Serializer[Any]):
    charge_minor = serializers.IntegerField(source="charge")
    platform_fee_minor = serializers.IntegerField(source="fee")
    sla_credit_minor = serializers.IntegerField(source="sla_credit")
    net_minor = serializers.IntegerField(source="net")


class BuyerSideOut(serializers.Serializer[Any]):
    lines = BuyerLineOut(many=True)
    totals = BuyerTotalsOut()


class ProviderSideOut(serializers.Serializer[Any]):
    lines = ProviderLineOut(many=True)
    totals = ProviderTotalsOut()


class StatementOut(serializers.Serializer[Any]):
    organization = serializers.UUIDField(source="organization.public_id")
    month = serializers.CharField(help_text="yyyy-mm")
    currency = serializers.CharField(help_text="ISO 4217, of every *_minor amount")
    period_start = serializers.DateTimeField(source="start")
    period_end = serializers.DateTimeField(source="end", help_text="exclusive")
    buyer = BuyerSideOut(help_text="settlements of the leases you bought")
    provider = ProviderSideOut(help_text="settlements of the leases you provided")


class LeaseAccessOut(serializers.Serializer[dict[str, Any]]):
    access = serializers.DictField(
        child=serializers.CharField(),
        help_text="What the provider's agent posted (e.g. an SSH command), decrypted for you.",
    )
