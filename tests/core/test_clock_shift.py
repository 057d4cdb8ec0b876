"""``--clock-shift``: which durations it takes, and that a bad one stops the run with a usage error
instead of running unshifted."""

from __future__ import annotations

import datetime as dt

import pytest

from marketplace.dev.pytest_plugin import parse_shift


@pytest.mark.parametrize(
    ("text", "shift"),
    [
        ("400d", dt.timedelta(days=400)),
        ("3650d", dt.timedelta(days=3650)),
        ("-30d", dt.timedelta(days=-30)),
        ("12h", dt.timedelta(hours=12)),
        ("2w3d", dt.timedelta(days=17)),
        ("1d2h3m4s", dt.timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_a_duration_is_read_part_by_part(text: str, shift: dt.timedelta) -> None:
    assert parse_shift(text) == shift


@pytest.mark.parametrize("text", ["", "-", "400", "d", "400 d", "1.5d", "400days", "3y", "d400"])
def test_anything_else_is_a_usage_error(text: str) -> None:
    with pytest.raises(pytest.UsageError, match="--clock-shift"):
        parse_shift(text)
