"""Ledger housekeeping on Celery beat: sealing (lag ≤ 5 s at a 1 s schedule) and hold expiry."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from ledger import services


@shared_task
def seal() -> int:
    total = 0
    while sealed := services.seal(now=timezone.now()):  # drain a backlog in bounded batches
        total += sealed
    return total


@shared_task
def void_expired_holds() -> int:
    total = 0
    while voided := services.void_expired_pendings(now=timezone.now()):
        total += voided
    return total
