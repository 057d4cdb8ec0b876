"""OpenAPI examples of the trading API (``marketplace.trading.api``): the catalog, markets, the
book, clearing rounds and prices, sites, pools, offers and orders, keyed by operationId;
``marketplace.api.schema`` puts them into the schema. ``LEASE`` is a lease as an order shows it
(``LeaseOut`` lives in ``marketplace.trading.serializers``); the leases' examples build on it and
on ``POOL``, ``OFFER`` and ``FILLED_ORDER``."""

from __future__ import annotations

from typing import Any

from marketplace.api.schema import page

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

# A lease as an order lists it (``LeaseOut``): the lease FILLED_ORDER's fill created.
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


# operationId → (request example or None, response example)
EXAMPLES: dict[str, tuple[dict[str, Any] | None, Any]] = {
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
