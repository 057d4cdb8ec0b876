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

from marketplace.access import Principal
from marketplace.models import (
    Lease,
    Market,
    Notification,
    Organization,
    Pool,
    WebhookAttempt,
    WebhookEndpoint,
)
from marketplace.services import leases, notifications
from matching import services as matching
from tests.test_clearing import list_offer, place
from tests.test_market import HOUR, NOW, funded_buyer, h100, market, pool, seller, site

__all__ = ["funded_buyer", "h100", "market", "pool", "seller", "site"]  # fixtures, re-exported

pytestmark = pytest.mark.django_db

Call = tuple[str, bytes, dict[str, str]]


def recorder(statuses: list[int]) -> tuple[list[Call], notifications.Transport]:
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

    retry = notifications.deliver(notification_id=notification.pk, now=NOW, transport=transport)
    again = notifications.deliver(notification_id=notification.pk, now=NOW, transport=transport)

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

    retry = notifications.deliver(notification_id=notification.pk, now=NOW, transport=transport)
    assert retry == [(endpoint.pk, 1)]
    assert notifications.post(notification, endpoint, number=2, now=NOW, transport=transport)

    attempts = list(
        WebhookAttempt.objects.order_by("number").values_list("number", "status_code", "delivered")
    )
    assert attempts == [(1, 500, False), (2, 200, True)]
    assert [notifications.backoff(n) for n in (1, 2, 3)] == [30, 60, 120]


def test_lease_changes_notify(cleared: tuple[Lease, list[Callable[[], None]]]) -> None:
    lease, _ = cleared

    leases.mark_ready(lease=lease, actor="key:agent", now=NOW)
    leases.end_lease(lease=lease, how="cancelled", actor="user:buyer", now=NOW + HOUR)

    kinds = list(
        Notification.objects.exclude(kind="lease.scheduled")
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert kinds == ["lease.ready", "lease.ended", "lease.ended", "lease.settled", "lease.settled"]
