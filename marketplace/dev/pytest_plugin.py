"""pytest plugin (``-p marketplace.pytest_plugin``): real PostgreSQL and Redis for the tests, and
``--clock-shift`` to run the whole suite on another date.

Unless DATABASE_URL / REDIS_URL are set, it starts both from their wheels in a temporary directory
before pytest-django reads the settings, and stops and removes them when the session ends.

``--clock-shift=DURATION`` (``400d``, ``3650d``, ``-30d``, ``12h``, ``2w3d``) moves this process's
wall clock by DURATION for the whole run, with time-machine, once the servers are up: a test that
mixes a fixed date with code that reads the clock fails today instead of on the day the fixed date
goes stale. The clock keeps ticking; a test that freezes time itself still wins inside its block.
Monotonic clocks and other processes are not shifted, so a test whose outcome depends on a real
process reading the clock carries ``@pytest.mark.real_clock(reason=...)`` and is skipped, with its
reason, in a shifted run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest
import time_machine

from marketplace.dev.devstack import embedded_servers

_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_shift(text: str) -> dt.timedelta:
    """``400d`` → 400 days; parts add up (``1w2d12h``); a leading ``-`` goes back in time."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text)
    parts = _PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise pytest.UsageError(
            f"--clock-shift={text!r}: expected a duration such as 400d, 3650d, 12h or 2w3d"
        )
    return sign * sum((dt.timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), dt.timedelta())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-shift",
        metavar="DURATION",
        default=None,
        help="move the wall clock by DURATION (e.g. 400d, 3650d, -30d, 12h) for the whole run; "
        "tests marked real_clock are skipped",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return (yield)
    data_dir = Path(tempfile.mkdtemp(prefix="suanli-test-"))
    stack = contextlib.ExitStack()
    stack.callback(shutil.rmtree, data_dir, ignore_errors=True)  # runs last: after the servers stop
    urls = stack.enter_context(embedded_servers(data_dir))
    os.environ.update(urls)
    os.environ["SUANLI_VAR_DIR"] = str(data_dir)
    early_config.add_cleanup(stack.close)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_clock(reason): the outcome depends on a real process reading the unshifted clock; "
        "skipped under --clock-shift",
    )
    text = config.getoption("clock_shift")
    if not text:
        return
    shift = parse_shift(text)
    traveller = time_machine.travel(dt.datetime.now(dt.UTC) + shift, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)
    config.stash[_SHIFT] = shift


_SHIFT = pytest.StashKey[dt.timedelta]()


def pytest_report_header(config: pytest.Config) -> str | None:
    shift = config.stash.get(_SHIFT, None)
    if shift is None:
        return None
    return f"clock shifted by {shift} (wall clock now {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shifted = config.stash.get(_SHIFT, None) is not None
    for item in items:
        marker = item.get_closest_marker("real_clock")
        if marker is None:
            continue
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: real_clock needs a reason")
        if shifted:
            item.add_marker(pytest.mark.skip(reason=f"--clock-shift: {reason}"))
