"""Trading's periodic work: orders and offers past their time expire."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketplace.trading import orders, supply


@shared_task(name="marketplace.tasks.expire_orders_and_offers")
def expire_orders_and_offers() -> int:
    now = timezone.now()
    return orders.expire_orders(now=now) + supply.expire_offers(now=now)
