"""Celery tasks: ids in, idempotent, each calling one service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketplace import health, services
from marketplace.services import leases


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
