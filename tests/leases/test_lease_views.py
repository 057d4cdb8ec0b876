"""Leases as buyers and providers see them: live summaries through the API and the portal (with
the htmx partials), a buyer's early end, a provider's reclaim notice, tenant isolation, and
monthly statements in JSON and CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ledger.models import Transfer
from marketplace.leases import services as leases_services
from marketplace.leases import statements
from marketplace.models import (
    ApiKey,
    Lease,
    LeaseEvent,
    LeaseStatus,
    Organization,
    Settlement,
    User,
)
from tests.factories import OrganizationFactory
from tests.fixtures.clearing import MINUTE, balance, heartbeats
from tests.fixtures.http import bearer, error_of
from tests.fixtures.market import HOUR, NOW

pytestmark = pytest.mark.django_db
KeyMaker = Callable[..., tuple[ApiKey, str]]
Login = Callable[[User], Client]


def at(moment: dt.datetime) -> Any:
    """The clock stopped at ``moment`` (the views read ``timezone.now()``)."""
    return time_machine.travel(moment, tick=False)


def client_for(organization: Organization, api_key_for: KeyMaker, *scopes: str) -> APIClient:
    _key, secret = api_key_for(organization, *(scopes or ("read", "trade")))
    return bearer(APIClient(), secret)


@pytest.fixture
def stranger_org(db: None) -> Organization:
    return OrganizationFactory.create(
        owner__email="owner@third.example", legal_name="Third Models", buyer=True
    )


@pytest.fixture
def frozen() -> Iterator[None]:
    with at(NOW + 90 * MINUTE):
        yield


def state(lease: Lease) -> tuple[Any, ...]:
    """Everything a denied lease action must leave as it was."""
    fresh = Lease.objects.get(pk=lease.pk)
    return (
        fresh.status,
        fresh.closed_at,
        fresh.reclaim_at,
        LeaseEvent.objects.filter(lease=lease).count(),
        Settlement.objects.filter(lease=lease).count(),
        Transfer.objects.count(),
    )


def settled_then_running(lease: Lease) -> None:
    """An hour of full delivery settled at NOW + 1 h, then 30 more minutes not yet settled."""
    heartbeats(lease, range(60))
    leases_services.settle(lease=lease, now=NOW + HOUR)
    heartbeats(lease, range(60, 90), source="agent-2")


# --------------------------------------------------------------------------- API: reading


def test_each_side_lists_the_lease_from_its_side(
    lease: Lease, buyer_api: APIClient, provider_api: APIClient
) -> None:
    bought = buyer_api.get("/api/v1/leases")
    provided = provider_api.get("/api/v1/leases")

    assert (bought.status_code, provided.status_code) == (200, 200)
    assert bought.json()["next"] is None
    [item] = bought.json()["data"]
    assert item == {
        "id": str(lease.public_id),
        "role": "buyer",
        "market": "cny",
        "round": lease.round.number,
        "order": str(lease.order.public_id),
        "offer": None,
        "pool": None,
        "device_model": "nvidia-h100-sxm",
        "site": {"name": "Qingyang 1", "country": "CN", "region": "CN-GS", "city": "Qingyang"},
        "units": 4,
        "scu_per_unit": "7.9152",
        "price": "80.000000",
        "price_per_scu_hour": "10.1071",
        "duration_hours": 10,
        "starts_at": "2026-11-23T12:00:00Z",
        "ends_at": "2026-11-23T22:00:00Z",
        "cost": {"amount_minor": 320_000, "currency": "CNY"},
        "buyer_fee": {"amount_minor": 3_200, "currency": "CNY"},
        "status": "scheduled",
        "reclaim_at": None,
        "closed_at": None,
        "close_reason": "",
        "created_at": item["created_at"],
    }
    [seen] = provided.json()["data"]
    assert (seen["role"], seen["order"], seen["offer"], seen["pool"]) == (
        "provider",
        None,
        str(lease.offer.public_id),
        str(lease.pool.public_id),
    )


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("role=buyer", 1),
        ("role=provider", 0),
        ("status=scheduled", 1),
        ("status=active", 0),
        ("role=buyer&status=scheduled", 1),
    ],
)
def test_leases_filter_by_side_and_status(
    lease: Lease, buyer_api: APIClient, query: str, count: int
) -> None:
    response = buyer_api.get(f"/api/v1/leases?{query}")

    assert response.status_code == 200
    assert len(response.json()["data"]) == count


def test_an_unknown_filter_value_is_400(lease: Lease, buyer_api: APIClient) -> None:
    response = buyer_api.get("/api/v1/leases?role=broker")

    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["field"]) == ("invalid_choice", "role")


def test_lease_detail_has_a_live_summary(lease: Lease, buyer_api: APIClient, frozen: None) -> None:
    settled_then_running(lease)

    response = buyer_api.get(f"/api/v1/leases/{lease.public_id}")

    assert response.status_code == 200
    body = response.json()
    # 90 minutes × 4 units all delivered; 4 unit-hours settled (32,000), 2 more estimated.
    assert body["summary"] == {
        "as_of": "2026-11-23T13:30:00Z",
        "status": "scheduled",
        "currency": "CNY",
        "elapsed_seconds": 5_400,
        "delivered_unit_seconds": 21_600,
        "unit_hours_delivered": "6.00",
        "availability": "1.000000",
        "charged_minor": 32_000,
        "buyer_fees_minor": 320,
        "platform_fees_minor": 960,
        "sla_credits_minor": 0,
        "refunded_minor": 0,
        "unsettled_estimate_minor": 16_000,
        "cost_so_far_minor": 48_000,
        "settlements": 1,
        "next_settlement_at": "2026-11-23T14:00:00Z",
    }
    assert body["settlements"] == [
        {
            "number": 1,
            "at": "2026-11-23T13:00:00Z",
            "delivered_unit_seconds": 14_400,
            "charge_minor": 32_000,
            "buyer_fee_minor": 320,
            "platform_fee_minor": 960,
            "sla_credit_minor": 0,
            "refund_minor": 0,
            "availability": None,
            "final": False,
        }
    ]
    assert body["events"] == []


def test_a_lease_not_started_has_no_availability_yet(lease: Lease, buyer_api: APIClient) -> None:
    with at(NOW - MINUTE):
        summary = buyer_api.get(f"/api/v1/leases/{lease.public_id}").json()["summary"]

    assert (summary["elapsed_seconds"], summary["availability"], summary["cost_so_far_minor"]) == (
        0,
        None,
        0,
    )
    assert summary["next_settlement_at"] == "2026-11-23T13:00:00Z"


# --------------------------------------------------------------------------- API: isolation


def test_another_organizations_lease_is_not_found_and_nothing_changes(
    lease: Lease, stranger_org: Organization, api_key_for: KeyMaker, frozen: None
) -> None:
    heartbeats(lease, range(60))
    stranger = client_for(stranger_org, api_key_for)
    before = state(lease)

    responses = [
        stranger.get(f"/api/v1/leases/{lease.public_id}"),
        stranger.post(f"/api/v1/leases/{lease.public_id}/end"),
        stranger.post(
            f"/api/v1/leases/{lease.public_id}/reclaim",
            {"at": "2026-11-24T12:00:00Z"},
            format="json",
        ),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert {error_of(r)["code"] for r in responses} == {"not_found"}
    assert stranger.get("/api/v1/leases").json()["data"] == []
    assert state(lease) == before


# --------------------------------------------------------------------------- API: early end


def test_a_buyer_ending_early_pays_only_for_what_was_delivered(
    lease: Lease,
    buyer_org: Organization,
    provider_org: Organization,
    api_key_for: KeyMaker,
) -> None:
    heartbeats(lease, range(60))  # one hour of 4 units, then the buyer stops
    api_key, secret = api_key_for(buyer_org, "read", "trade")

    with at(NOW + HOUR):
        response = bearer(APIClient(), secret).post(f"/api/v1/leases/{lease.public_id}/end")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["closed_at"], body["close_reason"]) == (
        "cancelled",
        "2026-11-23T13:00:00Z",
        "cancelled",
    )
    final = Settlement.objects.get(lease=lease)
    # 4 unit-hours at 80.00 = 32,000; buyer fee 3,200 × 4/40 = 320; the rest comes back.
    assert (final.final, final.charge, final.buyer_fee, final.platform_fee, final.refund) == (
        True,
        32_000,
        320,
        960,
        323_200 - 32_000 - 320,
    )
    assert body["summary"]["refunded_minor"] == 290_880
    assert body["summary"]["next_settlement_at"] is None
    assert Lease.objects.get(pk=lease.pk).closed_by == f"key:{api_key.prefix}"
    assert balance(f"org:{buyer_org.public_id}", "wallet") == 1_000_000 - 32_000 - 320
    assert balance(f"org:{provider_org.public_id}", "provider_payable") == 32_000 - 960


def test_only_the_buyer_with_trade_scope_may_end_a_lease(
    lease: Lease,
    buyer_org: Organization,
    provider_api: APIClient,
    api_key_for: KeyMaker,
    frozen: None,
) -> None:
    reader = client_for(buyer_org, api_key_for, "read")
    before = state(lease)

    by_provider = provider_api.post(f"/api/v1/leases/{lease.public_id}/end")
    by_reader = reader.post(f"/api/v1/leases/{lease.public_id}/end")

    assert (by_provider.status_code, error_of(by_provider)["code"]) == (403, "not_lease_buyer")
    assert (by_reader.status_code, error_of(by_reader)["code"]) == (403, "insufficient_scope")
    assert state(lease) == before


# --------------------------------------------------------------------------- API: reclaim


def test_a_reclaim_with_too_little_notice_is_403_and_changes_nothing(
    lease: Lease, provider_api: APIClient, buyer_api: APIClient
) -> None:
    before = state(lease)

    with at(NOW + HOUR):
        short = provider_api.post(
            f"/api/v1/leases/{lease.public_id}/reclaim",
            {"at": "2026-11-23T13:30:00Z"},  # 30 minutes of notice; an hour is needed
            format="json",
        )
        by_buyer = buyer_api.post(
            f"/api/v1/leases/{lease.public_id}/reclaim",
            {"at": "2026-11-23T18:00:00Z"},
            format="json",
        )

    assert short.status_code == 403
    assert error_of(short) == {
        "code": "reclaim_notice_too_short",
        "message": "A reclaim needs at least 1 hours of notice.",
        "field": "at",
    }
    assert (by_buyer.status_code, error_of(by_buyer)["code"]) == (403, "not_lease_provider")
    assert state(lease) == before


def test_a_provider_gives_reclaim_notice(lease: Lease, provider_api: APIClient) -> None:
    with at(NOW + HOUR):
        response = provider_api.post(
            f"/api/v1/leases/{lease.public_id}/reclaim",
            {"at": "2026-11-23T18:00:00Z"},
            format="json",
        )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reclaim_at"], body["role"]) == (
        "scheduled",
        "2026-11-23T18:00:00Z",
        "provider",
    )
    assert [(e["kind"], e["reason"]) for e in body["events"]] == [
        ("reclaim_notice", "2026-11-23T18:00:00+00:00")
    ]
    assert Lease.objects.get(pk=lease.pk).reclaim_at == NOW + 6 * HOUR


def test_a_reclaim_without_a_time_is_400(lease: Lease, provider_api: APIClient) -> None:
    before = state(lease)

    response = provider_api.post(f"/api/v1/leases/{lease.public_id}/reclaim", {}, format="json")

    assert (response.status_code, error_of(response)["field"]) == (400, "at")
    assert state(lease) == before


# --------------------------------------------------------------------------- statements


@pytest.fixture
def month_of_settlements(lease: Lease) -> Lease:
    """Settled at NOW + 1 h (4 unit-hours), then 15 more minutes delivered and the buyer ends
    it at NOW + 90 min: availability 18,000 ÷ 21,600 < 99.5%, so 10% of the charges back."""
    heartbeats(lease, range(60))
    leases_services.settle(lease=lease, now=NOW + HOUR)
    heartbeats(lease, range(60, 75), source="agent-2")
    leases_services.end_lease(
        lease=lease, how="cancelled", actor="user:buyer", now=NOW + 90 * MINUTE
    )
    return lease


def test_the_buyers_statement_totals_to_the_minor_unit(
    month_of_settlements: Lease, buyer_api: APIClient, buyer_org: Organization
) -> None:
    response = buyer_api.get("/api/v1/statements/2026-11?currency=CNY")

    assert response.status_code == 200
    body = response.json()
    lease_id = str(month_of_settlements.public_id)
    assert {k: body[k] for k in ("organization", "month", "currency")} == {
        "organization": str(buyer_org.public_id),
        "month": "2026-11",
        "currency": "CNY",
    }
    assert (body["period_start"], body["period_end"]) == (
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
    )
    assert body["buyer"]["lines"] == [
        {
            "settled_at": "2026-11-23T13:00:00Z",
            "lease": lease_id,
            "settlement": 1,
            "final": False,
            "charge_minor": 32_000,
            "buyer_fee_minor": 320,
            "sla_credit_minor": 0,
            "refund_minor": 0,
            "net_minor": 32_320,
        },
        {
            "settled_at": "2026-11-23T13:30:00Z",
            "lease": lease_id,
            "settlement": 2,
            "final": True,
            "charge_minor": 8_000,  # 1 unit-hour
            "buyer_fee_minor": 80,
            "sla_credit_minor": 4_000,  # 10% of 40,000
            "refund_minor": 323_200 - 40_000 - 400,
            "net_minor": 4_080,
        },
    ]
    assert body["buyer"]["totals"] == {
        "charge_minor": 40_000,
        "buyer_fee_minor": 400,
        "sla_credit_minor": 4_000,
        "refund_minor": 282_800,
        "net_minor": 36_400,
    }
    assert body["provider"] == {
        "lines": [],
        "totals": {
            "charge_minor": 0,
            "platform_fee_minor": 0,
            "sla_credit_minor": 0,
            "net_minor": 0,
        },
    }


def test_the_providers_statement_nets_fees_and_credits(
    month_of_settlements: Lease, provider_api: APIClient
) -> None:
    body = provider_api.get("/api/v1/statements/2026-11").json()  # the first market's currency

    assert body["currency"] == "CNY"
    assert [
        (line["settlement"], line["charge_minor"], line["platform_fee_minor"], line["net_minor"])
        for line in body["provider"]["lines"]
    ] == [(1, 32_000, 960, 31_040), (2, 8_000, 240, 3_760)]
    assert body["provider"]["totals"] == {
        "charge_minor": 40_000,
        "platform_fee_minor": 1_200,
        "sla_credit_minor": 4_000,
        "net_minor": 34_800,
    }
    assert body["buyer"]["lines"] == []


def test_the_statement_as_csv(month_of_settlements: Lease, provider_api: APIClient) -> None:
    response = provider_api.get("/api/v1/statements/2026-11.csv?currency=CNY")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == ('attachment; filename="statement-2026-11-CNY.csv"')
    lease_id = month_of_settlements.public_id
    assert response.content.decode().splitlines() == [
        "line,role,settled_at,lease,settlement,final,charge_minor,fee_minor,sla_credit_minor,"
        "refund_minor,net_minor,currency",
        f"settlement,provider,2026-11-23T13:00:00+00:00,{lease_id},1,false,32000,960,0,0,31040,CNY",
        f"settlement,provider,2026-11-23T13:30:00+00:00,{lease_id},2,true,8000,240,4000,0,3760,CNY",
        "total,buyer,,,,,0,0,0,0,0,CNY",
        "total,provider,,,,,40000,1200,4000,0,34800,CNY",
    ]


def test_another_month_is_empty_and_bad_input_is_400(
    month_of_settlements: Lease, buyer_api: APIClient
) -> None:
    december = buyer_api.get("/api/v1/statements/2026-12").json()
    bad_month = buyer_api.get("/api/v1/statements/2026-13")
    bad_currency = buyer_api.get("/api/v1/statements/2026-11?currency=EUR")

    assert (december["buyer"]["lines"], december["buyer"]["totals"]["net_minor"]) == ([], 0)
    assert (bad_month.status_code, error_of(bad_month)["code"]) == (400, "invalid_month")
    assert (bad_currency.status_code, error_of(bad_currency)["code"]) == (
        400,
        "unknown_currency",
    )


def test_statements_are_per_organization(
    month_of_settlements: Lease, stranger_org: Organization, api_key_for: KeyMaker
) -> None:
    body = client_for(stranger_org, api_key_for, "read").get("/api/v1/statements/2026-11").json()

    assert (body["buyer"]["lines"], body["provider"]["lines"]) == ([], [])


def test_month_bounds() -> None:
    assert statements.month_bounds("2026-12") == (
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
    )
    assert [statements.month_bounds(m) for m in ("2026-00", "2026-13", "26-01", "9999-12")] == [
        None,
        None,
        None,
        None,
    ]


# --------------------------------------------------------------------------- the portal


def test_the_buyer_sees_its_leases_live(
    lease: Lease, buyer: User, logged_in: Login, frozen: None
) -> None:
    settled_then_running(lease)
    client = logged_in(buyer)

    page = client.get(reverse("leases"))
    rows = client.get(reverse("leases"), HTTP_HX_REQUEST="true")

    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-lease="{lease.public_id}"' in html
    assert 'hx-trigger="every 5s"' in html
    assert "480.00 CNY" in html  # cost so far: 320.00 settled + 160.00 estimated
    assert rows.status_code == 200
    partial = rows.content.decode()
    assert partial.lstrip().startswith('<section id="lease-rows"')
    assert "<html" not in partial
    assert "480.00 CNY" in partial


def test_the_lease_page_and_its_live_partial(
    lease: Lease, buyer: User, logged_in: Login, frozen: None
) -> None:
    settled_then_running(lease)
    client = logged_in(buyer)
    url = reverse("lease", args=[lease.public_id])

    page = client.get(url)
    live = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="lease-live")

    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("lease-end", args=[lease.public_id]) in html
    assert reverse("lease-reclaim", args=[lease.public_id]) not in html
    assert live.status_code == 200
    partial = live.content.decode()
    assert partial.lstrip().startswith('<section id="lease-live"')
    assert "<html" not in partial
    for testid, text in [
        ("availability", "100.00%"),
        ("unit-hours", "6.00"),
        ("charged", "320.00 CNY"),
        ("estimate", "160.00 CNY"),
        ("next-settlement", "2026-11-23 14:00"),
    ]:
        assert f'data-testid="{testid}">{text}' in partial, testid


def test_the_provider_sees_the_reclaim_form_not_the_end_button(
    lease: Lease, provider: User, logged_in: Login, frozen: None
) -> None:
    client = logged_in(provider)

    listed = client.get(reverse("leases"))
    page = client.get(reverse("lease", args=[lease.public_id]))

    assert listed.status_code == 200
    assert f'data-lease="{lease.public_id}"' in listed.content.decode()
    html = page.content.decode()
    assert page.status_code == 200
    assert reverse("lease-reclaim", args=[lease.public_id]) in html
    assert reverse("lease-end", args=[lease.public_id]) not in html


def test_a_buyer_ends_a_lease_through_the_portal(
    lease: Lease, buyer: User, buyer_org: Organization, logged_in: Login
) -> None:
    heartbeats(lease, range(30))  # half an hour delivered
    client = logged_in(buyer)

    with at(NOW + 30 * MINUTE):
        response = client.post(reverse("lease-end", args=[lease.public_id]))

    assert response.status_code == 302
    assert response["Location"] == reverse("lease", args=[lease.public_id])
    ended = Lease.objects.get(pk=lease.pk)
    assert (ended.status, ended.closed_at, ended.closed_by) == (
        LeaseStatus.CANCELLED,
        NOW + 30 * MINUTE,
        f"user:{buyer.pk}",
    )
    final = Settlement.objects.get(lease=lease)
    # 2 unit-hours = 16,000 and a buyer fee share of 160; everything else is refunded.
    assert (final.charge, final.buyer_fee, final.refund) == (16_000, 160, 323_200 - 16_160)
    assert balance(f"org:{buyer_org.public_id}", "wallet") == 1_000_000 - 16_160
    page = client.get(response["Location"]).content.decode()
    assert "(Ended early by the buyer)" in page  # the reason in words, not its code
    assert "100.00%" in page  # the final settlement's availability as a percentage


def test_a_short_reclaim_through_the_portal_shows_the_error_inline(
    lease: Lease, provider: User, logged_in: Login
) -> None:
    client = logged_in(provider)
    before = state(lease)

    with at(NOW):
        response = client.post(
            reverse("lease-reclaim", args=[lease.public_id]), {"at": "2026-11-23T12:30"}
        )

    assert response.status_code == 400
    assert "A reclaim needs at least 1 hours of notice." in response.content.decode()
    assert state(lease) == before


def test_the_portal_hides_other_organizations_leases(
    lease: Lease, stranger_org: Organization, logged_in: Login
) -> None:
    client = logged_in(User.objects.get(email="owner@third.example"))
    before = state(lease)

    page = client.get(reverse("lease", args=[lease.public_id]))
    end = client.post(reverse("lease-end", args=[lease.public_id]))
    listed = client.get(reverse("leases"))

    assert (page.status_code, end.status_code) == (404, 404)
    assert str(lease.public_id) not in listed.content.decode()
    assert state(lease) == before


def test_the_regulator_reads_every_lease_and_changes_none(
    lease: Lease, regulator: User, logged_in: Login, frozen: None
) -> None:
    client = logged_in(regulator)

    listed = client.get(reverse("leases"))
    page = client.get(reverse("lease", args=[lease.public_id]))

    assert (listed.status_code, page.status_code) == (200, 200)
    assert "East Models" in listed.content.decode()
    assert "West Compute" in listed.content.decode()
    html = page.content.decode()
    assert reverse("lease-end", args=[lease.public_id]) not in html
    assert reverse("lease-reclaim", args=[lease.public_id]) not in html


def test_the_statement_page_and_its_csv(
    month_of_settlements: Lease, buyer: User, logged_in: Login
) -> None:
    client = logged_in(buyer)

    page = client.get(reverse("statement"), {"month": "2026-11", "currency": "CNY"})
    download = client.get(reverse("statement-csv", args=["2026-11"]), {"currency": "CNY"})

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="total-buyer"' in html
    for amount in ("400.00 CNY", "4.00 CNY", "40.00 CNY", "2828.00 CNY", "364.00 CNY"):
        assert amount in html, amount
    assert reverse("statement-csv", args=["2026-11"]) + "?currency=CNY" in html
    assert download.status_code == 200
    assert download.content.decode().splitlines()[-2:] == [
        "total,buyer,,,,,40000,400,4000,282800,36400,CNY",
        "total,provider,,,,,0,0,0,0,0,CNY",
    ]


def test_a_bad_statement_month_is_a_form_error(buyer: User, logged_in: Login) -> None:
    response = logged_in(buyer).get(reverse("statement"), {"month": "2026-13"})

    assert response.status_code == 400
    assert "Give the month as yyyy-mm." in response.content.decode()
