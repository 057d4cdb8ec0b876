"""Metering: usage events in, delivered unit-seconds out. Knows subjects only as opaque strings.

Heartbeats (type ``com.suanli.heartbeat``, data ``{"units_up": n}``, optionally ``"minutes": k``)
attest that ``n`` units were up during each of the ``k`` minutes (1 to 60, default 1) starting with
the minute of their ``time``, so a batching agent can send one heartbeat an hour. Delivered
unit-seconds of a subject are 60 × Σ over the distinct minutes some heartbeat covers of min(units,
the most units any heartbeat covering that minute reported): overlapping spans never count twice.
Counting only events up to a given ``id`` makes every settlement reproducible; an event that
arrives late is simply counted by the next settlement (an adjustment, never an edit).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.db import connection

from ledger.db import raw_cursor

HEARTBEAT = "com.suanli.heartbeat"
USAGE = "com.suanli.usage"
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
# The longest span one heartbeat may attest. The delivered-time queries look this far (less one
# minute) before a window's start and clamp to it, so they stay right whatever ``record`` stored.
MAX_HEARTBEAT_MINUTES = 60


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # (source, id) seen before: counted once, whatever it says now
    IN_THE_FUTURE = "in_the_future"  # (the last minute it attests) > 5 minutes ahead of now
    TOO_LATE = "too_late"  # before the open settlement period plus grace


@dataclass(frozen=True)
class Event:
    source: str
    event_id: str
    type: str
    subject: str
    time: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)


INSERT_SQL = """
INSERT INTO ledger_usageevent (source, event_id, type, subject, time, data, received_at)
SELECT s, i, t, j, tm, d::jsonb, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[])
    AS x(s, i, t, j, tm, d)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING source, event_id
"""


def _last_minute(event: Event) -> dt.datetime:
    """The start of the last minute a heartbeat attests (its own time for any other event)."""
    minutes = event.data.get("minutes", 1) if event.type == HEARTBEAT else 1
    span = min(minutes, MAX_HEARTBEAT_MINUTES) if isinstance(minutes, int) else 1
    return event.time + dt.timedelta(minutes=max(span, 1) - 1)


def record(events: Sequence[Event], *, now: dt.datetime, not_before: dt.datetime) -> list[Outcome]:
    """Store a batch; one outcome per event, in order. One statement; a replay is ``duplicate``."""
    outcomes: list[Outcome | None] = []
    fresh: list[Event] = []
    for e in events:
        if _last_minute(e) > now + FUTURE_TOLERANCE:  # a span may not vouch for minutes to come
            outcomes.append(Outcome.IN_THE_FUTURE)
        elif e.time < not_before:
            outcomes.append(Outcome.TOO_LATE)
        else:
            outcomes.append(None)
            fresh.append(e)
    stored: set[tuple[str, str]] = set()
    if fresh:
        with raw_cursor() as cursor:
            cursor.execute(
                INSERT_SQL,
                [
                    now,
                    [e.source for e in fresh],
                    [e.event_id for e in fresh],
                    [e.type for e in fresh],
                    [e.subject for e in fresh],
                    [e.time for e in fresh],
                    [json.dumps(e.data, sort_keys=True) for e in fresh],
                ],
            )
            stored = {(row[0], row[1]) for row in cursor.fetchall()}
    result: list[Outcome] = []
    seen: set[tuple[str, str]] = set()
    for e, outcome in zip(events, outcomes, strict=True):
        if outcome is not None:
            result.append(outcome)
            continue
        key = (e.source, e.event_id)
        # The first of a key in this batch is the one stored; a repeat within the batch is not.
        result.append(Outcome.ACCEPTED if key in stored and key not in seen else Outcome.DUPLICATE)
        seen.add(key)
    return result


@dataclass(frozen=True)
class Window:
    """What to count for one subject: its ``units`` (the most a minute can count) in
    ``[start, end)``."""

    subject: str
    units: int
    start: dt.datetime
    end: dt.datetime


# The one definition of delivered time, for one window or thousands (one statement either way).
# For each window: the distinct minutes inside it that a heartbeat attests (its ``time`` plus whole
# minutes, up to its span), each counted once at min(units, the most units reported for it);
# a window with no such minute is 0. The per-minute value is worked out inside the lateral
# subquery, so a window without heartbeats joins one row of NULL, which ``sum`` skips: outside it,
# ``least(NULL, units)`` would be ``units`` in PostgreSQL (it ignores NULLs) — a phantom minute.
# A heartbeat without ``units_up`` counts 0 (the API refuses one; this is the last line).
DELIVERED_SQL = """
SELECT w.n, coalesce(sum(m.up), 0) * 60
FROM unnest(%s::text[], %s::int[], %s::timestamptz[], %s::timestamptz[])
    WITH ORDINALITY AS w(subject, units, start, stop, n)
LEFT JOIN LATERAL (
    SELECT least(max(greatest(coalesce((e.data->>'units_up')::int, 0), 0)), w.units) AS up
    FROM ledger_usageevent e
    CROSS JOIN LATERAL generate_series(
        0, least(greatest(coalesce((e.data->>'minutes')::int, 1), 1), %s) - 1
    ) AS k
    WHERE e.subject = w.subject AND e.type = %s AND e.id <= %s
      AND e.time >= w.start - %s * interval '1 minute' AND e.time < w.stop
      AND e.time + k * interval '1 minute' >= w.start
      AND e.time + k * interval '1 minute' < w.stop
    GROUP BY date_trunc('minute', e.time + k * interval '1 minute')
) AS m ON true
GROUP BY w.n
"""


def delivered_many(windows: Sequence[Window], *, through_id: int) -> list[int]:
    """Unit-seconds delivered in each window (in order) by the heartbeats with id ≤
    ``through_id``: a minute counts when the moment a heartbeat attests for it (its ``time`` plus
    whole minutes) falls inside the window, once, at the most units any heartbeat reported for it,
    capped at the window's units. One statement; uses the (subject, type, id) index."""
    if not windows:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            DELIVERED_SQL,
            [
                [w.subject for w in windows],
                [w.units for w in windows],
                [w.start for w in windows],
                [w.end for w in windows],
                MAX_HEARTBEAT_MINUTES,
                HEARTBEAT,
                through_id,
                MAX_HEARTBEAT_MINUTES - 1,
            ],
        )
        by_position = {int(n): int(seconds) for n, seconds in cursor.fetchall()}
    return [by_position[i] for i in range(1, len(windows) + 1)]


def delivered_unit_seconds(
    subject: str, *, units: int, start: dt.datetime, end: dt.datetime, through_id: int
) -> int:
    """``delivered_many`` for one window."""
    [seconds] = delivered_many([Window(subject, units, start, end)], through_id=through_id)
    return seconds


def last_event_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM ledger_usageevent")
        row = cursor.fetchone()
    return int(row[0]) if row else 0
