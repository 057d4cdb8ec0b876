"""OpenAPI examples of the leases API (``marketplace.leases.api``: leases, access, reclaim,
statements) and of the provider agent API (``marketplace.leases.agent_api``), keyed by
operationId; ``marketplace.api.schema`` puts them into the schema. They follow the lease of the
trading examples (``LEASE``, filled by ``FILLED_ORDER`` from ``OFFER`` on ``POOL``)."""

from __future__ import annotations

from typing import Any

from marketplace.accounts.examples import ORG
from marketplace.api.schema import page
from marketplace.trading.examples import FILLED_ORDER, LEASE, OFFER, POOL

# --------------------------------------------------------------------------- provider agent API

AGENT_LEASE = {
    "id": LEASE["id"],
    "subject": f"lease:{LEASE['id']}",
    "status": "scheduled",
    "market": "cny",
    "pool": POOL["id"],
    "pool_name": "h100-x8",
    "device_model": "nvidia-h100-sxm",
    "devices_per_unit": 8,
    "units": 8,
    "price": "85.000000",
    "duration_hours": 24,
    "starts_at": "2026-11-24T00:01:00Z",
    "ends_at": "2026-11-25T00:01:00Z",
    "reclaim_at": None,
    "closed_at": None,
    "close_reason": "",
}
AGENT_EVENTS = [
    {
        "specversion": "1.0",
        "id": "hb-2026-11-24T00:05",
        "source": "agent/qingyang-1",
        "type": "com.suanli.heartbeat",
        "subject": AGENT_LEASE["subject"],
        "time": "2026-11-24T00:05:07Z",
        "data": {"units_up": 8},
    },
    {
        "specversion": "1.0",
        "id": "usage-2026-11-24T00:05",
        "source": "agent/qingyang-1",
        "type": "com.suanli.usage",
        "subject": AGENT_LEASE["subject"],
        "time": "2026-11-24T00:05:07Z",
        "data": {"gpu_seconds": 2400, "gpu_utilization": "0.93"},
    },
    {
        "specversion": "1.0",
        "id": "hb-2026-11-24T00:06+30",
        "source": "agent/qingyang-1",
        "type": "com.suanli.heartbeat",
        "subject": AGENT_LEASE["subject"],
        "time": "2026-11-24T00:06:02Z",
        "data": {"units_up": 8, "minutes": 30},
    },
    {
        "specversion": "1.0",
        "id": "hb-2026-11-23T21:00",
        "source": "agent/qingyang-1",
        "type": "com.suanli.heartbeat",
        "subject": AGENT_LEASE["subject"],
        "time": "2026-11-23T21:00:03Z",
        "data": {"units_up": 8},
    },
]


# --------------------------------------------------------------------------- leases and statements

# The trading examples' LEASE, running: settled at 01:01 and 02:01, seen at 02:31 (8 units,
# 85.00 per unit-hour, 3% platform fee; one minute of heartbeats missed).
LEASE_DETAIL = {
    **LEASE,
    "role": "buyer",
    "market": "cny",
    "order": FILLED_ORDER["id"],
    "offer": None,
    "pool": None,
    "device_model": "nvidia-h100-sxm",
    "site": {"name": "Qingyang 1", "country": "CN", "region": "CN-GS", "city": "Qingyang"},
    "scu_per_unit": "7.9152",
    "status": "active",
    "reclaim_at": None,
    "closed_at": None,
    "close_reason": "",
    "created_at": "2026-11-24T00:00:02Z",
}
LEASE_SETTLEMENTS = [
    {
        "number": 1,
        "at": "2026-11-24T01:01:00Z",
        "delivered_unit_seconds": 28800,
        "charge_minor": 68000,
        "buyer_fee_minor": 0,
        "platform_fee_minor": 2040,
        "sla_credit_minor": 0,
        "refund_minor": 0,
        "availability": None,
        "final": False,
    },
    {
        "number": 2,
        "at": "2026-11-24T02:01:00Z",
        "delivered_unit_seconds": 57120,
        "charge_minor": 66867,
        "buyer_fee_minor": 0,
        "platform_fee_minor": 2006,
        "sla_credit_minor": 0,
        "refund_minor": 0,
        "availability": None,
        "final": False,
    },
]
LEASE_EVENTS = [
    {
        "kind": "provisioning",
        "status": "provisioning",
        "actor": "key:9f8e7d6c5b4a",
        "reason": "",
        "at": "2026-11-24T00:00:30Z",
    },
    {
        "kind": "active",
        "status": "active",
        "actor": "key:9f8e7d6c5b4a",
        "reason": "",
        "at": "2026-11-24T00:01:00Z",
    },
]
LEASE_SUMMARY = {
    "as_of": "2026-11-24T02:31:00Z",
    "status": "active",
    "currency": "CNY",
    "elapsed_seconds": 9000,
    "delivered_unit_seconds": 71520,
    "unit_hours_delivered": "19.87",
    "availability": "0.993333",
    "charged_minor": 134867,
    "buyer_fees_minor": 0,
    "platform_fees_minor": 4046,
    "sla_credits_minor": 0,
    "refunded_minor": 0,
    "unsettled_estimate_minor": 34000,  # 4 unit-hours since 02:01
    "cost_so_far_minor": 168867,
    "settlements": 2,
    "next_settlement_at": "2026-11-24T03:01:00Z",
}
# The buyer ended it at 02:31: the final settlement charges the last 4 unit-hours, credits 10%
# of the charges for availability under the 99.5% target, and returns the rest.
FINAL_SETTLEMENT = {
    "number": 3,
    "at": "2026-11-24T02:31:00Z",
    "delivered_unit_seconds": 71520,
    "charge_minor": 34000,
    "buyer_fee_minor": 0,
    "platform_fee_minor": 1020,
    "sla_credit_minor": 16887,
    "refund_minor": 1463133,
    "availability": "0.993333",
    "final": True,
}
ENDED_LEASE = {
    **LEASE_DETAIL,
    "status": "cancelled",
    "closed_at": "2026-11-24T02:31:00Z",
    "close_reason": "cancelled",
    "summary": {
        **LEASE_SUMMARY,
        "status": "cancelled",
        "charged_minor": 168867,
        "platform_fees_minor": 5066,
        "sla_credits_minor": 16887,
        "refunded_minor": 1463133,
        "unsettled_estimate_minor": 0,
        "settlements": 3,
        "next_settlement_at": None,
    },
    "settlements": [*LEASE_SETTLEMENTS, FINAL_SETTLEMENT],
    "events": [
        *LEASE_EVENTS,
        {
            "kind": "cancelled",
            "status": "cancelled",
            "actor": "key:1a2b3c4d5e6f",
            "reason": "cancelled",
            "at": "2026-11-24T02:31:00Z",
        },
    ],
}
RECLAIMED_LEASE = {
    **LEASE_DETAIL,
    "role": "provider",
    "order": None,
    "offer": OFFER["id"],
    "pool": POOL["id"],
    "reclaim_at": "2026-11-24T12:00:00Z",
    "summary": LEASE_SUMMARY,
    "settlements": LEASE_SETTLEMENTS,
    "events": [
        *LEASE_EVENTS,
        {
            "kind": "reclaim_notice",
            "status": "active",
            "actor": "user:42",
            "reason": "2026-11-24T12:00:00+00:00",
            "at": "2026-11-24T02:31:00Z",
        },
    ],
}


def _statement_line(settlement: dict[str, Any]) -> dict[str, Any]:
    charge, credit = settlement["charge_minor"], settlement["sla_credit_minor"]
    return {
        "settled_at": settlement["at"],
        "lease": LEASE["id"],
        "settlement": settlement["number"],
        "final": settlement["final"],
        "charge_minor": charge,
        "buyer_fee_minor": settlement["buyer_fee_minor"],
        "sla_credit_minor": credit,
        "refund_minor": settlement["refund_minor"],
        "net_minor": charge + settlement["buyer_fee_minor"] - credit,
    }


# operationId → (request example or None, response example)
EXAMPLES: dict[str, tuple[dict[str, Any] | None, Any]] = {
    # provider agent API
    "agent_leases_list": (None, page(AGENT_LEASE)),
    "agent_leases_acknowledge": (None, {**AGENT_LEASE, "status": "provisioning"}),
    "agent_leases_ready": (
        {
            "access": {
                "ssh": "ssh -p 2222 lease-2c9e4b7a@gw.qingyang-1.example.com",
                "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n…",
                "notes": "8 × H100 SXM per node, NVLink; /data is local NVMe.",
            }
        },
        {**AGENT_LEASE, "status": "active"},
    ),
    "agent_leases_fail": (
        {"reason": "hardware_fault"},
        {
            **AGENT_LEASE,
            "status": "failed",
            "closed_at": "2026-11-24T06:12:00Z",
            "close_reason": "hardware_fault",
        },
    ),
    "agent_events_create": (
        {"events": AGENT_EVENTS},
        {
            "accepted": 3,
            "outcomes": [
                {
                    "id": "hb-2026-11-24T00:05",
                    "source": "agent/qingyang-1",
                    "outcome": "accepted",
                    "reason": None,
                },
                {
                    "id": "usage-2026-11-24T00:05",
                    "source": "agent/qingyang-1",
                    "outcome": "accepted",
                    "reason": None,
                },
                {
                    "id": "hb-2026-11-24T00:06+30",
                    "source": "agent/qingyang-1",
                    "outcome": "accepted",
                    "reason": None,
                },
                {
                    "id": "hb-2026-11-23T21:00",
                    "source": "agent/qingyang-1",
                    "outcome": "too_late",
                    "reason": "Before the lease's open settlement period less the grace "
                    "period, or the lease is finally settled.",
                },
            ],
        },
    ),
    # leases and statements
    "leases_list": (None, page(LEASE_DETAIL)),
    "leases_retrieve": (
        None,
        {
            **LEASE_DETAIL,
            "summary": LEASE_SUMMARY,
            "settlements": LEASE_SETTLEMENTS,
            "events": LEASE_EVENTS,
        },
    ),
    "leases_end": (None, ENDED_LEASE),
    "leases_access_retrieve": (
        None,
        {"access": {"ssh": "ssh -p 2222 lease@gpu-7.qingyang.example", "password": "…"}},
    ),
    "leases_reclaim": ({"at": "2026-11-24T12:00:00Z"}, RECLAIMED_LEASE),
    "statements_retrieve": (
        None,
        {
            "organization": ORG,
            "month": "2026-11",
            "currency": "CNY",
            "period_start": "2026-11-01T00:00:00Z",
            "period_end": "2026-12-01T00:00:00Z",
            "buyer": {
                "lines": [_statement_line(s) for s in [*LEASE_SETTLEMENTS, FINAL_SETTLEMENT]],
                "totals": {
                    "charge_minor": 168867,
                    "buyer_fee_minor": 0,
                    "sla_credit_minor": 16887,
                    "refund_minor": 1463133,
                    "net_minor": 151980,
                },
            },
            "provider": {
                "lines": [],
                "totals": {
                    "charge_minor": 0,
                    "platform_fee_minor": 0,
                    "sla_credit_minor": 0,
                    "net_minor": 0,
                },
            },
        },
    ),
}
