"""Shared set-up for benchmarks: real PostgreSQL and Redis from wheels in a temporary directory,
a migrated database, and Django configured. Benchmarks print one JSON object as their last line."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def django_stack() -> Iterator[None]:
    from marketplace.devstack import embedded_servers

    data_dir = Path(tempfile.mkdtemp(prefix="suanli-bench-"))
    try:
        with embedded_servers(data_dir) as urls:
            os.environ.update(urls)
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            yield
            from django.db import connections

            connections.close_all()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
    }


def report(name: str, figures: dict[str, Any]) -> None:
    print(json.dumps({"benchmark": name, "machine": machine(), **figures}, sort_keys=True))
