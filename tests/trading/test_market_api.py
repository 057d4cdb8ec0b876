"""The market through the REST API: providers list capacity, buyers order, isolation, preview,
the public book."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from ledger.models import Account, Transfer
from marketplace.models import (
    ApiKey,
    DeviceModel,
    IdempotencyRecord,
    Market,
    Offer,
    Order,
    Organization,
    User,
)
from tests.factories import DeviceModelFactory
from tests.fixtures.http import bearer, error_of, order_body, soon
from tests.fixtures.market import fund, market_rules

pytestmark = pytest.mark.django_db
KeyMaker = Callable[..., tuple[ApiKey, str]]


@pytest.fixture
def devices(db: None) -> list[DeviceModel]:
    return [DeviceModelFactory.create(), DeviceModelFactory.create(ascend_910b=True)]


def post(client: APIClient, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


@pytest.fixture
def funded_buyer_api(buyer_api: APIClient, buyer_org: Organization) -> APIClient:
    """The buyer over the API, with 50,000.00 CNY in its wallet."""
    fund(buyer_org, 5_000_000)
    return buyer_api


@pytest.fixture
def listed_by_api(
    provider_api: APIClient, market: Market, devices: list[DeviceModel]
) -> dict[str, Any]:
    """A green Gansu site with an H100 pool offered at 80.00, and a Shanghai Ascend pool."""
    gansu = post(
        provider_api,
        "/api/v1/sites",
        {
            "name": "Qingyang",
            "country": "CN",
            "region": "CN-GS",
            "city": "Qingyang",
            "jurisdiction": "CN",
            "pue": "1.15",
            "renewable_share": "0.7",
            "carbon_g_per_kwh": 400,
        },
    )
    shanghai = post(
        provider_api,
        "/api/v1/sites",
        {
            "name": "Pudong",
            "country": "CN",
            "region": "CN-SH",
            "city": "Shanghai",
            "jurisdiction": "CN",
            "pue": "1.40",
            "renewable_share": "0.2",
            "carbon_g_per_kwh": 600,
        },
    )
    assert (gansu.status_code, shanghai.status_code) == (201, 201)
    h100 = post(
        provider_api,
        "/api/v1/pools",
        {
            "site": gansu.json()["id"],
            "name": "h100",
            "device_model": "nvidia-h100-sxm",
            "units": 16,
        },
    )
    ascend = post(
        provider_api,
        "/api/v1/pools",
        {
            "site": shanghai.json()["id"],
            "name": "910b",
            "device_model": "huawei-ascend-910b",
            "units": 32,
        },
    )
    offers = [
        post(
            provider_api,
            "/api/v1/offers",
            {
                "market": "cny",
                "pool": h100.json()["id"],
                "units": 16,
                "available_from": soon(0),
                "available_until": soon(72),
                "min_price": "80.00",
            },
        ),
        post(
            provider_api,
            "/api/v1/offers",
            {
                "market": "cny",
                "pool": ascend.json()["id"],
                "units": 32,
                "available_from": soon(0),
                "available_until": soon(72),
                "min_price": "20.00",
            },
        ),
    ]
    assert [o.status_code for o in offers] == [201, 201], [o.json() for o in offers]
    return {"offers": [o.json() for o in offers], "pools": [h100.json(), ascend.json()]}


def test_provider_lists_capacity(listed_by_api: dict[str, Any]) -> None:
    h100_offer = listed_by_api["offers"][0]

    assert h100_offer["status"] == "active"
    assert h100_offer["min_price_per_scu_hour"] == "80.8571"  # 80.00 / 0.9894 SCU
    assert listed_by_api["pools"][0]["scu_per_unit"] == "0.9894"


@market_rules(buyer_fee_bps=0)  # the hold is the cost alone
def test_buyer_places_an_order_with_an_exact_hold(
    funded_buyer_api: APIClient, listed_by_api: dict[str, Any]
) -> None:
    key, body = str(uuid.uuid4()), order_body(device_models=["nvidia-h100-sxm"])

    first = post(funded_buyer_api, "/api/v1/orders", body, key)
    replay = post(funded_buyer_api, "/api/v1/orders", body, key)

    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["hold"]["amount_minor"] == 360_000  # 4 × 10 h × 90.00 CNY
    assert (body["status"], body["device_models"]) == ("open", ["nvidia-h100-sxm"])
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert Transfer.objects.filter(kind="pending").count() == 1


def test_an_invalid_order_is_400_with_code_and_field_and_nothing_is_held(
    funded_buyer_api: APIClient, market: Market
) -> None:
    before = Transfer.objects.count()

    response = post(funded_buyer_api, "/api/v1/orders", order_body(limit_price="90.005"))
    unknown = post(funded_buyer_api, "/api/v1/orders", order_body(market="eur"))

    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["field"]) == (
        "price_precision",
        "limit_price",
    )
    assert (error_of(unknown)["code"], error_of(unknown)["field"]) == ("unknown_market", "market")
    assert (Order.objects.count(), Transfer.objects.count()) == (0, before)


def test_insufficient_funds_is_422(funded_buyer_api: APIClient, market: Market) -> None:
    accounts, transfers = Account.objects.count(), Transfer.objects.count()
    key, body = str(uuid.uuid4()), order_body(quantity="500", limit_price="999.00")

    response = post(funded_buyer_api, "/api/v1/orders", body, key)

    assert response.status_code == 422
    assert error_of(response)["code"] == "insufficient_funds"
    assert Order.objects.count() == 0
    # the order's hold account and the key's record went with it (no savepoint: the whole
    # request's transaction rolled back), so the key may be used again
    assert (Account.objects.count(), Transfer.objects.count()) == (accounts, transfers)
    assert IdempotencyRecord.objects.count() == 0
    assert post(funded_buyer_api, "/api/v1/orders", order_body(), key).status_code == 201


def test_a_read_only_key_cannot_order(
    api_key_for: KeyMaker, buyer_org: Organization, market: Market
) -> None:
    client = bearer(APIClient(), api_key_for(buyer_org, "read")[1])

    response = post(client, "/api/v1/orders", order_body())

    assert (response.status_code, error_of(response)["code"]) == (403, "insufficient_scope")
    assert Order.objects.count() == 0


def test_orders_and_offers_of_others_are_not_found(
    funded_buyer_api: APIClient,
    provider_api: APIClient,
    listed_by_api: dict[str, Any],
    buyer: User,
    provider_org: Organization,
    add_member: Callable[[Organization, str, str], User],
) -> None:
    order = post(funded_buyer_api, "/api/v1/orders", order_body()).json()
    offer = listed_by_api["offers"][0]

    assert provider_api.get(f"/api/v1/orders/{order['id']}").status_code == 404
    assert provider_api.post(f"/api/v1/orders/{order['id']}/cancel").status_code == 404
    assert funded_buyer_api.get(f"/api/v1/offers/{offer['id']}").status_code == 404
    assert funded_buyer_api.post(f"/api/v1/offers/{offer['id']}/withdraw").status_code == 404
    stolen = post(
        funded_buyer_api,
        "/api/v1/offers",
        {
            "market": "cny",
            "pool": listed_by_api["pools"][0]["id"],
            "units": 1,
            "available_from": soon(0),
            "available_until": soon(5),
            "min_price": "1.00",
        },
    )
    assert stolen.status_code in {400, 403}
    assert Order.objects.get().status == "open"
    assert Offer.objects.filter(status="active").count() == 2
    assert [o["id"] for o in provider_api.get("/api/v1/orders").json()["data"]] == []


def test_list_filter_detail_and_cancel(funded_buyer_api: APIClient, market: Market) -> None:
    first = post(funded_buyer_api, "/api/v1/orders", order_body()).json()
    post(funded_buyer_api, "/api/v1/orders", order_body(quantity="2"))

    cancelled = funded_buyer_api.post(f"/api/v1/orders/{first['id']}/cancel")
    open_orders = funded_buyer_api.get("/api/v1/orders?status=open").json()["data"]
    detail = funded_buyer_api.get(f"/api/v1/orders/{first['id']}").json()

    assert cancelled.json()["status"] == "cancelled"
    assert [o["quantity"] for o in open_orders] == ["2.000"]
    assert [e["kind"] for e in detail["events"]] == ["placed", "cancelled"]


def test_preview_counts_what_each_constraint_excluded(
    funded_buyer_api: APIClient, listed_by_api: dict[str, Any]
) -> None:
    response = funded_buyer_api.post(
        "/api/v1/orders/preview",
        order_body(min_renewable_share="0.5", limit_price="75.00"),
        format="json",
    )
    strict = funded_buyer_api.post(
        "/api/v1/orders/preview",
        order_body(device_models=["huawei-ascend-910b"], allowed_regions=["CN-GS"]),
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert [(c["site"], c["device"], c["free_units"]) for c in body["classes"]] == [
        ("Qingyang", "nvidia-h100-sxm", 16)
    ]
    assert body["excluded"] == {"renewable_share": 1}
    assert (body["compatible_units"], body["affordable_units"]) == (16, 0)  # asks at 80 > 75
    assert strict.json()["excluded"] == {"hardware": 1, "region": 1}
    assert strict.json()["classes"] == []
    assert Order.objects.count() == 0


def test_the_book_is_public_and_anonymous(
    funded_buyer_api: APIClient, listed_by_api: dict[str, Any], buyer_org: Organization
) -> None:
    post(funded_buyer_api, "/api/v1/orders", order_body(device_models=["nvidia-h100-sxm"]))
    post(funded_buyer_api, "/api/v1/orders", order_body(quantity="2", limit_price="85.00"))

    book = APIClient().get("/api/v1/markets/cny/book")

    assert book.status_code == 200
    classes = {c["device"]: c for c in book.json()["classes"]}
    assert classes["nvidia-h100-sxm"]["asks"] == [{"price": "80.000000", "units": 16, "count": 1}]
    assert classes["nvidia-h100-sxm"]["bids"] == [
        {"price": "90.000000", "units": 4, "count": 1},
        {"price": "85.000000", "units": 2, "count": 1},
    ]
    assert classes["huawei-ascend-910b"]["bids"] == [{"price": "85.000000", "units": 2, "count": 1}]
    assert buyer_org.legal_name not in book.content.decode()


def test_create_endpoints_document_examples() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for path in ("/api/v1/orders", "/api/v1/offers", "/api/v1/sites", "/api/v1/pools"):
        content = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert content.get("examples"), path


def test_every_operation_documents_request_and_response_examples() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operations = [op for ops in schema["paths"].values() for op in ops.values()]
    assert len(operations) >= 25
    for op in operations:
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert body.get("examples"), f"{op['operationId']}: no request example"
        ok = next(r for code, r in op["responses"].items() if code.startswith("2"))
        assert ok["content"]["application/json"].get("examples"), (
            f"{op['operationId']}: no response example"
        )


def test_the_created_order_reads_the_same_as_its_listing(
    funded_buyer_api: APIClient, listed_by_api: dict[str, Any]
) -> None:
    """The POST response (devices given to it, fields built once per class) equals what a
    fresh read of the order renders, field for field."""
    placed = [
        post(funded_buyer_api, "/api/v1/orders", order_body(**changes)).json()
        for changes in (
            {"device_models": ["nvidia-h100-sxm", "huawei-ascend-910b"]},
            {"buyer_location": {"country": "CN", "region": "CN-SH", "city": "Shanghai"}},
            {"quantity_kind": "scu", "price_per": "scu", "quantity": "2.5"},
        )
    ]
    listing = {o["id"]: o for o in funded_buyer_api.get("/api/v1/orders").json()["data"]}

    assert [listing[o["id"]] for o in placed] == placed
    assert placed[0]["device_models"] == ["huawei-ascend-910b", "nvidia-h100-sxm"]
    assert placed[1]["buyer_location"] == {
        "country": "CN",
        "region": "CN-SH",
        "city": "Shanghai",
    }


def test_flat_output_renders_as_drf_does(funded_buyer_api: APIClient, market: Market) -> None:
    from rest_framework import serializers

    from marketplace.trading.serializers import OrderDetailOut, OrderOut

    post(funded_buyer_api, "/api/v1/orders", order_body())
    order = Order.objects.get()

    assert OrderOut(order).data == serializers.Serializer.to_representation(OrderOut(order), order)
    assert OrderOut._plan() is not None
    assert OrderDetailOut._plan() is None  # nested events and leases: rendered the DRF way
    assert OrderDetailOut(order).data["events"][0]["kind"] == "placed"


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"quantity": "1.2345", "limit_price": "abc"},
        {"quantity_kind": "litres", "duration_hours": "many"},
        {"device_models": ["ok-slug", "not a slug!"], "allowed_regions": ["CN-SH", "X" * 9]},
        {"buyer_location": {"country": "C"}},
        {"buyer_location": {"country": "CN", "region": "CN-SH", "city": "Shanghai"}},
        {"earliest_start": "yesterday", "expires_at": None, "min_fill": "-1"},
    ],
)
def test_shallow_fields_validate_as_drf_does(changes: dict[str, Any]) -> None:
    """OrderIn binds shallow copies of its declared fields; DRF's deep copies give the same
    errors and data, and one instance's errors never reach the next."""
    from rest_framework import serializers

    from marketplace.trading.serializers import OrderIn

    class DeepOrderIn(OrderIn):
        def get_fields(self) -> dict[str, Any]:
            return serializers.Serializer.get_fields(self)

    def outcome(cls: type[OrderIn], body: dict[str, Any]) -> tuple[bool, Any, Any]:
        serializer = cls(data=body)
        valid = serializer.is_valid()
        return valid, serializer.errors, serializer.validated_data if valid else None

    body = order_body(**changes)
    for cls in (OrderIn, DeepOrderIn):
        outcome(cls, order_body(quantity="x", buyer_location={"country": ""}))  # errors first

    assert outcome(OrderIn, body) == outcome(DeepOrderIn, body)
    assert outcome(OrderIn, order_body())[0] is True
