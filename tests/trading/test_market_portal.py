"""The market through the portal: the public book, a buyer's orders with the live preview, a
provider's supply, isolation between organizations and the regulator's read-only view."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ledger.models import Kind, Transfer
from marketplace.models import (
    Market,
    Offer,
    OfferStatus,
    Order,
    OrderStatus,
    Organization,
    Pool,
    Site,
    User,
)
from marketplace.trading import orders as trading_orders
from marketplace.trading import supply as trading_supply
from marketplace.trading.supply import OfferRequest, PoolRequest, SiteRequest
from tests.factories import DeviceModelFactory, OrganizationFactory, UserFactory
from tests.fixtures.market import HOUR, acting, fund, order_request, snapshot, wallet_of

pytestmark = pytest.mark.django_db
Login = Callable[[User], Client]


@pytest.fixture
def listed(provider: User, market: Market) -> list[Offer]:
    """A green Gansu site offering 16 H100 at 80.00, a Shanghai site offering 32 Ascend at 20.00."""
    DeviceModelFactory.create()
    DeviceModelFactory.create(ascend_910b=True)
    seller, now = acting(provider), timezone.now()
    offers = []
    for site_name, region, city, share, device, units, price in [
        ("Qingyang", "CN-GS", "Qingyang", "0.7", "nvidia-h100-sxm", 16, "80.00"),
        ("Pudong", "CN-SH", "Shanghai", "0.2", "huawei-ascend-910b", 32, "20.00"),
    ]:
        site = trading_supply.create_site(
            principal=seller,
            request=SiteRequest(
                name=site_name,
                country="CN",
                region=region,
                city=city,
                jurisdiction="CN",
                pue=Decimal("1.20"),
                renewable_share=Decimal(share),
                carbon_g_per_kwh=500,
            ),
        )
        pool = trading_supply.create_pool(
            principal=seller,
            request=PoolRequest(site=site, name=device, device_model=device, units=units),
        )
        offers.append(
            trading_supply.create_offer(
                principal=seller,
                request=OfferRequest(
                    market=market,
                    pool=pool,
                    units=units,
                    available_from=now,
                    available_until=now + 72 * HOUR,
                    min_price=Decimal(price),
                ),
                now=now,
            )
        )
    return offers


@pytest.fixture
def buyer_client(buyer: User, buyer_org: Organization, logged_in: Login) -> Client:
    fund(buyer_org, 1_000_000)  # 10,000.00 CNY
    return logged_in(buyer)


def local(moment: dt.datetime) -> str:
    """What a datetime-local input sends (read as UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def start() -> dt.datetime:
    return timezone.now().replace(second=0, microsecond=0) + HOUR


def order_form(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "market": "cny",
        "quantity": "4",
        "limit_price": "90.00",
        "price_per": "units",
        "duration_hours": "10",
        "earliest_start": local(start()),
        "latest_start": local(start() + 2 * HOUR),
        "device_models": ["nvidia-h100-sxm"],
        "allowed_regions": "",
        "allowed_jurisdictions": "cn",
        "min_renewable_share": "",
        "max_pue": "",
        "placement": "any",
        "fill": "partial",
    }
    data.update(changes)
    return data


def field_block(page: str, field_id: str) -> str:
    """The rendered ``_form.html`` block of one field: its label, input and errors."""
    blocks = re.split(r'<div class="field', page)
    return next(b for b in blocks if f'id="{field_id}"' in b)


def place(buyer: User, market: Market, **changes: Any) -> Order:
    return trading_orders.place_order(
        principal=acting(buyer),
        request=order_request(
            market,
            earliest_start=timezone.now() + HOUR,
            latest_start=timezone.now() + 3 * HOUR,
            **changes,
        ),
        now=timezone.now(),
    )


# --------------------------------------------------------------------------- the book


def test_the_book_page_shows_asks_to_anyone_and_htmx_gets_just_the_book(
    listed: list[Offer], buyer: User, buyer_org: Organization, market: Market
) -> None:
    fund(buyer_org, 1_000_000)
    place(buyer, market, quantity=Decimal(2), limit_price=Decimal("85.00"))
    client = Client()

    index = client.get("/market/")
    page = client.get("/market/cny/")
    partial = client.get("/market/cny/", HTTP_HX_REQUEST="true")

    assert (index.status_code, index["Location"]) == (302, "/market/cny/")
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        '<td data-label="Price / unit-h">80.00</td><td data-label="Price / SCU-h">80.8571</td>'
        '<td data-label="Units">16</td><td data-label="Offers">1</td>'
    ) in html  # 80.00 / 0.9894 SCU
    assert (
        '<td data-label="Price / unit-h">20.00</td><td data-label="Price / SCU-h">62.5000</td>'
        '<td data-label="Units">32</td><td data-label="Offers">1</td>'
    ) in html  # 20.00 / 0.32 SCU
    assert (
        '<td data-label="Price / unit-h">85.00</td><td data-label="Price / SCU-h">85.9107</td>'
        '<td data-label="Units">2</td><td data-label="Orders">1</td>'
    ) in html
    assert 'hx-get="/market/cny/" hx-trigger="every 5s"' in html
    assert '<a href="/market/"' in html  # the nav link
    assert "East Models" not in html  # the book is anonymous
    body = partial.content.decode().strip()
    assert partial.status_code == 200
    assert body.startswith('<section id="book"') and body.endswith("</section>")
    assert "80.8571" in body and "<html" not in body


def test_an_unknown_market_is_404() -> None:
    assert Client().get("/market/eur/").status_code == 404


# --------------------------------------------------------------------------- orders


def test_placing_an_order_through_the_form_holds_its_exact_cost(
    listed: list[Offer], buyer_client: Client, buyer_org: Organization
) -> None:
    response = buyer_client.post(reverse("order-create"), order_form())

    order = Order.objects.get()
    assert (response.status_code, response["Location"]) == (302, f"/orders/{order.public_id}/")
    # 4 units × 10 h × 90.00 = 3,600.00 CNY, plus the 1% buyer fee 36.00
    assert order.hold_amount == 363_600
    hold = Transfer.objects.get(pk=order.hold_transfer_id)
    assert (hold.kind, hold.amount) == (Kind.PENDING, 363_600)
    assert wallet_of(buyer_org).debits_pending == 363_600
    assert (order.organization, order.status, order.quantity) == (buyer_org, "open", Decimal(4))
    assert (order.earliest_start, order.latest_start) == (start(), start() + 2 * HOUR)
    assert order.allowed_jurisdictions == ["CN"]
    assert [d.slug for d in order.device_models.all()] == ["nvidia-h100-sxm"]
    detail = buyer_client.get(response["Location"]).content.decode()
    assert "3636.00 CNY" in detail and "is held until it fills" in detail


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"limit_price": "90.005"},
            "limit_price",
            "The price must be a multiple of the tick 0.01 CNY.",
        ),
        (
            {"quantity": "500", "limit_price": "999.00"},
            "quantity",
            "Insufficient funds: the order needs a hold of 5044950.00 CNY, 10000.00 CNY available.",
        ),
        ({"allowed_regions": "CN-GS, cn-xx"}, "allowed_regions", "Unknown region “CN-XX”"),
        ({"earliest_start": "tomorrow"}, "earliest_start", "Enter a valid date/time."),
    ],
)
def test_a_rejected_order_shows_the_error_next_to_its_field_and_holds_nothing(
    listed: list[Offer], buyer_client: Client, changes: dict[str, str], field: str, message: str
) -> None:
    before = snapshot()

    response = buyer_client.post(reverse("order-create"), order_form(**changes))

    assert response.status_code == 400
    assert message in field_block(response.content.decode(), f"id_{field}")
    assert snapshot() == before
    assert Order.objects.count() == 0


def test_a_provider_cannot_order_and_nothing_is_held(
    listed: list[Offer], provider: User, provider_org: Organization, logged_in: Login
) -> None:
    fund(provider_org, 1_000_000)
    before = snapshot()

    response = logged_in(provider).post(reverse("order-create"), order_form())

    assert response.status_code == 400
    assert '<div class="error" role="alert">Only buyers place orders.</div>' in (
        response.content.decode()
    )
    assert snapshot() == before


def test_the_preview_shows_compatible_classes_exclusions_and_the_hold(
    listed: list[Offer], buyer_client: Client
) -> None:
    before = snapshot()

    response = buyer_client.post(
        reverse("order-preview"),
        order_form(device_models=[], min_renewable_share="0.5", limit_price="75.00"),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    body = response.content.decode().strip()
    assert body.startswith('<aside id="preview"') and "<html" not in body
    assert '<dd data-testid="compatible-units">16</dd>' in body
    assert '<dd data-testid="affordable-units">0</dd>' in body  # the asks at 80.00 exceed 75.00
    assert '<dd data-testid="hold">3030.00 CNY</dd>' in body  # 4 × 10 h × 75.00 + 1%
    assert '<td data-label="Site">Qingyang</td>' in body
    assert "Pudong" not in body
    assert "<li><span>Renewable share too low</span> <strong>1</strong></li>" in body
    assert snapshot() == before


def test_the_preview_explains_a_draft_the_rules_refuse(
    listed: list[Offer], buyer_client: Client
) -> None:
    response = buyer_client.post(
        reverse("order-preview"), order_form(max_pue="0.9"), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 400
    assert "<li>Maximum PUE: PUE is never below 1.00.</li>" in response.content.decode()
    assert Order.objects.count() == 0


def test_cancel_voids_the_hold_and_the_history_shows_it(
    market: Market, buyer: User, buyer_client: Client, buyer_org: Organization
) -> None:
    order = place(buyer, market)
    url = reverse("order", args=[order.public_id])
    assert reverse("order-cancel", args=[order.public_id]) in buyer_client.get(url).content.decode()

    response = buyer_client.post(reverse("order-cancel", args=[order.public_id]))

    order.refresh_from_db()
    assert (response.status_code, response["Location"]) == (302, url)
    assert order.status == OrderStatus.CANCELLED
    assert Transfer.objects.filter(kind=Kind.VOID, pending_id=order.hold_transfer_id).count() == 1
    assert wallet_of(buyer_org).debits_pending == 0
    page = buyer_client.get(url).content.decode()
    assert re.findall(r'<td data-label="Event">([^<]+)</td>', page) == ["Placed", "Cancelled"]
    assert reverse("order-cancel", args=[order.public_id]) not in page


def test_cancelling_a_closed_order_is_refused_and_changes_nothing(
    market: Market, buyer: User, buyer_client: Client
) -> None:
    order = place(buyer, market)
    buyer_client.post(reverse("order-cancel", args=[order.public_id]))
    before = snapshot()

    response = buyer_client.post(reverse("order-cancel", args=[order.public_id]))

    assert response.status_code == 400
    assert "This order is Cancelled and cannot be cancelled." in response.content.decode()
    assert snapshot() == before


def test_a_requested_cancel_says_it_waits_for_the_round(
    market: Market, buyer: User, buyer_client: Client
) -> None:
    order = place(buyer, market)
    Order.objects.filter(pk=order.pk).update(cancel_requested_at=timezone.now())

    page = buyer_client.get(reverse("order", args=[order.public_id])).content.decode()

    assert "Cancel requested; it takes effect after the running round." in page
    assert reverse("order-cancel", args=[order.public_id]) not in page


def test_the_order_list_filters_by_status(
    market: Market, buyer: User, buyer_client: Client
) -> None:
    kept = place(buyer, market, quantity=Decimal(2))
    cancelled = place(buyer, market, quantity=Decimal(3))
    trading_orders.cancel_order(principal=acting(buyer), order=cancelled, now=timezone.now())

    every = buyer_client.get(reverse("orders")).content.decode()
    open_only = buyer_client.get(reverse("orders"), {"status": "open"}).content.decode()

    assert str(kept.public_id) in every and str(cancelled.public_id) in every
    assert str(kept.public_id) in open_only and str(cancelled.public_id) not in open_only


def test_another_organizations_order_is_not_found(
    market: Market, buyer: User, buyer_org: Organization, provider: User, logged_in: Login
) -> None:
    fund(buyer_org, 1_000_000)
    order = place(buyer, market)
    rival = UserFactory.create(email="owner@rival.example")
    OrganizationFactory.create(owner=rival, legal_name="North Labs", buyer=True)
    before = snapshot()

    for user in (rival, provider):
        client = logged_in(user)
        assert client.get(reverse("order", args=[order.public_id])).status_code == 404
        assert client.post(reverse("order-cancel", args=[order.public_id])).status_code == 404
        assert str(order.public_id) not in client.get(reverse("orders")).content.decode()

    assert snapshot() == before
    assert Order.objects.get().status == OrderStatus.OPEN


# --------------------------------------------------------------------------- supply


def test_a_provider_adds_a_site_a_pool_and_an_offer_then_pauses_it(
    market: Market, provider: User, provider_org: Organization, logged_in: Login
) -> None:
    DeviceModelFactory.create()
    client = logged_in(provider)
    begin = timezone.now().replace(second=0, microsecond=0)

    site = client.post(
        reverse("site-create"),
        {
            "name": "Qingyang",
            "country": "CN",
            "region": "cn-gs",
            "city": "Qingyang",
            "jurisdiction": "CN",
            "pue": "1.15",
            "renewable_share": "0.62",
            "carbon_g_per_kwh": "420",
            "certifications": "MLPS-3, ISO27001",
        },
        HTTP_HX_REQUEST="true",
    )
    created_site = Site.objects.get()
    pool = client.post(
        reverse("pool-create"),
        {
            "site": str(created_site.public_id),
            "name": "h100-x8",
            "device_model": "nvidia-h100-sxm",
            "units": "10",
            "devices_per_unit": "8",
            "interconnect": "infiniband",
        },
        HTTP_HX_REQUEST="true",
    )
    created_pool = Pool.objects.get()
    offer = client.post(
        reverse("offer-create"),
        {
            "market": "cny",
            "pool": str(created_pool.public_id),
            "units": "6",
            "available_from": local(begin),
            "available_until": local(begin + 48 * HOUR),
            "min_price": "640.00",
            "min_lease_hours": "1",
            "max_lease_hours": "48",
        },
        HTTP_HX_REQUEST="true",
    )
    created_offer = Offer.objects.get()
    paused = client.post(
        reverse("offer-action", args=[created_offer.public_id, "pause"]), HTTP_HX_REQUEST="true"
    )

    assert [r.status_code for r in (site, pool, offer, paused)] == [200, 200, 200, 200]
    assert site.content.decode().strip().startswith('<div id="supply">')
    assert (created_site.organization, created_site.region, created_site.certifications) == (
        provider_org,
        "CN-GS",
        ["ISO27001", "MLPS-3"],
    )
    assert (created_pool.site, created_pool.units, created_pool.scu_per_unit) == (
        created_site,
        10,
        Decimal("7.9152"),
    )
    assert '<td data-label="SCU per unit">7.9152</td>' in pool.content.decode()
    created_offer.refresh_from_db()
    assert (created_offer.units, created_offer.min_price) == (6, Decimal("640.00"))
    assert (created_offer.available_from, created_offer.available_until) == (
        begin,
        begin + 48 * HOUR,
    )
    assert created_offer.status == OfferStatus.PAUSED
    assert list(created_offer.events.order_by("pk").values_list("kind", flat=True)) == [
        "posted",
        "pause",
    ]
    swapped = paused.content.decode().strip()
    assert swapped.startswith('<section class="card" id="offers">') and "<html" not in swapped
    assert '<td data-label="Price / SCU-h">80.8571</td>' in swapped  # 640.00 / 7.9152 SCU
    assert reverse("offer-action", args=[created_offer.public_id, "resume"]) in swapped
    assert reverse("offer-action", args=[created_offer.public_id, "pause"]) not in swapped


def test_supply_forms_refuse_bad_input_and_other_organizations_objects(
    listed: list[Offer], provider: User, logged_in: Login, buyer: User
) -> None:
    rival = UserFactory.create(email="owner@rival.example")
    OrganizationFactory.create(owner=rival, legal_name="South Power", provider=True)
    rival_client = logged_in(rival)
    sites, pools, offers = Site.objects.count(), Pool.objects.count(), Offer.objects.count()
    foreign_site = Site.objects.get(name="Qingyang")

    bad_site = rival_client.post(
        reverse("site-create"),
        {
            "name": "Lake",
            "country": "CN",
            "region": "CN-GS",
            "city": "Lanzhou",
            "jurisdiction": "CN",
            "pue": "0.80",
            "renewable_share": "0.5",
            "carbon_g_per_kwh": "400",
        },
    )
    stolen_pool = rival_client.post(
        reverse("pool-create"),
        {
            "site": str(foreign_site.public_id),
            "name": "stolen",
            "device_model": "nvidia-h100-sxm",
            "units": "1",
            "devices_per_unit": "1",
            "interconnect": "none",
        },
    )
    paused = logged_in(buyer).post(reverse("offer-action", args=[listed[0].public_id, "pause"]))

    assert bad_site.status_code == 400
    assert "PUE is between 1.00 and 5.00." in field_block(bad_site.content.decode(), "site_pue")
    assert stolen_pool.status_code == 400
    assert "Select a valid choice." in field_block(stolen_pool.content.decode(), "pool_site")
    assert paused.status_code == 404
    assert (Site.objects.count(), Pool.objects.count(), Offer.objects.count()) == (
        sites,
        pools,
        offers,
    )
    assert set(Offer.objects.values_list("status", flat=True)) == {OfferStatus.ACTIVE}


# --------------------------------------------------------------------------- regulators


def test_a_regulator_reads_every_organizations_orders_and_offers_without_forms(
    listed: list[Offer], market: Market, buyer: User, regulator: User, logged_in: Login
) -> None:
    rival = UserFactory.create(email="owner@rival.example")
    rival_org = OrganizationFactory.create(owner=rival, legal_name="North Labs", buyer=True)
    fund(rival_org, 1_000_000)
    fund(Organization.objects.get(memberships__user=buyer), 1_000_000)
    first, second = place(buyer, market), place(rival, market)
    client = logged_in(regulator)
    before = snapshot()

    orders = client.get(reverse("orders")).content.decode()
    detail = client.get(reverse("order", args=[first.public_id]))
    cancel = client.post(reverse("order-cancel", args=[first.public_id]))
    supply = client.get(reverse("supply")).content.decode()
    place_form = client.get(reverse("order-create"))

    assert str(first.public_id) in orders and str(second.public_id) in orders
    assert re.findall(r'<td data-label="Organization">([^<]+)</td>', orders) == [
        "North Labs",
        "East Models",
    ]
    assert reverse("order-create") not in orders
    assert detail.status_code == 200
    assert reverse("order-cancel", args=[first.public_id]) not in detail.content.decode()
    assert cancel.status_code == 404
    assert (place_form.status_code, Order.objects.count()) == (404, 2)
    assert supply.count('<td data-label="Organization">West Compute</td>') == 6  # 2 each
    assert reverse("offer-create") not in supply and reverse("site-create") not in supply
    assert "/pause/" not in supply and "/withdraw/" not in supply
    assert snapshot() == before
