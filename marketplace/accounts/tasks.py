"""Accounts' periodic work: forgetting idempotency records past their time."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketplace.accounts import services


@shared_task(name="marketplace.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return services.purge_idempotency_records(now=timezone.now())
