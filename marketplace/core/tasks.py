"""The beat's own heartbeat (``/readyz`` checks that it is fresh)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from marketplace.core import health


@shared_task(name="marketplace.tasks.heartbeat")
def heartbeat() -> None:
    health.record_heartbeat(now=timezone.now())
