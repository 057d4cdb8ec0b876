"""OpenAPI examples of the notifications API (``marketplace.notifications.api``): webhook
endpoints, keyed by operationId; ``marketplace.api.schema`` puts them into the schema."""

from __future__ import annotations

from typing import Any

from marketplace.api.schema import page

WEBHOOK = {
    "id": "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "url": "https://ops.example.com/suanli/webhooks",
    "kinds": ["lease.ended", "lease.ready"],
    "active": True,
    "created_at": "2026-11-23T12:00:00Z",
}

# operationId → (request example or None, response example)
EXAMPLES: dict[str, tuple[dict[str, Any] | None, Any]] = {
    "webhooks_list": (None, page(WEBHOOK)),
    "webhooks_create": (
        {"url": WEBHOOK["url"], "kinds": WEBHOOK["kinds"]},
        {**WEBHOOK, "secret": "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C"},
    ),
    "webhooks_disable": (None, {**WEBHOOK, "active": False}),
}
