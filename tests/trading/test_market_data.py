"""Market data after clearing: rounds with certificates, class prices, price history and depth,
through the public API and the portal; unfilled reasons and leases on the buyer's order."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, get_args

import pytest
import time_machine
from django.contrib.staticfiles import finders
from django.test import Client
from rest_framework.test import APIClient

from marketplace.core.access import Principal
from marketplace.models import (
    ApiKey,
    ClearingRound,
    Market,
    Order,
    Organization,
    Pool,
    UnfilledReason,
    User,
)
from marketplace.trading import market_data
from matching import services as matching
from matching.engine import Reason
from tests.fixtures.clearing import list_offer, place
from tests.fixtures.http import bearer, error_of
from tests.fixtures.market import HOUR, NOW

pytestmark = pytest.mark.django_db
KeyMaker = Callable[..., tuple[ApiKey, str]]
FIRST = int(NOW.timestamp()) // 60  # the slot number of a round delivering from NOW


@pytest.fixture
def at_now() -> Iterator[None]:
    """The clock at NOW, so that the live book (depth) sees what the rounds left open."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def three_rounds(market: Market, seller: Principal, pool: Pool, funded_buyer: Principal) -> None:
    """Six H100 ×8 units offered at 80.00 (7.9152 SCU per unit), then three rounds an hour apart:
    80.00 (4 units; a bid at 70.00 priced out), 80.00 again (1 unit), 90.00 (the last free unit
    to a bid of 90.00 for 3)."""
    list_offer(seller, market, pool)
    place(funded_buyer, market)
    place(funded_buyer, market, limit_price=Decimal("70.00"))
    matching.clear_round(market=market, now=NOW)
    place(funded_buyer, market, quantity=Decimal(1), latest_start=NOW + 3 * HOUR)
    matching.clear_round(market=market, now=NOW + HOUR)
    place(
        funded_buyer,
        market,
        quantity=Decimal(3),
        limit_price=Decimal("90.00"),
        latest_start=NOW + 3 * HOUR,
    )
    matching.clear_round(market=market, now=NOW + 2 * HOUR)


def one_round(market: Market, seller: Principal, pool: Pool, buyer: Principal) -> Order:
    """4 units filled at 80.00 and a bid at 70.00 priced out (returned), still open."""
    list_offer(seller, market, pool)
    place(buyer, market)
    priced_out = place(buyer, market, limit_price=Decimal("70.00"))
    matching.clear_round(market=market, now=NOW)
    priced_out.refresh_from_db()
    return priced_out


# --------------------------------------------------------------------------- the API


def test_rounds_are_listed_newest_first_in_pages(three_rounds: None) -> None:
    api = APIClient()

    first = api.get("/api/v1/markets/cny/rounds?limit=2")
    rest = api.get(first.json()["next"])

    assert (first.status_code, rest.status_code) == (200, 200)
    assert [r["number"] for r in first.json()["data"]] == [FIRST + 120, FIRST + 60]
    assert [r["number"] for r in rest.json()["data"]] == [FIRST]
    assert rest.json()["next"] is None
    assert rest.json()["data"][0] == {
        "number": FIRST,
        "delivery_start": "2026-11-23T12:00:00Z",
        "mechanism": "flow",
        "optimal": True,
        "orders": 2,
        "offers": 1,
        "volume_units": 4,
        "volume_unit_hours": 40,
        "welfare_per_hour": "80.000000",  # (100 − 80) × 4 units
        "welfare": "800.000000",
        "currency": "CNY",
        "buyer_payments_minor": 320_000,
        "seller_receipts_minor": 320_000,
        "certificate_ok": True,
        "started_at": "2026-11-23T12:00:00Z",
        "duration_ms": rest.json()["data"][0]["duration_ms"],
    }


def test_a_round_shows_its_classes_and_certificate(three_rounds: None) -> None:
    response = APIClient().get(f"/api/v1/markets/cny/rounds/{FIRST}")

    assert response.status_code == 200
    body = response.json()
    assert (body["number"], body["certificate_ok"], body["notes"]) == (FIRST, True, [])
    assert body["certificate"]["violations"] == []
    assert (body["certificate"]["bids"], body["certificate"]["asks"]) == (2, 1)
    assert len(body["inputs_digest"]) == len(body["result_digest"]) == 64
    [klass] = body["classes"]
    assert {k: v for k, v in klass.items() if k not in {"key", "attributes"}} == {
        "device": "nvidia-h100-sxm",
        "region": "CN-GS",
        "country": "CN",
        "scu_per_unit": "7.9152",
        "price": "80.000000",
        "price_per_scu_hour": "10.107136",  # 80.00 / 7.9152
        "price_low": "80.000000",
        "price_high": "80.000000",
        "units": 4,
        "offered_units": 6,
        "unit_hours": 40,
    }
    assert (klass["attributes"]["city"], klass["attributes"]["verified"]) == ("Qingyang", False)


def test_an_unknown_round_or_market_is_404(three_rounds: None) -> None:
    api = APIClient()

    missing_round = api.get(f"/api/v1/markets/cny/rounds/{FIRST + 1}")
    missing_market = api.get("/api/v1/markets/eur/prices")

    assert (missing_round.status_code, missing_market.status_code) == (404, 404)
    assert error_of(missing_round) == {
        "code": "not_found",
        "message": "No such round.",
        "field": None,
    }


def test_prices_are_the_last_rounds_classes(three_rounds: None) -> None:
    response = APIClient().get("/api/v1/markets/cny/prices")

    body = response.json()
    assert response.status_code == 200
    assert (body["market"], body["currency"], body["round"]["number"]) == (
        "cny",
        "CNY",
        FIRST + 120,
    )
    assert [
        (c["device"], c["price"], c["price_per_scu_hour"], c["units"], c["offered_units"])
        for c in body["classes"]
    ] == [("nvidia-h100-sxm", "90.000000", "11.370528", 1, 1)]


def test_prices_before_the_first_round_are_empty(market: Market) -> None:
    body = APIClient().get("/api/v1/markets/cny/prices").json()

    assert body == {"market": "cny", "currency": "CNY", "round": None, "classes": []}


def test_price_history_keeps_only_the_changes(three_rounds: None) -> None:
    api = APIClient()

    history = api.get("/api/v1/markets/cny/price-history?device=nvidia-h100-sxm&region=CN-GS")
    other = api.get("/api/v1/markets/cny/price-history?region=CN-SH")
    latest = api.get("/api/v1/markets/cny/price-history?limit=1")

    assert history.status_code == 200
    assert history.json() == {
        "market": "cny",
        "currency": "CNY",
        "series": [
            {
                "device": "nvidia-h100-sxm",
                "region": "CN-GS",
                "scu_per_unit": "7.9152",
                "points": [  # the second round's 80.00 is no change
                    {
                        "round": FIRST,
                        "delivery_start": "2026-11-23T12:00:00Z",
                        "price": "80.000000",
                        "price_high": "80.000000",
                        "price_per_scu_hour": "10.107136",
                        "units": 4,
                    },
                    {
                        "round": FIRST + 120,
                        "delivery_start": "2026-11-23T14:00:00Z",
                        "price": "90.000000",
                        "price_high": "90.000000",
                        "price_per_scu_hour": "11.370528",
                        "units": 1,
                    },
                ],
            }
        ],
    }
    assert other.json()["series"] == []
    assert [p["round"] for p in latest.json()["series"][0]["points"]] == [FIRST + 120]


def test_a_bad_history_limit_is_400(market: Market) -> None:
    response = APIClient().get("/api/v1/markets/cny/price-history?limit=0")

    assert response.status_code == 400
    assert error_of(response)["field"] == "limit"


def test_market_data_is_anonymous_and_ignores_credentials(three_rounds: None) -> None:
    """Like the book: no credentials needed, and a bad key is not even looked at."""
    for path in ("rounds", f"rounds/{FIRST}", "prices", "price-history"):
        anonymous = APIClient().get(f"/api/v1/markets/cny/{path}")
        with_junk_key = bearer(APIClient(), "sx_000000000000_not-a-real-key-at-all").get(
            f"/api/v1/markets/cny/{path}"
        )
        assert (anonymous.status_code, with_junk_key.status_code) == (200, 200), path


def test_the_order_says_why_it_is_unfilled(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
    api_key_for: KeyMaker,
) -> None:
    priced_out = one_round(market, seller, pool, funded_buyer)
    api = bearer(APIClient(), api_key_for(buyer_org, "read")[1])

    listed = api.get("/api/v1/orders?status=open").json()["data"]
    detail = api.get(f"/api/v1/orders/{priced_out.public_id}").json()

    assert [(o["id"], o["unfilled_reason"], o["last_round"]) for o in listed] == [
        (str(priced_out.public_id), "priced_out", FIRST)
    ]
    assert (detail["unfilled_reason"], detail["unfilled_reason_display"], detail["leases"]) == (
        "priced_out",
        "Priced out: compatible supply cleared only above your limit price.",
        [],
    )


def test_the_order_shows_its_leases_and_a_rationed_rest(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer_org: Organization,
    api_key_for: KeyMaker,
) -> None:
    list_offer(seller, market, pool, available_until=NOW + 10 * HOUR)  # 6 units for 10 h
    order = place(funded_buyer, market, quantity=Decimal(8))
    matching.clear_round(market=market, now=NOW)
    api = bearer(APIClient(), api_key_for(buyer_org, "read")[1])

    detail = api.get(f"/api/v1/orders/{order.public_id}").json()

    assert (detail["status"], detail["filled_quantity"], detail["last_round"]) == (
        "partially_filled",
        "6.000",
        FIRST,
    )
    assert (detail["unfilled_reason"], detail["unfilled_reason_display"]) == (
        "rationed",
        "Rationed: partly filled; the rest was priced at exactly your limit, or no supply was "
        "left.",
    )
    [lease] = detail["leases"]
    assert {k: v for k, v in lease.items() if k != "id"} == {
        "round": FIRST,
        "units": 6,
        "price": "100.000000",
        "price_per_scu_hour": "12.6339",
        "duration_hours": 10,
        "starts_at": "2026-11-23T12:00:00Z",
        "ends_at": "2026-11-23T22:00:00Z",
        "status": "scheduled",
        "cost": {"amount_minor": 600_000, "currency": "CNY"},  # 100.00 × 6 units × 10 h
        "buyer_fee": {"amount_minor": 6_000, "currency": "CNY"},  # 1%
    }


def test_an_order_not_yet_in_a_round_has_no_reason(
    market: Market, funded_buyer: Principal, buyer_org: Organization, api_key_for: KeyMaker
) -> None:
    order = place(funded_buyer, market)
    api = bearer(APIClient(), api_key_for(buyer_org, "read")[1])

    detail = api.get(f"/api/v1/orders/{order.public_id}").json()

    assert (
        detail["unfilled_reason"],
        detail["unfilled_reason_display"],
        detail["last_round"],
        detail["leases"],
    ) == (None, None, None, [])


def test_every_reason_of_the_engine_has_words() -> None:
    assert set(UnfilledReason.values) == set(get_args(Reason))
    assert Order(unfilled_reason="some_new_code").unfilled_reason_display == "some_new_code"


# --------------------------------------------------------------------------- depth (a query)


def test_depth_counts_an_order_once_per_device_and_leaves_out_what_is_gone(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal
) -> None:
    list_offer(seller, market, pool)  # 6 units at 80.00
    list_offer(seller, market, pool, units=2, min_price=Decimal("95.00"))
    one_round_left = place(funded_buyer, market, limit_price=Decimal("70.00"))
    place(funded_buyer, market, quantity=Decimal(2), limit_price=Decimal("75.00"))

    [depth] = market_data.depth(market, now=NOW)

    assert (depth.device, depth.scu_per_unit) == ("nvidia-h100-sxm", Decimal("7.9152"))
    assert [(p.price, p.units) for p in depth.bids] == [
        (Decimal("75.00"), 2),
        (Decimal("70.00"), 6),
    ]
    assert [(p.price, p.units) for p in depth.asks] == [
        (Decimal("80.00"), 6),
        (Decimal("95.00"), 8),
    ]
    assert one_round_left.is_open


# --------------------------------------------------------------------------- the portal


def json_script(html: str, element_id: str) -> Any:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found is not None, element_id
    return json.loads(found.group(1))


def test_the_market_page_shows_prices_charts_and_rounds_to_anyone(
    market: Market, seller: Principal, pool: Pool, funded_buyer: Principal, at_now: None
) -> None:
    one_round(market, seller, pool, funded_buyer)

    response = Client().get("/market/cny/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f"Last round {FIRST}" in html
    assert (
        '<td data-label="SCU per unit">7.9152</td><td data-label="Price / unit-h">80.00</td>'
        '<td data-label="Price / SCU-h">10.1071</td><td data-label="Units traded">4</td>'
        '<td data-label="Units offered">6</td>'
    ) in html
    assert 'id="depth-chart" data-chart="depth"' in html
    assert 'id="price-history-chart" data-chart="history"' in html
    # The charts' data: 2 of the 6 units are still free at 80.00; the bid at 70.00 is open.
    assert json_script(html, "depth-data")["groups"] == [
        {
            "title": "nvidia-h100-sxm · 7.9152 SCU per unit",
            "bids": [["70.000000", 4]],
            "asks": [["80.000000", 2]],
        }
    ]
    assert json_script(html, "price-history-data")["series"] == [
        {
            "label": "nvidia-h100-sxm · CN-GS (7.9152 SCU)",
            "points": [["2026-11-23T12:00:00+00:00", "10.107136", "80.00"]],
        }
    ]
    assert f'<a href="/api/v1/markets/cny/rounds/{FIRST}">{FIRST}</a>' in html
    assert '<span class="badge approved">OK</span>' in html
    assert 'hx-get="/market/cny/" hx-trigger="every 10s"' in html


def test_the_chart_library_is_served_from_the_npm_dependency(market: Market) -> None:
    html = Client().get("/market/cny/").content.decode()

    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert "/static/vendor/chart.js/chart.umd.js" in scripts
    assert "/static/js/market-charts.js" in scripts
    found = finders.find("vendor/chart.js/chart.umd.js")
    assert isinstance(found, str) and "node_modules" in found
    for script in scripts:
        assert Client().get(script).status_code == 200, script


def test_a_round_with_certificate_violations_says_so(market: Market) -> None:
    ClearingRound.objects.create(
        market=market,
        number=FIRST,
        delivery_start=NOW,
        mechanism="flow",
        inputs_digest="0" * 64,
        result_digest="1" * 64,
        orders=0,
        offers=0,
        volume_units=0,
        volume_unit_hours=0,
        welfare_per_hour=Decimal(0),
        welfare=Decimal(0),
        buyer_payments=0,
        seller_receipts=0,
        certificate={"violations": ["class a: a filled bid below its price"]},
        certificate_ok=False,
        started_at=NOW,
        duration_ms=3,
    )

    html = Client().get("/market/cny/").content.decode()

    assert '<span class="badge suspended">Certificate violations</span>' in html
    assert '<span class="badge suspended">1 violation</span>' in html
    assert "<li>class a: a filled bid below its price</li>" in html
    assert "No round has cleared" not in html


def test_htmx_gets_the_section_it_targets(three_rounds: None) -> None:
    client = Client()

    data = client.get("/market/cny/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="market-data")
    rounds = client.get("/market/cny/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="rounds")
    book = client.get("/market/cny/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="book")

    for response, section in ((data, "market-data"), (rounds, "rounds"), (book, "book")):
        body = response.content.decode().strip()
        assert response.status_code == 200
        assert body.startswith(f'<section id="{section}"') and body.endswith("</section>")
        assert "<html" not in body
    assert f"Last round {FIRST + 120}" in data.content.decode()
    assert rounds.content.decode().count('<span class="badge approved">OK</span>') == 3


def test_the_order_page_says_why_and_lists_the_leases(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    buyer: User,
    logged_in: Callable[[User], Client],
) -> None:
    list_offer(seller, market, pool, available_until=NOW + 10 * HOUR)
    order = place(funded_buyer, market, quantity=Decimal(8))
    matching.clear_round(market=market, now=NOW)

    html = logged_in(buyer).get(f"/orders/{order.public_id}/").content.decode()

    assert (
        '<p class="notice" role="status" data-reason="rationed"><strong>Why it is not (fully) '
        "filled:</strong> Rationed: partly filled; the rest was priced at exactly your limit, "
        "or no supply was left.</p>"
    ) in html
    assert f"<dt>Last round</dt><dd>{FIRST}</dd>" in html
    assert (
        f'<td data-label="Round">{FIRST}</td><td data-label="Units">6</td>'
        '<td data-label="Price / unit-h">100.00</td>'
        '<td data-label="Starts (UTC)">2026-11-23 12:00</td>'
        '<td data-label="Ends (UTC)">2026-11-23 22:00</td>'
        '<td data-label="Status"><span class="badge scheduled">Scheduled</span></td>'
        '<td data-label="Cost">6000.00 CNY</td>'
    ) in html
    assert '<td data-label="Event">Partially filled</td>' in html


def test_the_market_page_speaks_chinese(three_rounds: None) -> None:
    client = Client()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})

    html = client.get("/market/cny/").content.decode()

    assert f"最近一轮 {FIRST + 120}" in html
    assert "价格历史" in html and "深度" in html
    assert json_script(html, "depth-data")["labels"]["y"] == "累计单元数"
