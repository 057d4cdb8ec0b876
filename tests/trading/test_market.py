"""Supply and demand services: sites, pools, offers, orders, holds, lifecycles, validation."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from ledger.models import Kind, Transfer
from marketplace.core.access import Principal
from marketplace.core.errors import Conflict, DomainError, Forbidden
from marketplace.models import (
    DeviceModel,
    LatencyTier,
    Market,
    Membership,
    Offer,
    OfferStatus,
    OrderStatus,
    Organization,
    Pool,
    Role,
    Site,
    User,
)
from marketplace.trading import orders, rules, supply
from marketplace.trading.eligibility import Location, latency_tier
from marketplace.trading.supply import SiteRequest
from tests.fixtures.ledger import round_trips
from tests.fixtures.market import (
    HOUR,
    NOW,
    acting,
    fund,
    offer_request,
    order_request,
    snapshot,
    wallet_of,
)

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("buyer", "site", "tier"),
    [
        (
            Location("CN", "CN-SH", "Shanghai"),
            Location("CN", "CN-SH", "shanghai"),
            LatencyTier.CITY,
        ),
        (Location("CN", "CN-SH", ""), Location("CN", "CN-SH", "Shanghai"), LatencyTier.REGIONAL),
        (
            Location("CN", "CN-GD", "Shenzhen"),
            Location("CN", "CN-GD", "Guangzhou"),
            LatencyTier.REGIONAL,
        ),
        (
            Location("CN", "CN-SH", "Shanghai"),
            Location("CN", "CN-GS", "Qingyang"),
            LatencyTier.NATIONAL,
        ),
        (Location("CN"), Location("CN", "CN-GS", "Qingyang"), LatencyTier.NATIONAL),
        (
            Location("SG", "SG-01", "Singapore"),
            Location("CN", "CN-SH", "Shanghai"),
            LatencyTier.INTERNATIONAL,
        ),
    ],
)
def test_latency_tier(buyer: Location, site: Location, tier: LatencyTier) -> None:
    assert latency_tier(buyer, site) == tier


def test_scu_of_a_pool_unit(h100: DeviceModel) -> None:
    pool = Pool(device_model=h100, devices_per_unit=8, units=1)

    assert h100.scu() == Decimal("0.9894")
    assert pool.scu_per_unit == Decimal("7.9152")
    assert h100.scu(precision="fp64") == Decimal("0.0335")


# --------------------------------------------------------------------------- orders


def test_placing_an_order_holds_its_maximum_cost_plus_fee(
    market: Market, funded_buyer: Principal, buyer_org: Organization
) -> None:
    order = orders.place_order(principal=funded_buyer, request=order_request(market), now=NOW)

    # 4 units × 10 h × 12.50 = 500.00 CNY, plus the 1% buyer fee 5.00 = 505.00 CNY
    assert order.hold_amount == 50_500
    hold = Transfer.objects.get(pk=order.hold_transfer_id)
    assert (hold.kind, hold.amount, hold.debit_account_id) == (
        Kind.PENDING,
        50_500,
        wallet_of(buyer_org).pk,
    )
    assert hold.credit_account.reference == f"order:{order.public_id}"
    wallet = wallet_of(buyer_org)
    assert (wallet.debits_pending, wallet.credits_posted) == (50_500, 1_000_000)
    assert (order.status, order.placed_by) == (OrderStatus.OPEN, funded_buyer.actor)
    assert list(order.events.values_list("kind", "status")) == [("placed", "open")]


def test_an_order_and_its_hold_take_six_round_trips(
    market: Market, funded_buyer: Principal, h100: DeviceModel
) -> None:
    request = order_request(market, device_models=[h100.slug])
    orders.place_order(principal=funded_buyer, request=order_request(market), now=NOW)  # warm

    with round_trips() as sent:
        order = orders.place_order(principal=funded_buyer, request=request, now=NOW)

    # the savepoint, the device models, the order, then its device models, event and two
    # accounts' statements together, the hold, and the savepoint's release
    assert len(sent) == 6, sent
    assert list(order.device_models.values_list("slug", flat=True)) == [h100.slug]
    assert list(order.events.values_list("kind", flat=True)) == ["placed"]
    assert Transfer.objects.get(pk=order.hold_transfer_id).amount == order.hold_amount


def test_an_scu_order_holds_price_times_scu_hours(market: Market, funded_buyer: Principal) -> None:
    request = order_request(
        market,
        quantity=Decimal("2.5"),
        quantity_kind="scu",
        price_per="scu",
        limit_price=Decimal("3.33"),
        duration_hours=3,
    )

    order = orders.place_order(principal=funded_buyer, request=request, now=NOW)

    # 2.5 SCU × 3 h × 3.33 = 24.975 → 2497.5 minor → 2498 (half-even); fee 1% 24.975 → 25
    assert order.hold_amount == 2_498 + 25


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"quantity": Decimal(0)}, "quantity_too_small", "quantity"),
        ({"quantity": Decimal("1.5")}, "quantity_not_whole", "quantity"),
        ({"quantity": Decimal(513)}, "quantity_above_maximum", "quantity"),
        ({"limit_price": Decimal(0)}, "price_not_positive", "limit_price"),
        ({"limit_price": Decimal("-1")}, "price_not_positive", "limit_price"),
        ({"limit_price": Decimal("12.505")}, "price_precision", "limit_price"),
        ({"duration_hours": 0}, "duration_out_of_range", "duration_hours"),
        ({"duration_hours": 721}, "duration_out_of_range", "duration_hours"),
        ({"earliest_start": NOW - HOUR}, "start_in_past", "earliest_start"),
        ({"latest_start": NOW + 15 * 24 * HOUR}, "start_beyond_horizon", "latest_start"),
        ({"latest_start": NOW}, "start_window_inverted", "latest_start"),
        ({"device_models": ["nvidia-h999"]}, "unknown_device", "device_models"),
        ({"allowed_regions": ["CN-XX"]}, "unknown_region", "allowed_regions"),
        ({"allowed_jurisdictions": ["ZZ"]}, "unknown_jurisdiction", "allowed_jurisdictions"),
        (
            {"allowed_regions": ["CN-GS"], "allowed_jurisdictions": ["SG"]},
            "contradictory_constraints",
            "allowed_regions",
        ),
        ({"max_latency_tier": LatencyTier.CITY}, "contradictory_constraints", "buyer_location"),
        (
            {"max_latency_tier": LatencyTier.CITY, "buyer_location": Location("CN", "CN-SH")},
            "contradictory_constraints",
            "buyer_location",
        ),
        (
            {"device_models": ["nvidia-h100-sxm"], "min_memory_gb": Decimal(141)},
            "contradictory_constraints",
            "min_memory_gb",
        ),
        ({"min_renewable_share": Decimal("1.5")}, "share_out_of_range", "min_renewable_share"),
        ({"max_pue": Decimal("0.9")}, "pue_out_of_range", "max_pue"),
        ({"min_fill": Decimal(5)}, "min_fill_out_of_range", "min_fill"),
        ({"price_per": "scu"}, "price_basis_mismatch", "price_per"),
        (
            {"placement": "same_pool", "quantity_kind": "scu", "price_per": "scu"},
            "contradictory_constraints",
            "placement",
        ),
        ({"expires_at": NOW + 4 * HOUR}, "expiry_out_of_range", "expires_at"),
        (
            {"quantity": Decimal(400), "limit_price": Decimal("99.00")},
            "insufficient_funds",
            "quantity",
        ),
    ],
)
def test_each_order_rule_gives_its_code_and_field_and_changes_nothing(
    market: Market,
    funded_buyer: Principal,
    h100: DeviceModel,
    changes: dict[str, Any],
    code: str,
    field: str,
) -> None:
    before = snapshot()

    with pytest.raises(DomainError) as refused:
        orders.place_order(
            principal=funded_buyer, request=order_request(market, **changes), now=NOW
        )

    assert (refused.value.code, refused.value.field) == (code, field)
    assert snapshot() == before


def test_insufficient_funds_is_422(market: Market, funded_buyer: Principal) -> None:
    with pytest.raises(DomainError) as refused:
        orders.place_order(
            principal=funded_buyer,
            request=order_request(market, quantity=Decimal(400), limit_price=Decimal("99.00")),
            now=NOW,
        )

    assert refused.value.status == 422
    assert "10000.00 CNY available" in refused.value.message


@pytest.mark.parametrize("who", ["unapproved", "provider", "viewer"])
def test_only_approved_buyers_with_the_trade_scope_place_orders(
    market: Market,
    who: str,
    provider: User,
    buyer_org: Organization,
    add_member: Callable[[Organization, str, str], User],
) -> None:
    fund(buyer_org, 1_000_000)
    if who == "unapproved":
        Organization.objects.filter(pk=buyer_org.pk).update(kyb_status="pending")
        principal = acting(Membership.objects.get(organization=buyer_org).user)
    elif who == "provider":
        principal = acting(provider)
    else:
        principal = acting(add_member(buyer_org, "viewer@buyer.example", Role.VIEWER))
    before = snapshot()

    with pytest.raises(Forbidden) as refused:
        orders.place_order(principal=principal, request=order_request(market), now=NOW)

    expected = {
        "unapproved": "organization_not_approved",
        "provider": "not_a_buyer",
        "viewer": "insufficient_scope",
    }
    assert refused.value.code == expected[who]
    assert snapshot() == before


def test_cancel_voids_the_hold(
    market: Market, funded_buyer: Principal, buyer_org: Organization
) -> None:
    order = orders.place_order(principal=funded_buyer, request=order_request(market), now=NOW)

    cancelled = orders.cancel_order(principal=funded_buyer, order=order, now=NOW + HOUR)

    assert cancelled.status == OrderStatus.CANCELLED
    wallet = wallet_of(buyer_org)
    assert (wallet.debits_pending, wallet.debits_posted) == (0, 0)
    void = Transfer.objects.get(pending_id=order.hold_transfer_id)
    assert (void.kind, void.amount) == (Kind.VOID, 50_500)
    assert list(order.events.order_by("at").values_list("kind", flat=True)) == [
        "placed",
        "cancelled",
    ]
    with pytest.raises(Conflict) as again:
        orders.cancel_order(principal=funded_buyer, order=order, now=NOW + HOUR)
    assert again.value.code == "order_not_open"


def test_a_cancel_during_a_clearing_round_waits_for_the_round(
    market: Market, funded_buyer: Principal, buyer_org: Organization
) -> None:
    order = orders.place_order(principal=funded_buyer, request=order_request(market), now=NOW)
    from django.db import connections

    params = connections["default"].get_connection_params()
    import psycopg

    matcher = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    try:
        matcher.execute("SELECT pg_advisory_lock(%s)", [rules.market_lock_id(market)])
        pending = orders.cancel_order(principal=funded_buyer, order=order, now=NOW + HOUR)
    finally:
        matcher.close()

    assert (pending.status, pending.cancel_requested_at) == (OrderStatus.OPEN, NOW + HOUR)
    assert wallet_of(buyer_org).debits_pending == 50_500
    assert orders.apply_requested_cancels(market=market, now=NOW + 2 * HOUR) == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert wallet_of(buyer_org).debits_pending == 0
    assert list(order.events.order_by("at").values_list("kind", flat=True)) == [
        "placed",
        "cancel_requested",
        "cancelled",
    ]
    assert connection.in_atomic_block


def test_orders_expire_at_their_time_in_force(
    market: Market, funded_buyer: Principal, buyer_org: Organization
) -> None:
    order = orders.place_order(
        principal=funded_buyer, request=order_request(market, expires_at=NOW + 2 * HOUR), now=NOW
    )

    early = orders.expire_orders(now=NOW + HOUR)
    due = orders.expire_orders(now=NOW + 2 * HOUR)
    again = orders.expire_orders(now=NOW + 3 * HOUR)

    assert (early, due, again) == (0, 1, 0)
    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED
    assert wallet_of(buyer_org).debits_pending == 0


# --------------------------------------------------------------------------- supply


def test_a_provider_lists_a_site_a_pool_and_an_offer(
    market: Market, seller: Principal, pool: Pool
) -> None:
    offer = supply.create_offer(principal=seller, request=offer_request(market, pool), now=NOW)

    assert (offer.status, offer.units, pool.scu_per_unit) == ("active", 6, Decimal("7.9152"))
    assert pool.site.certifications == ["ISO27001", "MLPS-3"]
    assert list(offer.events.values_list("kind", "actor")) == [("posted", seller.actor)]


def test_offers_may_not_exceed_the_pool_in_overlapping_windows(
    market: Market, seller: Principal, pool: Pool
) -> None:
    supply.create_offer(principal=seller, request=offer_request(market, pool), now=NOW)
    later = offer_request(
        market, pool, available_from=NOW + 48 * HOUR, available_until=NOW + 72 * HOUR, units=10
    )
    supply.create_offer(principal=seller, request=later, now=NOW)  # no overlap: fine

    with pytest.raises(Conflict) as refused:
        supply.create_offer(principal=seller, request=offer_request(market, pool, units=5), now=NOW)

    assert (refused.value.code, refused.value.field) == ("exceeds_pool_capacity", "units")
    assert Offer.objects.count() == 2


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"min_price": Decimal("80.001")}, "price_precision"),
        ({"min_price": Decimal(0)}, "price_not_positive"),
        ({"units": 0}, "quantity_too_small"),
        ({"available_until": NOW - HOUR, "available_from": NOW - 2 * HOUR}, "window_in_past"),
        ({"available_until": NOW}, "window_inverted"),
        ({"min_lease_hours": 49}, "duration_out_of_range"),
    ],
)
def test_bad_offers_are_refused(
    market: Market, seller: Principal, pool: Pool, changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(DomainError) as refused:
        supply.create_offer(
            principal=seller, request=offer_request(market, pool, **changes), now=NOW
        )

    assert refused.value.code == code
    assert Offer.objects.count() == 0


def test_offer_lifecycle(market: Market, seller: Principal, pool: Pool) -> None:
    offer = supply.create_offer(principal=seller, request=offer_request(market, pool), now=NOW)

    statuses = [
        supply.change_offer(principal=seller, offer=offer, action=action, now=NOW).status
        for action in ("pause", "resume", "withdraw")
    ]

    assert statuses == ["paused", "active", "withdrawn"]
    with pytest.raises(Conflict):
        supply.change_offer(principal=seller, offer=offer, action="resume", now=NOW)
    assert list(offer.events.order_by("pk").values_list("kind", flat=True)) == [
        "posted",
        "pause",
        "resume",
        "withdraw",
    ]


def test_offers_expire_at_the_end_of_their_window(
    market: Market, seller: Principal, pool: Pool
) -> None:
    offer = supply.create_offer(principal=seller, request=offer_request(market, pool), now=NOW)

    assert supply.expire_offers(now=NOW + 47 * HOUR) == 0
    assert supply.expire_offers(now=NOW + 48 * HOUR) == 1
    offer.refresh_from_db()
    assert offer.status == OfferStatus.EXPIRED


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"region": "CN-XX"}, "unknown_region", "region"),
        ({"region": "US-CA"}, "unknown_region", "region"),
        ({"jurisdiction": "ZZ"}, "unknown_jurisdiction", "jurisdiction"),
        ({"pue": Decimal("0.95")}, "pue_out_of_range", "pue"),
        ({"renewable_share": Decimal("1.2")}, "share_out_of_range", "renewable_share"),
    ],
)
def test_bad_sites_are_refused(
    seller: Principal, changes: dict[str, Any], code: str, field: str
) -> None:
    values: dict[str, Any] = {
        "name": "S",
        "country": "CN",
        "region": "CN-GS",
        "city": "Q",
        "jurisdiction": "CN",
        "pue": Decimal("1.2"),
        "renewable_share": Decimal("0.5"),
        "carbon_g_per_kwh": 500,
    }
    values.update(changes)

    with pytest.raises(DomainError) as refused:
        supply.create_site(principal=seller, request=SiteRequest(**values))

    assert (refused.value.code, refused.value.field) == (code, field)
    assert Site.objects.count() == 0


def test_buyers_do_not_list_capacity(buyer: User) -> None:
    with pytest.raises(Forbidden) as refused:
        supply.create_site(
            principal=acting(buyer),
            request=SiteRequest(
                name="S",
                country="CN",
                region="CN-GS",
                city="Q",
                jurisdiction="CN",
                pue=Decimal("1.2"),
                renewable_share=Decimal("0.5"),
                carbon_g_per_kwh=500,
            ),
        )

    assert refused.value.code == "not_a_provider"
    assert Site.objects.count() == 0


def test_the_catalog_and_markets_load_idempotently() -> None:
    from django.core.management import call_command

    call_command("loaddata", "catalog", "markets", verbosity=0)
    call_command("loaddata", "catalog", "markets", verbosity=0)

    devices = list(DeviceModel.objects.all())
    assert len(devices) >= 25
    assert all(d.source_url.startswith("https://") for d in devices)
    slugs = {d.slug for d in devices}
    for required in (
        "nvidia-h200-sxm",
        "nvidia-h100-sxm",
        "nvidia-h100-pcie",
        "nvidia-h20",
        "nvidia-a100-sxm-80gb",
        "nvidia-a800-sxm-80gb",
        "nvidia-l40s",
        "nvidia-l20",
        "nvidia-l4",
        "nvidia-geforce-rtx-4090",
        "nvidia-b200",
        "amd-instinct-mi300x",
        "amd-instinct-mi325x",
        "intel-gaudi-3-oam",
        "huawei-ascend-910b",
        "huawei-ascend-910c",
        "cambricon-mlu370-x8",
        "cambricon-mlu590",
    ):
        assert required in slugs
    assert {d.kind for d in devices} == {"gpu", "npu", "cpu"}
    h100 = DeviceModel.objects.get(slug="nvidia-h100-sxm")
    ascend = DeviceModel.objects.get(slug="huawei-ascend-910b")
    assert (h100.scu(), ascend.scu()) == (Decimal("0.9894"), Decimal("0.32"))
    assert set(Market.objects.values_list("slug", "currency")) == {("cny", "CNY"), ("usd", "USD")}
