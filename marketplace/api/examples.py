"""Request and response examples for every API operation, added to the OpenAPI schema by a
drf-spectacular postprocessing hook (keyed by operationId, so views stay short)."""

from __future__ import annotations

from typing import Any

ORG = "3f6c2a1e-8b4d-4e5f-9a0b-1c2d3e4f5a6b"
ORGANIZATION = {
    "id": ORG,
    "legal_name": "Shanghai Model Works Ltd.",
    "country": "CN",
    "registration_id": "91310000MA1K4XXXXX",
    "is_provider": False,
    "is_buyer": True,
    "kyb_status": "approved",
    "can_trade": True,
    "created_at": "2026-11-01T08:00:00Z",
}
KEY = {
    "id": "8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968",
    "name": "trading bot",
    "prefix": "sx_1a2b3c4d5e6f_",
    "scopes": ["read", "trade"],
    "created_at": "2026-11-20T09:00:00Z",
    "last_used_at": "2026-11-23T11:59:00Z",
    "revoked_at": None,
}
SITE = {
    "id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    "name": "Qingyang 1",
    "country": "CN",
    "region": "CN-GS",
    "city": "Qingyang",
    "jurisdiction": "CN",
    "pue": "1.15",
    "renewable_share": "0.6200",
    "carbon_g_per_kwh": 420,
    "certifications": ["ISO27001", "MLPS-3"],
    "created_at": "2026-11-02T10:00:00Z",
}
POOL = {
    "id": "5f0c3a8e-1b2d-4c3e-9f8a-7b6c5d4e3f2a",
    "site": SITE["id"],
    "name": "h100-x8",
    "device_model": "nvidia-h100-sxm",
    "devices_per_unit": 8,
    "units": 10,
    "scu_per_unit": "7.9152",
    "cpu_cores": 112,
    "ram_gb": 2048,
    "disk_gb": 30000,
    "interconnect": "infiniband",
    "verified": True,
    "created_at": "2026-11-02T10:05:00Z",
}
OFFER = {
    "id": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
    "market": "cny",
    "pool": POOL["id"],
    "units": 6,
    "available_from": "2026-11-24T00:00:00Z",
    "available_until": "2026-11-26T00:00:00Z",
    "min_price": "80.000000",
    "min_price_per_scu_hour": "10.1071",
    "min_lease_hours": 1,
    "max_lease_hours": 48,
    "status": "active",
    "created_at": "2026-11-23T12:00:00Z",
}
ORDER = {
    "id": "6b3c1f5e-0d7e-4d7b-9a43-1f0c3c2f8a11",
    "market": "cny",
    "status": "open",
    "quantity": "8.000",
    "quantity_kind": "units",
    "filled_quantity": "0.000",
    "limit_price": "18.500000",
    "price_per": "units",
    "duration_hours": 24,
    "earliest_start": "2026-11-24T00:00:00Z",
    "latest_start": "2026-11-24T06:00:00Z",
    "expires_at": "2026-11-24T06:00:00Z",
    "device_models": ["nvidia-h100-sxm"],
    "min_memory_gb": None,
    "min_scu_per_unit": None,
    "allowed_regions": [],
    "allowed_jurisdictions": ["CN"],
    "buyer_location": None,
    "max_latency_tier": None,
    "min_renewable_share": "0.5000",
    "max_pue": None,
    "verified_only": False,
    "placement": "same_pool",
    "fill": "all_or_none",
    "min_fill": "8.000",
    "hold": {
        "amount_minor": 355200,
        "currency": "CNY",
        "transfer_id": "0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b",
    },
    "unfilled_reason": "priced_out",
    "unfilled_reason_display": "Priced out: compatible supply cleared only above your limit price.",
    "last_round": 29924640,
    "cancel_requested_at": None,
    "created_at": "2026-11-23T12:00:00Z",
}
ORDER_IN = {
    "market": "cny",
    "quantity": "8",
    "limit_price": "18.50",
    "duration_hours": 24,
    "earliest_start": "2026-11-24T00:00:00Z",
    "latest_start": "2026-11-24T06:00:00Z",
    "device_models": ["nvidia-h100-sxm", "nvidia-h200-sxm"],
    "allowed_jurisdictions": ["CN"],
    "min_renewable_share": "0.5",
    "placement": "same_pool",
    "fill": "all_or_none",
}
EVENTS = [
    {
        "kind": "placed",
        "status": "open",
        "actor": "key:1a2b3c4d5e6f",
        "data": {"hold_amount": 355200, "limit_price": "18.500000", "quantity": "8.000"},
        "at": "2026-11-23T12:00:00Z",
    },
]


LEASE = {
    "id": "2c9e4b7a-6d1f-4e3a-9b8c-7d6e5f4a3b2c",
    "round": 29924641,
    "units": 8,
    "price": "85.000000",
    "price_per_scu_hour": "10.7388",
    "duration_hours": 24,
    "starts_at": "2026-11-24T00:01:00Z",
    "ends_at": "2026-11-25T00:01:00Z",
    "status": "scheduled",
    "cost": {"amount_minor": 1632000, "currency": "CNY"},
    "buyer_fee": {"amount_minor": 0, "currency": "CNY"},
}
FILLED_ORDER = {
    **ORDER,
    "status": "filled",
    "filled_quantity": "8.000",
    "limit_price": "90.000000",
    "hold": {  # 90.00 × 8 units × 24 h
        "amount_minor": 1728000,
        "currency": "CNY",
        "transfer_id": "0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b",
    },
    "unfilled_reason": None,
    "unfilled_reason_display": None,
    "last_round": 29924641,
    "events": [
        *EVENTS,
        {
            "kind": "filled",
            "status": "filled",
            "actor": "system:matcher",
            "data": {
                "round": 29924641,
                "units": 8,
                "filled": "8",
                "charge": 1632000,
                "leases": [LEASE["id"]],
            },
            "at": "2026-11-24T00:00:02Z",
        },
    ],
    "leases": [LEASE],
}
ROUND = {
    "number": 29924641,
    "delivery_start": "2026-11-24T00:01:00Z",
    "mechanism": "mip",
    "optimal": True,
    "orders": 2,
    "offers": 1,
    "volume_units": 8,
    "volume_unit_hours": 192,
    "welfare_per_hour": "40.000000",
    "welfare": "960.000000",
    "currency": "CNY",
    "buyer_payments_minor": 1632000,
    "seller_receipts_minor": 1632000,
    "certificate_ok": True,
    "started_at": "2026-11-24T00:00:02Z",
    "duration_ms": 41,
}
ROUND_CLASS = {
    "key": "5d41402abc4b2a76",
    "device": "nvidia-h100-sxm",
    "region": "CN-GS",
    "country": "CN",
    "scu_per_unit": "7.9152",
    "price": "85.000000",
    "price_per_scu_hour": "10.738832",
    "price_low": None,
    "price_high": None,
    "units": 8,
    "offered_units": 10,
    "unit_hours": 192,
    "attributes": {
        "device": "nvidia-h100-sxm",
        "memory_gb": "640.0",
        "scu_per_unit": "7.9152",
        "country": "CN",
        "region": "CN-GS",
        "city": "Qingyang",
        "jurisdiction": "CN",
        "pue": "1.15",
        "renewable_share": "0.6200",
        "verified": True,
        "min_lease_hours": 1,
        "max_lease_hours": 48,
    },
}


def page(*items: dict[str, Any]) -> dict[str, Any]:
    return {"data": list(items), "next": None, "previous": None}


# operationId → (request example or None, response example)
EXAMPLES: dict[str, tuple[dict[str, Any] | None, Any]] = {
    "me": (
        None,
        {
            "organization": ORGANIZATION,
            "scopes": ["read", "trade"],
            "email": None,
            "role": None,
            "api_key": "sx_1a2b3c4d5e6f_",
        },
    ),
    "organizations_list": (None, page(ORGANIZATION)),
    "organizations_create": (
        {
            "legal_name": "Shanghai Model Works Ltd.",
            "country": "CN",
            "registration_id": "91310000MA1K4XXXXX",
            "is_buyer": True,
        },
        {**ORGANIZATION, "kyb_status": "pending", "can_trade": False},
    ),
    "organizations_retrieve": (None, ORGANIZATION),
    "members_list": (
        None,
        page(
            {
                "email": "li.wei@example.com",
                "full_name": "Li Wei",
                "role": "owner",
                "created_at": "2026-11-01T08:00:00Z",
            }
        ),
    ),
    "invitations_create": (
        {"email": "trader@example.com", "role": "trader"},
        {
            "email": "trader@example.com",
            "role": "trader",
            "created_at": "2026-11-23T12:00:00Z",
            "expires_at": "2026-11-30T12:00:00Z",
        },
    ),
    "api_keys_list": (None, page(KEY)),
    "api_keys_create": (
        {"name": "trading bot", "scopes": ["read", "trade"]},
        {**KEY, "last_used_at": None, "key": "sx_1a2b3c4d5e6f_Xk3…(shown once)"},
    ),
    "api_keys_revoke": (None, {**KEY, "revoked_at": "2026-11-23T12:30:00Z"}),
    "devices_list": (
        None,
        [
            {
                "slug": "nvidia-h100-sxm",
                "vendor": "NVIDIA",
                "name": "H100 SXM",
                "kind": "gpu",
                "memory_gb": "80.0",
                "memory_bandwidth_gbps": "3350.0",
                "fp64_tflops": "33.500",
                "fp32_tflops": "66.900",
                "bf16_tflops": "989.400",
                "int8_tops": "1978.900",
                "tdp_watts": 700,
                "scu": "0.9894",
                "source_url": "https://www.nvidia.com/en-us/data-center/h100/",
                "notes": "dense",
            }
        ],
    ),
    "markets_list": (
        None,
        [
            {
                "slug": "cny",
                "name": "China compute market",
                "currency": "CNY",
                "round_seconds": 60,
                "price_tick": "0.010000",
                "fee_bps": 300,
                "buyer_fee_bps": 0,
                "sla_target": "0.9950",
                "max_units_per_order": 512,
                "max_scu_per_order": "1000.000",
                "max_duration_hours": 720,
                "horizon_hours": 336,
                "active": True,
            }
        ],
    ),
    "book_retrieve": (
        None,
        {
            "market": "cny",
            "currency": "CNY",
            "classes": [
                {
                    "site": "Qingyang 1",
                    "region": "CN-GS",
                    "device": "nvidia-h100-sxm",
                    "scu_per_unit": "7.9152",
                    "asks": [{"price": "80.000000", "units": 6, "count": 1}],
                    "bids": [
                        {"price": "90.000000", "units": 4, "count": 1},
                        {"price": "85.000000", "units": 2, "count": 1},
                    ],
                    "last_price": None,
                }
            ],
        },
    ),
    "rounds_list": (None, page(ROUND, {**ROUND, "number": 29924640, "volume_units": 0})),
    "rounds_retrieve": (
        None,
        {
            **ROUND,
            "inputs_digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "result_digest": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
            "certificate": {
                "violations": [],
                "fills": 1,
                "bids": 2,
                "asks": 1,
                "buyer_payments": 1632000,
                "seller_receipts": 1632000,
                "remainders": "each order's charge is rounded once; sub-unit remainders of its "
                "split go to its leases with the largest fractional parts",
            },
            "notes": [],
            "classes": [ROUND_CLASS],
        },
    ),
    "prices_retrieve": (
        None,
        {"market": "cny", "currency": "CNY", "round": ROUND, "classes": [ROUND_CLASS]},
    ),
    "price_history_retrieve": (
        None,
        {
            "market": "cny",
            "currency": "CNY",
            "series": [
                {
                    "device": "nvidia-h100-sxm",
                    "region": "CN-GS",
                    "scu_per_unit": "7.9152",
                    "points": [
                        {
                            "round": 29924580,
                            "delivery_start": "2026-11-23T23:00:00Z",
                            "price": "80.000000",
                            "price_high": "80.000000",
                            "price_per_scu_hour": "10.107136",
                            "units": 6,
                        },
                        {
                            "round": 29924641,
                            "delivery_start": "2026-11-24T00:01:00Z",
                            "price": "85.000000",
                            "price_high": "85.000000",
                            "price_per_scu_hour": "10.738832",
                            "units": 8,
                        },
                    ],
                }
            ],
        },
    ),
    "sites_list": (None, page(SITE)),
    "sites_create": ({k: v for k, v in SITE.items() if k not in {"id", "created_at"}}, SITE),
    "pools_list": (None, page(POOL)),
    "pools_create": (
        {
            "site": SITE["id"],
            "name": "h100-x8",
            "device_model": "nvidia-h100-sxm",
            "units": 10,
            "devices_per_unit": 8,
            "cpu_cores": 112,
            "ram_gb": 2048,
            "disk_gb": 30000,
            "interconnect": "infiniband",
        },
        POOL,
    ),
    "offers_list": (None, page(OFFER)),
    "offers_create": (
        {
            "market": "cny",
            "pool": POOL["id"],
            "units": 6,
            "available_from": "2026-11-24T00:00:00Z",
            "available_until": "2026-11-26T00:00:00Z",
            "min_price": "80.00",
            "min_lease_hours": 1,
            "max_lease_hours": 48,
        },
        OFFER,
    ),
    "offers_retrieve": (None, OFFER),
    "offers_change": (None, {**OFFER, "status": "paused"}),
    "orders_list": (None, page(ORDER)),
    "orders_create": (ORDER_IN, ORDER),
    "orders_retrieve": (None, FILLED_ORDER),
    "orders_cancel": (None, {**ORDER, "status": "cancelled"}),
    "orders_preview": (
        ORDER_IN,
        {
            "classes": [
                {
                    "site": "Qingyang 1",
                    "region": "CN-GS",
                    "device": "nvidia-h100-sxm",
                    "scu_per_unit": "7.9152",
                    "free_units": 6,
                    "min_price": "80.000000",
                    "max_price": "80.000000",
                }
            ],
            "excluded": {"renewable_share": 2, "hardware": 5},
            "compatible_units": 6,
            "affordable_units": 0,
            "hold_amount_minor": 355200,
        },
    ),
}


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
EXAMPLES.update(
    {
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
    }
)


# --------------------------------------------------------------------------- leases and statements

# The LEASE above, running: settled at 01:01 and 02:01, seen at 02:31 (8 units, 85.00 per
# unit-hour, 3% platform fee; one minute of heartbeats missed).
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


EXAMPLES.update(
    {
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
)


def add_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> Any:
    """drf-spectacular postprocessing hook: put each operation's examples into the schema."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            found = EXAMPLES.get(operation.get("operationId", ""))
            if found is None:
                continue
            request_example, response_example = found
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if request_example is not None and body is not None and not body.get("examples"):
                body["examples"] = {"example": {"value": request_example}}
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if status.startswith("2") and content is not None:
                    content.setdefault("examples", {"example": {"value": response_example}})
    return result


WEBHOOK = {
    "id": "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "url": "https://ops.example.com/suanli/webhooks",
    "kinds": ["lease.ended", "lease.ready"],
    "active": True,
    "created_at": "2026-11-23T12:00:00Z",
}
EXAMPLES.update(
    {
        "webhooks_list": (None, page(WEBHOOK)),
        "webhooks_create": (
            {"url": WEBHOOK["url"], "kinds": WEBHOOK["kinds"]},
            {**WEBHOOK, "secret": "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C"},
        ),
        "webhooks_disable": (None, {**WEBHOOK, "active": False}),
    }
)
