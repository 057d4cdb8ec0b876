"""How many round trips to PostgreSQL an order over the API costs, with real commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connection
from rest_framework.test import APIClient

from marketplace.models import ApiKey, Market, Organization
from tests.conftest import bearer
from tests.test_clearing_concurrency import _reset_truncate_guard, committed_db
from tests.test_ledger import round_trips
from tests.test_market import fund, make_device
from tests.test_market_api import order_body

__all__ = ["_reset_truncate_guard", "committed_db"]  # fixtures, re-exported


def test_an_order_is_nine_round_trips(
    committed_db: None,
    buyer_org: Organization,
    api_key_for: Callable[..., tuple[ApiKey, str]],
) -> None:
    Market.objects.create(slug="cny", name="CNY", currency="CNY")
    make_device()
    fund(buyer_org, 5_000_000)
    client = bearer(APIClient(), api_key_for(buyer_org, "read", "trade")[1])
    body = order_body(device_models=["nvidia-h100-sxm"])
    client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    key = str(uuid.uuid4())

    with round_trips() as sent:
        response = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=key)

    # the key, BEGIN (psycopg sends it alone), the idempotency key's lock and record together,
    # the market and the device models together, the order, then its devices, event and
    # accounts together, the hold, the idempotency record, COMMIT. (Under gunicorn a reused
    # connection adds Django's health check.)
    assert response.status_code == 201, response.json()
    assert len(sent) == 9, "\n".join(s[:90] for s in sent)
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
        committed: Any = other.execute(
            "SELECT count(*) FROM marketplace_idempotencyrecord WHERE key = %s", [key]
        ).fetchone()
    assert committed == (1,)  # seen from another connection: committed
    replay = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == response.json()
