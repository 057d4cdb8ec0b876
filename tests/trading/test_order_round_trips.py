"""How many round trips to PostgreSQL an order over the API costs, with real commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connection
from rest_framework.test import APIClient

from marketplace.models import ApiKey, Organization
from tests.factories import DeviceModelFactory, MarketFactory
from tests.fixtures.http import bearer, order_body
from tests.fixtures.ledger import round_trips
from tests.fixtures.market import fund


def test_an_order_is_nine_round_trips(
    committed_db: None,
    buyer_org: Organization,
    api_key_for: Callable[..., tuple[ApiKey, str]],
) -> None:
    MarketFactory.create()
    DeviceModelFactory.create()
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
