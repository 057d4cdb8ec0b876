"""Telling organizations about their leases: email to owners and signed webhooks.

``notify`` writes the notification in the caller's transaction and enqueues its delivery after
commit (a lost enqueue is caught by ``deliver_pending``, run by beat). ``deliver`` emails the
organization's owners once and POSTs to each subscribed endpoint; a failed POST is retried with
exponential backoff (``WEBHOOK_RETRY_SECONDS`` × 2ⁿ, at most ``WEBHOOK_MAX_ATTEMPTS``), and every
attempt is recorded. Webhook requests carry ``X-Suanli-Event``, ``X-Suanli-Delivery`` (the
notification id) and ``X-Suanli-Signature: sha256=<hex>`` — HMAC-SHA256 of the raw body under
the endpoint's secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils.translation import gettext as _

from marketplace.core.access import Principal
from marketplace.core.errors import InvalidInput
from marketplace.models import Membership, NotificationKind, Organization, Role
from marketplace.models.leases import Lease
from marketplace.models.notifications import Notification, WebhookAttempt, WebhookEndpoint

# (url, body, headers, timeout) → HTTP status; raises OSError on a transport failure.
Transport = Callable[[str, bytes, dict[str, str], float], int]


def _urllib_transport(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def add_endpoint(*, principal: Principal, url: str, kinds: Iterable[str]) -> WebhookEndpoint:
    """An owner subscribes a URL (https; http only for local development) to notification kinds
    (none: every kind). The signing secret is returned once, with the endpoint."""
    principal.require_owner()
    scheme = url.split("://", 1)[0].lower()
    if scheme != "https" and not (settings.DEBUG and scheme == "http"):
        raise InvalidInput(_("Webhook URLs must use https."), code="webhook_not_https", field="url")
    chosen = sorted(set(kinds))
    unknown = [k for k in chosen if k not in NotificationKind.values]
    if unknown:
        raise InvalidInput(
            _("Unknown notification kinds: %(kinds)s.") % {"kinds": ", ".join(unknown)},
            code="unknown_notification_kind",
            field="kinds",
        )
    return WebhookEndpoint.objects.create(
        organization=principal.organization, url=url, kinds=chosen
    )


def disable_endpoint(*, principal: Principal, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Stop delivering to an endpoint (kept, with its attempts, for the record)."""
    principal.require_owner()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
    endpoint.refresh_from_db()
    return endpoint


def notify(
    *,
    organizations: Iterable[Organization],
    kind: str,
    now: dt.datetime,
    lease: Lease | None = None,
    payload: dict[str, Any] | None = None,
) -> list[Notification]:
    """Record a notification per organization and deliver each after commit."""
    created = [
        Notification.objects.create(
            organization=org, kind=kind, lease=lease, payload=payload or {}, created_at=now
        )
        for org in {o.pk: o for o in organizations}.values()
    ]
    from marketplace.notifications import tasks

    for notification in created:
        transaction.on_commit(_enqueue(tasks.deliver_notification.delay, notification.pk))
    return created


def _enqueue(send: Callable[[int], Any], pk: int) -> Callable[[], None]:
    def enqueue() -> None:
        send(pk)

    return enqueue


def body_of(notification: Notification) -> bytes:
    return json.dumps(
        {
            "id": notification.pk,
            "type": notification.kind,
            "created_at": notification.created_at.isoformat(),
            "lease": str(notification.lease.public_id) if notification.lease else None,
            "data": notification.payload,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    *, notification_id: int, now: dt.datetime, transport: Transport | None = None
) -> list[tuple[int, int]]:
    """Email (once) and POST to every subscribed endpoint not yet served; returns the
    (endpoint id, attempt number) pairs that failed and should be retried."""
    notification = Notification.objects.select_related("organization", "lease").get(
        pk=notification_id
    )
    if notification.emailed_at is None:
        _email(notification)
        Notification.objects.filter(pk=notification.pk, emailed_at__isnull=True).update(
            emailed_at=now
        )
    retry = []
    for endpoint in WebhookEndpoint.objects.filter(organization=notification.organization):
        if not endpoint.wants(notification.kind):
            continue
        done = WebhookAttempt.objects.filter(notification=notification, endpoint=endpoint)
        if done.filter(delivered=True).exists():
            continue
        number = done.count() + 1
        if not post(notification, endpoint, number=number, now=now, transport=transport):
            retry.append((endpoint.pk, number))
    return retry


def post(
    notification: Notification,
    endpoint: WebhookEndpoint,
    *,
    number: int,
    now: dt.datetime,
    transport: Transport | None = None,
) -> bool:
    """One attempt, recorded whatever happens; True if the endpoint answered 2xx."""
    body = body_of(notification)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "SuanliExchange-Webhooks/1",
        "X-Suanli-Event": notification.kind,
        "X-Suanli-Delivery": str(notification.pk),
        "X-Suanli-Signature": signature(endpoint.secret, body),
    }
    status: int | None = None
    error = ""
    try:
        status = (transport or _urllib_transport)(endpoint.url, body, headers, 5.0)
    except OSError as failure:
        error = str(failure)[:300]
    delivered = status is not None and 200 <= status < 300
    WebhookAttempt.objects.get_or_create(
        notification=notification,
        endpoint=endpoint,
        number=number,
        defaults={"status_code": status, "error": error, "delivered": delivered, "at": now},
    )
    return delivered


def backoff(number: int) -> int:
    """Seconds before attempt ``number + 1``."""
    return int(settings.WEBHOOK_RETRY_SECONDS * 2 ** (number - 1))


def _email(notification: Notification) -> None:
    owners = list(
        Membership.objects.filter(
            organization=notification.organization, role=Role.OWNER
        ).values_list("user__email", flat=True)
    )
    if not owners:
        return
    subject = _("Suanli Exchange: %(kind)s") % {"kind": notification.get_kind_display()}
    lines = [str(notification.get_kind_display())]
    if notification.lease is not None:
        lines.append(_("Lease %(id)s") % {"id": notification.lease.public_id})
    lines += [f"{key}: {value}" for key, value in sorted(notification.payload.items())]
    send_mail(subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, owners)
