"""Leases' periodic work: settle live leases, end those whose time is up."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketplace.leases import services


@shared_task(name="marketplace.tasks.settle_leases")
def settle_leases() -> int:
    return services.settle_due(now=timezone.now())


@shared_task(name="marketplace.tasks.end_due_leases")
def end_due_leases() -> int:
    return services.end_due_leases(now=timezone.now())
