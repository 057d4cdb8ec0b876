"""Delivered time has one definition (``ledger.metering.delivered_many``): one lease's count and a
batch's agree, case by case, with the rule "a minute counts once, at the most units reported for
it, capped at the lease's units" — and a window without heartbeats counts nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from ledger import metering

pytestmark = pytest.mark.django_db

T = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
UNITS = 4


def beat(subject: str, at: dt.datetime, *, units: int | None = UNITS, minutes: int = 1) -> None:
    data: dict[str, int] = {} if units is None else {"units_up": units}
    if minutes != 1:
        data["minutes"] = minutes
    key = f"{subject}-{at.isoformat()}-{minutes}-{units}"
    event = metering.Event("agent", key, metering.HEARTBEAT, subject, at, data)
    assert metering.record([event], now=T + 2 * HOUR, not_before=T - 2 * HOUR) == [
        metering.Outcome.ACCEPTED
    ]


def minutes(subject: str, span: range, *, units: int = UNITS) -> None:
    for m in span:
        beat(subject, T + m * MINUTE + dt.timedelta(seconds=7), units=units)


def a_gap(s: str) -> None:
    minutes(s, range(10))
    minutes(s, range(20, 30))


def overlaps(s: str) -> None:
    minutes(s, range(10), units=2)
    beat(s, T, units=3, minutes=5)


# Each case: how its subject's heartbeats are written, and the unit-minutes [T, T + 1 h) holds.
CASES: dict[str, tuple[Callable[[str], None], int]] = {
    "no heartbeats": (lambda s: None, 0),
    "a gap": (a_gap, 20 * UNITS),
    "a span straddling the start": (lambda s: beat(s, T - 20 * MINUTE, minutes=60), 40 * UNITS),
    "a span straddling the end": (lambda s: beat(s, T + 50 * MINUTE, units=2, minutes=60), 10 * 2),
    "more units up than leased": (lambda s: minutes(s, range(5), units=9), 5 * UNITS),
    "overlaps count once, at the most": (overlaps, 5 * 3 + 5 * 2),
    "after the window": (lambda s: beat(s, T + HOUR), 0),
    "no units_up": (lambda s: beat(s, T, units=None, minutes=10), 0),
}


def window(subject: str) -> metering.Window:
    return metering.Window(subject, UNITS, T, T + HOUR)


def test_one_window_and_a_batch_count_every_case_alike() -> None:
    # given each case's heartbeats under its own subject
    for name, (write, _) in CASES.items():
        write(name)
    through = metering.last_event_id()

    # when each is counted alone, and all together in one batch (one subject twice)
    alone = {
        name: metering.delivered_unit_seconds(
            name, units=UNITS, start=T, end=T + HOUR, through_id=through
        )
        for name in CASES
    }
    names = [*CASES, "a gap"]
    batch = metering.delivered_many([window(n) for n in names], through_id=through)

    # then both give exactly the expected unit-seconds
    expected = {name: unit_minutes * 60 for name, (_, unit_minutes) in CASES.items()}
    assert alone == expected
    assert batch == [expected[n] for n in names]


def test_a_late_event_counts_only_from_the_settlement_that_sees_it() -> None:
    minutes("late", range(10))
    through = metering.last_event_id()
    minutes("late", range(10, 15))  # arrives after the first settlement read its events

    before = metering.delivered_many([window("late")], through_id=through)
    after = metering.delivered_many([window("late")], through_id=metering.last_event_id())

    assert (before, after) == ([10 * UNITS * 60], [15 * UNITS * 60])


def test_a_window_cut_short_counts_only_its_minutes() -> None:
    minutes("short", range(60))

    [half, empty] = metering.delivered_many(
        [
            metering.Window("short", UNITS, T, T + 30 * MINUTE),
            metering.Window("short", UNITS, T, T),
        ],
        through_id=metering.last_event_id(),
    )

    assert (half, empty) == (30 * UNITS * 60, 0)
