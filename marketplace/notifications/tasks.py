"""Notifications' delivery: email and webhooks for one notification, failed webhooks retried with
backoff. Tasks take ids and are idempotent."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from marketplace.notifications import services


@shared_task(name="marketplace.tasks.deliver_notification")
def deliver_notification(notification_id: int) -> None:
    """Email and webhooks for one notification; failed webhooks are retried with backoff."""
    failed = services.deliver(notification_id=notification_id, now=timezone.now())
    for endpoint_id, number in failed:
        _schedule_retry(notification_id, endpoint_id, number)


@shared_task(name="marketplace.tasks.retry_webhook")
def retry_webhook(notification_id: int, endpoint_id: int, number: int) -> None:
    from marketplace.models import Notification, WebhookAttempt, WebhookEndpoint

    done = WebhookAttempt.objects.filter(notification_id=notification_id, endpoint_id=endpoint_id)
    if done.filter(delivered=True).exists() or done.filter(number=number).exists():
        return  # a redelivered task: this attempt has happened
    ok = services.post(
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
            (notification_id, endpoint_id, number + 1),
            countdown=services.backoff(number),
        )
