"""OpenAPI examples of the accounts API (``marketplace.accounts.api``): the caller, organizations,
members, invitations and API keys, keyed by operationId; ``marketplace.api.schema`` puts them
into the schema. ``ORG`` is the example organization's id, which other domains' examples use."""

from __future__ import annotations

from typing import Any

from marketplace.api.schema import page

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
}
