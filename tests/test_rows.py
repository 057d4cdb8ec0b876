"""``marketplace.rows.fetch`` loads what the ORM loads, for each model the order path reads."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Model

from marketplace import rows
from marketplace.models import DeviceModel, Market
from tests.test_market import make_device

pytestmark = pytest.mark.django_db


def fields_and_types(instance: Model) -> list[tuple[str, Any, type]]:
    return [
        (f.attname, getattr(instance, f.attname), type(getattr(instance, f.attname)))
        for f in instance._meta.concrete_fields
    ]


def test_a_market_with_its_json_schedule_is_the_orms() -> None:
    Market.objects.create(
        slug="cny",
        name="CNY",
        currency="CNY",
        sla_credit_schedule=[["0.995", "0.10"], ["0.99", "0.25"]],
    )
    Market.objects.create(slug="usd", name="USD", currency="USD")

    [found] = rows.fetch(Market, '"slug" = %s', ["cny"])

    assert fields_and_types(found) == fields_and_types(Market.objects.get(slug="cny"))
    assert isinstance(found.sla_credit_schedule, list)  # converted from the database's text
    assert found._state.adding is False
    assert rows.fetch(Market, '"slug" = %s', ["eur"]) == []


def test_device_models_in_the_relations_order_are_the_orms() -> None:
    make_device("nvidia-h100-sxm")
    make_device("huawei-ascend-910b", bf16="320.000", memory="64")
    make_device("nvidia-a800", bf16="312.000")
    DeviceModel.objects.filter(slug="nvidia-a800").update(active=False)
    wanted = ["nvidia-h100-sxm", "huawei-ascend-910b", "nvidia-a800", "unknown"]

    found = rows.fetch(
        DeviceModel, '"slug" = ANY(%s) AND "active"', [wanted], order_by=["vendor", "name"]
    )
    expected = list(DeviceModel.objects.filter(slug__in=wanted, active=True))

    assert [fields_and_types(d) for d in found] == [fields_and_types(d) for d in expected]
    assert [d.slug for d in found] == ["huawei-ascend-910b", "nvidia-h100-sxm"]
