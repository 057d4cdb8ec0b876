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
    """The servers in a fresh temporary directory, removed afterwards; or in ``BENCH_DATA_DIR``,
    kept (for working on one benchmark: what it built stays, see ``_matching_round.py``)."""
    from marketplace.dev.devstack import embedded_servers

    kept = os.environ.get("BENCH_DATA_DIR")
    data_dir = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="suanli-bench-"))
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
        if not kept:
            shutil.rmtree(data_dir, ignore_errors=True)


# gunicorn's size in the HTTP benchmarks; BENCH_WORKERS / BENCH_THREADS try others.
WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
WORKER_CLASS = os.environ.get("BENCH_WORKER_CLASS", "gthread")


@contextlib.contextmanager
def serve() -> Iterator[int]:
    """gunicorn (``WORKERS`` × ``THREADS``) on the benchmark's database; yields its port once
    /healthz answers, stops it (and its workers) afterwards."""
    import http.client
    import signal
    import subprocess
    import time

    from marketplace.dev.devstack import free_port

    port = free_port()
    env = {**os.environ, "DEBUG": "false", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "marketplace.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={WORKERS}",
            f"--threads={THREADS}",
            f"--worker-class={WORKER_CLASS}",
            "--log-level=warning",
            "--timeout=120",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "gunicorn exited"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not come up") from None
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
    }


def report(name: str, figures: dict[str, Any]) -> None:
    print(json.dumps({"benchmark": name, "machine": machine(), **figures}, sort_keys=True))
