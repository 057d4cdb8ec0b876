"""Liveness and readiness: is the process up; are PostgreSQL, Redis and Celery beat alive."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from marketplace.core import health

HEARTBEAT_KEY = "health:celery-heartbeat"


def record_heartbeat(*, now: dt.datetime) -> None:
    """Written by the periodic task: proves beat scheduled it and a worker ran it."""
    cache.set(HEARTBEAT_KEY, now.isoformat(), timeout=None)


def readiness(*, now: dt.datetime) -> dict[str, str]:
    """One line per dependency: ``ok`` or what is wrong with it."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure, never raise from a probe
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    try:
        last = cache.get(HEARTBEAT_KEY)
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"unavailable: {type(exc).__name__}"
        checks["celery_beat"] = "unknown: Redis is unavailable"
        return checks
    if last is None:
        checks["celery_beat"] = "no heartbeat yet"
    else:
        age = (now - dt.datetime.fromisoformat(last)).total_seconds()
        fresh = age <= settings.HEARTBEAT_MAX_AGE_SECONDS
        checks["celery_beat"] = "ok" if fresh else f"stale: last heartbeat {age:.0f}s ago"
    return checks


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = health.readiness(now=timezone.now())
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
