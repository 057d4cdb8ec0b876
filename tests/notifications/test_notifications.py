"""Lease notifications: written with the change, emailed once to owners, POSTed to webhooks signed,
retried with backoff, every attempt recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from marketplace.core.access import Principal
from marketplace.leases import services as leases_services
from marketplace.models import (
    Lease,
    Market,
    Notification,
    Organization,
    Pool,
    User,
    WebhookAttempt,
    WebhookEndpoint,
)
from marketplace.notifications import services as notifications_services
from matching import services as matching
from tests.fixtures.clearing import list_offer, place
from tests.fixtures.market import HOUR, NOW

pytestmark = pytest.mark.django_db

Call = tuple[str, bytes, dict[str, str]]


def recorder(statuses: list[int]) -> tuple[list[Call], notifications_services.Transport]:
    calls: list[Call] = []

    def transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        calls.append((url, body, headers))
        return statuses.pop(0)

    return calls, transport


@pytest.fixture
def cleared(
    market: Market,
    seller: Principal,
    pool: Pool,
    funded_buyer: Principal,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> tuple[Lease, list[Callable[[], None]]]:
    list_offer(seller, market, pool)
    place(funded_buyer, market)
    with django_capture_on_commit_callbacks() as callbacks:
        matching.clear_round(market=market, now=NOW)
    return Lease.objects.get(), callbacks


def test_a_round_tells_the_buyer_and_the_provider(
    cleared: tuple[Lease, list[Callable[[], None]]],
    buyer_org: Organization,
    provider_org: Organization,
) -> None:
    lease, callbacks = cleared

    sent = Notification.objects.order_by("organization_id")

    assert [(n.organization_id, n.kind) for n in sent] == sorted(
        [(buyer_org.pk, "lease.scheduled"), (provider_org.pk, "lease.scheduled")]
    )
    assert all(n.payload["leases"] == [str(lease.public_id)] for n in sent)
    assert len(callbacks) == 2  # one delivery task per notification, enqueued after commit


def test_delivery_emails_owners_once_and_posts_a_signed_webhook(
    cleared: tuple[Lease, list[Callable[[], None]]], buyer_org: Organization
) -> None:
    endpoint = WebhookEndpoint.objects.create(organization=buyer_org, url="https://hooks.test/x")
    notification = Notification.objects.get(organization=buyer_org)
    calls, transport = recorder([204])

    retry = notifications_services.deliver(
        notification_id=notification.pk, now=NOW, transport=transport
    )
    again = notifications_services.deliver(
        notification_id=notification.pk, now=NOW, transport=transport
    )

    assert (retry, again) == ([], [])
    assert [m.to for m in mail.outbox] == [["owner@buyer.example"]]
    ((url, body, headers),) = calls
    expected = hmac.new(endpoint.secret.encode(), body, hashlib.sha256).hexdigest()
    assert (url, headers["X-Suanli-Signature"], headers["X-Suanli-Event"]) == (
        "https://hooks.test/x",
        f"sha256={expected}",
        "lease.scheduled",
    )
    assert json.loads(body)["type"] == "lease.scheduled"
    attempt = WebhookAttempt.objects.get()
    assert (attempt.number, attempt.status_code, attempt.delivered) == (1, 204, True)


def test_a_failed_webhook_is_recorded_and_retried_with_backoff(
    cleared: tuple[Lease, list[Callable[[], None]]], buyer_org: Organization
) -> None:
    endpoint = WebhookEndpoint.objects.create(organization=buyer_org, url="https://hooks.test/x")
    notification = Notification.objects.get(organization=buyer_org)
    _calls, transport = recorder([500, 200])

    retry = notifications_services.deliver(
        notification_id=notification.pk, now=NOW, transport=transport
    )
    assert retry == [(endpoint.pk, 1)]
    assert notifications_services.post(
        notification, endpoint, number=2, now=NOW, transport=transport
    )

    attempts = list(
        WebhookAttempt.objects.order_by("number").values_list("number", "status_code", "delivered")
    )
    assert attempts == [(1, 500, False), (2, 200, True)]
    assert [notifications_services.backoff(n) for n in (1, 2, 3)] == [30, 60, 120]


def test_lease_changes_notify(cleared: tuple[Lease, list[Callable[[], None]]]) -> None:
    lease, _ = cleared

    leases_services.mark_ready(lease=lease, actor="key:agent", now=NOW)
    leases_services.end_lease(lease=lease, how="cancelled", actor="user:buyer", now=NOW + HOUR)

    kinds = list(
        Notification.objects.exclude(kind="lease.scheduled")
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert kinds == ["lease.ready", "lease.ended", "lease.ended", "lease.settled", "lease.settled"]


def test_owners_manage_webhooks_in_the_api(
    buyer: User, buyer_org: Organization, api_key_for: Callable[..., Any], logged_in: Any
) -> None:
    owner = logged_in(buyer)
    created = owner.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.test/in", "kinds": ["lease.ended"]},
        content_type="application/json",
        headers={"Idempotency-Key": "webhook-1", "X-Organization": str(buyer_org.public_id)},
    )
    assert created.status_code == 201
    body = created.json()
    endpoint = WebhookEndpoint.objects.get()
    assert (body["url"], body["kinds"], body["secret"]) == (
        "https://hooks.test/in",
        ["lease.ended"],
        endpoint.secret,
    )
    org = {"X-Organization": str(buyer_org.public_id)}
    assert "secret" not in owner.get("/api/v1/webhooks", headers=org).json()["data"][0]

    disabled = owner.post(f"/api/v1/webhooks/{endpoint.public_id}/disable", headers=org)

    assert (disabled.status_code, disabled.json()["active"]) == (200, False)
    assert not WebhookEndpoint.objects.get().wants("lease.ended")


def test_webhooks_need_https_and_an_owner(
    buyer: User, buyer_org: Organization, api_key_for: Callable[..., Any], logged_in: Any
) -> None:
    plain = logged_in(buyer).post(
        "/api/v1/webhooks",
        {"url": "http://hooks.test/in"},
        content_type="application/json",
        headers={"Idempotency-Key": "webhook-2", "X-Organization": str(buyer_org.public_id)},
    )
    key = api_key_for(buyer_org, "read", "trade")[1]
    by_key = APIClient()
    by_key.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    assert (plain.status_code, plain.json()["error"]["code"]) == (400, "webhook_not_https")
    denied = by_key.post(
        "/api/v1/webhooks",
        {"url": "https://x.test"},
        format="json",
        headers={"Idempotency-Key": "webhook-3"},
    )
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "owner_required")
    assert not WebhookEndpoint.objects.exists()


def test_bad_webhook_requests_change_nothing(
    buyer: User,
    buyer_org: Organization,
    provider_org: Organization,
    logged_in: Any,
) -> None:
    theirs = WebhookEndpoint.objects.create(organization=provider_org, url="https://p.test/in")
    owner = logged_in(buyer)
    org = {"X-Organization": str(buyer_org.public_id)}

    unknown = owner.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.test/in", "kinds": ["lease.exploded"]},
        content_type="application/json",
        headers={**org, "Idempotency-Key": "webhook-4"},
    )
    other = owner.post(f"/api/v1/webhooks/{theirs.public_id}/disable", headers=org)

    assert (unknown.status_code, unknown.json()["error"]["field"]) == (400, "kinds.0")
    assert other.status_code == 404
    assert list(WebhookEndpoint.objects.values_list("organization_id", "active")) == [
        (provider_org.pk, True)
    ]
