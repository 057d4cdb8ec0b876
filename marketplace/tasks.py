"""Celery tasks: ids in, idempotent, each calling one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from marketplace import health, services
from marketplace.services import leases, notifications


@shared_task
def heartbeat() -> None:
    health.record_heartbeat(now=timezone.now())


@shared_task
def purge_idempotency_records() -> int:
    return services.purge_idempotency_records(now=timezone.now())


@shared_task
def expire_orders_and_offers() -> int:
    now = timezone.now()
    return services.expire_orders(now=now) + services.expire_offers(now=now)


@shared_task
def settle_leases() -> int:
    return leases.settle_due(now=timezone.now())


@shared_task
def end_due_leases() -> int:
    return leases.end_due_leases(now=timezone.now())


@shared_task
def deliver_notification(notification_id: int) -> None:
    """Email and webhooks for one notification; failed webhooks are retried with backoff."""
    failed = notifications.deliver(notification_id=notification_id, now=timezone.now())
    for endpoint_id, number in failed:
        _schedule_retry(notification_id, endpoint_id, number)


@shared_task
def retry_webhook(notification_id: int, endpoint_id: int, number: int) -> None:
    from marketplace.models import Notification, WebhookAttempt, WebhookEndpoint

    done = WebhookAttempt.objects.filter(notification_id=notification_id, endpoint_id=endpoint_id)
    if done.filter(delivered=True).exists() or done.filter(number=number).exists():
        return  # a redelivered task: this attempt has happened
    ok = notifications.post(
        Notification.objects.select_related("lease").get(pk=notification_id),
        WebhookEndpoint.objects.get(pk=endpoint_id),
        number=number,
        now=timezone.now(),
    )
    if not ok:
        _schedule_retry(notification_id, endpoint_id, number)


def _schedule_retry(notification_id: int, endpoint_id: int, number: int) -> None:
    if number < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_webhook.apply_async(
            (notification_id, endpoint_id, number + 1), countdown=notifications.backoff(number)
        )
