"""Celery tasks of the matcher: each calls one service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from matching import services


@shared_task
def clear_due_rounds() -> int:
    """Clear every market's current slot; a slot already cleared is skipped. Returns rounds run."""
    return sum(1 for outcome in services.clear_due_rounds(now=timezone.now()) if outcome.created)
