"""Serializers of the provider agent API: one input and one output per operation."""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ledger import metering
from marketplace.leases import agent
from marketplace.leases import services as leases_services
from marketplace.models import Lease, LeaseStatus

MAX_ACCESS_ITEMS = 32
MAX_DATA_CHARS = 4096


class AgentLeaseListIn(serializers.Serializer[Any]):
    status = serializers.ChoiceField(
        choices=LeaseStatus.choices,
        required=False,
        help_text="only leases in this state (default: scheduled, provisioning and active)",
    )


class AgentLeaseOut(serializers.ModelSerializer[Lease]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    subject = serializers.SerializerMethodField(help_text="the subject of its metering events")
    market = serializers.CharField(source="market.slug", read_only=True)
    pool = serializers.UUIDField(source="pool.public_id", read_only=True)
    pool_name = serializers.CharField(source="pool.name", read_only=True)
    device_model = serializers.CharField(source="pool.device_model.slug", read_only=True)
    devices_per_unit = serializers.IntegerField(source="pool.devices_per_unit", read_only=True)
    price = serializers.DecimalField(
        max_digits=14, decimal_places=6, read_only=True, help_text="per unit-hour"
    )

    class Meta:
        model = Lease
        fields = [
            "id",
            "subject",
            "status",
            "market",
            "pool",
            "pool_name",
            "device_model",
            "devices_per_unit",
            "units",
            "price",
            "duration_hours",
            "starts_at",
            "ends_at",
            "reclaim_at",
            "closed_at",
            "close_reason",
        ]
        read_only_fields = fields

    def get_subject(self, lease: Lease) -> str:
        return leases_services.subject(lease)


class AgentReadyIn(serializers.Serializer[Any]):
    access = serializers.DictField(
        child=serializers.CharField(max_length=4096),
        allow_empty=False,
        help_text="how the buyer reaches the machines, e.g. an SSH command, a URL, credentials: "
        f"up to {MAX_ACCESS_ITEMS} names (≤ 64 characters) with text values (≤ 4,096). "
        "Stored encrypted; only the buyer's members can read it.",
    )

    def validate_access(self, access: dict[str, str]) -> dict[str, str]:
        if len(access) > MAX_ACCESS_ITEMS or any(len(name) > 64 for name in access):
            raise serializers.ValidationError(
                _("Up to %(count)s names of at most 64 characters each.")
                % {"count": MAX_ACCESS_ITEMS},
                code="access_too_large",
            )
        return access


class AgentFailIn(serializers.Serializer[Any]):
    reason = serializers.CharField(
        max_length=32, help_text="a short reason, e.g. `hardware_fault` (≤ 32 characters)"
    )


class AgentEventIn(serializers.Serializer[Any]):
    specversion = serializers.ChoiceField(choices=["1.0"], help_text="CloudEvents version")
    id = serializers.CharField(
        max_length=200, help_text="unique for its source, forever: a replay is a duplicate"
    )
    # "source" and "data" are CloudEvents' names; DRF's metaclass moves declared fields off the
    # class, so they do not really shadow Field.source or Serializer.data (mypy cannot know).
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=150, help_text="the reporting agent, e.g. a URI"
    )
    type = serializers.ChoiceField(choices=[metering.HEARTBEAT, metering.USAGE])
    subject = serializers.CharField(
        max_length=100, help_text="`lease:<id>`, as the lease list says"
    )
    time = serializers.DateTimeField(help_text="RFC 3339, when it happened")
    data = serializers.DictField(  # type: ignore[assignment]
        required=False,
        default=dict,
        help_text='heartbeats: `{"units_up": n}`, the units up during that minute, or '
        '`{"units_up": n, "minutes": k}`, up during each of the k minutes (1 to '
        f"{metering.MAX_HEARTBEAT_MINUTES}) starting with that one; usage: any object (≤ 4,096 "
        "characters as JSON)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        data = attrs["data"]
        if len(json.dumps(data)) > MAX_DATA_CHARS:
            raise serializers.ValidationError(
                {"data": _("At most 4,096 characters of JSON.")}, code="data_too_large"
            )
        if attrs["type"] == metering.HEARTBEAT:
            up = data.get("units_up")
            if isinstance(up, bool) or not isinstance(up, int) or not 0 <= up <= 1_000_000:
                raise serializers.ValidationError(
                    {"data": _("A heartbeat's data is {“units_up”: a whole number ≥ 0}.")},
                    code="invalid_units_up",
                )
            minutes = data.get("minutes", 1)
            if (
                isinstance(minutes, bool)
                or not isinstance(minutes, int)
                or not 1 <= minutes <= metering.MAX_HEARTBEAT_MINUTES
            ):
                raise serializers.ValidationError(
                    {
                        "data": _("A heartbeat's “minutes” is a whole number from 1 to %(max)s.")
                        % {"max": metering.MAX_HEARTBEAT_MINUTES}
                    },
                    code="invalid_minutes",
                )
        return attrs


class AgentEventBatchIn(serializers.Serializer[Any]):
    events = serializers.ListField(
        child=AgentEventIn(),
        allow_empty=False,
        max_length=agent.MAX_BATCH,
        help_text=f"1 to {agent.MAX_BATCH:,} CloudEvents",
    )


class AgentEventOutcomeOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]
    outcome = serializers.ChoiceField(choices=[o.value for o in agent.Outcome])
    reason = serializers.CharField(allow_null=True, help_text="why it was not accepted")


class AgentEventBatchOut(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="events stored by this batch")
    outcomes = AgentEventOutcomeOut(many=True, help_text="one per event, in order")
