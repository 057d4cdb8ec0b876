"""pytest plugin (``-p marketplace.pytest_plugin``): real PostgreSQL and Redis for the tests.

Unless DATABASE_URL / REDIS_URL are set, it starts both from their wheels in a temporary directory
before pytest-django reads the settings, and stops and removes them when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from marketplace.devstack import embedded_servers


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
