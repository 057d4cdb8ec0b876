"""``marketplace.rows.fetch`` loads what the ORM loads, for each model the order path reads."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Model

from marketplace.core import rows
from marketplace.models import DeviceModel, Market, Order, OrderEvent, Organization
from tests.factories import DeviceModelFactory, MarketFactory
from tests.fixtures.ledger import round_trips

pytestmark = pytest.mark.django_db


def fields_and_types(instance: Model) -> list[tuple[str, Any, type]]:
    return [
        (f.attname, getattr(instance, f.attname), type(getattr(instance, f.attname)))
        for f in instance._meta.concrete_fields
    ]


def test_a_market_with_its_json_schedule_is_the_orms() -> None:
    MarketFactory.create(sla_credit_schedule=[["0.995", "0.10"], ["0.99", "0.25"]])
    MarketFactory.create(usd=True)

    [found] = rows.fetch(Market, '"slug" = %s', ["cny"])

    assert fields_and_types(found) == fields_and_types(Market.objects.get(slug="cny"))
    assert isinstance(found.sla_credit_schedule, list)  # converted from the database's text
    assert found._state.adding is False
    assert rows.fetch(Market, '"slug" = %s', ["eur"]) == []


def test_device_models_in_the_relations_order_are_the_orms() -> None:
    DeviceModelFactory.create()
    DeviceModelFactory.create(ascend_910b=True)
    DeviceModelFactory.create(slug="nvidia-a800", bf16_tflops=Decimal("312.000"))
    DeviceModel.objects.filter(slug="nvidia-a800").update(active=False)
    wanted = ["nvidia-h100-sxm", "huawei-ascend-910b", "nvidia-a800", "unknown"]

    found = rows.fetch(
        DeviceModel, '"slug" = ANY(%s) AND "active"', [wanted], order_by=["vendor", "name"]
    )
    expected = list(DeviceModel.objects.filter(slug__in=wanted, active=True))

    assert [fields_and_types(d) for d in found] == [fields_and_types(d) for d in expected]
    assert [d.slug for d in found] == ["huawei-ascend-910b", "nvidia-h100-sxm"]


def test_insert_writes_the_row_the_orm_writes(buyer_org: Organization) -> None:
    market = MarketFactory.create()
    start = dt.datetime(2030, 1, 7, 8, tzinfo=dt.UTC)

    def order(**unique: Any) -> Order:
        return Order(
            market=market,
            organization=buyer_org,
            placed_by="key:0123456789ab",
            quantity=Decimal("2.500"),
            quantity_kind="scu",
            price_per="scu",
            duration_hours=3,
            earliest_start=start,
            latest_start=start + dt.timedelta(hours=2),
            limit_price=Decimal("41.250000"),
            allowed_regions=["CN-GS", "CN-NM"],
            allowed_jurisdictions=["CN"],
            buyer_country="CN",
            min_renewable_share=Decimal("0.5000"),
            max_latency_tier=2,
            expires_at=start + dt.timedelta(hours=3),
            hold_amount=1_234_567,
            **unique,
        )

    ours = rows.insert(order(hold_transfer_id=uuid.uuid4()))
    theirs = Order.objects.create(**vars_of(order(hold_transfer_id=uuid.uuid4())))
    event = rows.insert(
        OrderEvent(order=ours, kind="placed", status="open", actor="x", at=start, data={"a": "1"})
    )

    assert ours.pk is not None and ours._state.adding is False
    differing = {"id", "public_id", "hold_transfer_id", "created_at"}
    assert without(Order.objects.get(pk=ours.pk), differing) == without(
        Order.objects.get(pk=theirs.pk), differing
    )
    assert fields_and_types(OrderEvent.objects.get(pk=event.pk)) == fields_and_types(event)


def vars_of(instance: Model) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def without(instance: Model, names: set[str]) -> list[tuple[str, Any, type]]:
    return [row for row in fields_and_types(instance) if row[0] not in names]


def test_fetch_together_is_each_fetch_in_one_round_trip() -> None:
    MarketFactory.create()
    DeviceModelFactory.create()
    DeviceModelFactory.create(ascend_910b=True)
    queries: tuple[tuple[type[Model], str, list[Any], tuple[str, ...]], ...] = (
        (Market, '"slug" = %s', ["cny"], ()),
        (DeviceModel, '"slug" = ANY(%s)', [["nvidia-h100-sxm", "huawei-ascend-910b"]], ("name",)),
        (DeviceModel, '"slug" = ANY(%s)', [[]], ()),
    )

    with round_trips() as sent:
        together = rows.fetch_together(*queries)

    one_by_one = [
        rows.fetch(m, where, params, order_by=order) for m, where, params, order in queries
    ]
    assert len(sent) == 1
    assert [[fields_and_types(i) for i in found] for found in together] == [
        [fields_and_types(i) for i in found] for found in one_by_one
    ]
    assert [len(found) for found in together] == [1, 2, 0]
