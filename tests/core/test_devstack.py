"""`make run`'s supervisor: real servers from wheels, one command up, the live demo trading within a
minute, Ctrl-C leaves nothing behind, the next start reuses the data, and a killed run does not
block the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

from marketplace.core.env import database_from_url, read_env_file
from marketplace.dev.devstack import _forget_dead_handles, _kill_stale, free_port
from tests.fixtures import ROOT


def test_dead_handles_are_forgotten(tmp_path: Path) -> None:
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / ".handle_pids.json"
    path.write_text(json.dumps([os.getpid(), dead.pid]))

    _forget_dead_handles(path)

    assert json.loads(path.read_text()) == [os.getpid()]


def test_a_stale_process_named_in_its_pid_file_is_killed(tmp_path: Path) -> None:
    stale = subprocess.Popen(["sleep", "60"], start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (tmp_path / "stale.pid").write_text(str(stale.pid))
    (tmp_path / "other.pid").write_text(str(other.pid))
    try:
        # A stale process is one a killed run left long ago: wait until both children show the
        # program they run (on a loaded machine /proc may still show the forking parent briefly).
        _wait_for_cmdline(stale.pid, "sleep 60")
        _wait_for_cmdline(other.pid, "sleep 60")
        _kill_stale(tmp_path / "stale.pid", "sleep")
        _kill_stale(tmp_path / "other.pid", "redis-server")  # not what the file claims: spared

        stale.wait(10)  # (psutil may have reaped it already: then the status reads 0)
        assert not psutil.pid_exists(stale.pid)
        assert other.poll() is None
        assert not (tmp_path / "stale.pid").exists()
    finally:
        other.kill()
        other.wait()


def _wait_for_cmdline(pid: int, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while " ".join(psutil.Process(pid).cmdline()) != expected:
        assert time.monotonic() < deadline, psutil.Process(pid).cmdline()
        time.sleep(0.01)


def _start(var: Path, port: int) -> subprocess.Popen[bytes]:
    """`make run` in a session of its own, as a terminal would run it."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(SUANLI_VAR_DIR=str(var), PORT=str(port), HEARTBEAT_INTERVAL_SECONDS="2")
    return subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _supervisor(make: subprocess.Popen[bytes]) -> int | None:
    """make's one child, the supervisor (None for the moment before make has started it)."""
    children = psutil.Process(make.pid).children()
    assert len(children) <= 1, children
    return children[0].pid if children else None


def _serves(make: subprocess.Popen[bytes], var: Path) -> bool:
    """Is the web server on the port this run's own (not one left by an earlier run)?"""
    try:
        return psutil.Process(int((var / "web.pid").read_text())).ppid() == _supervisor(make)
    except (OSError, ValueError, psutil.Error):
        return False


def _wait_ready(
    process: subprocess.Popen[bytes], var: Path, port: int, timeout: float = 120
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make run exited with {process.returncode}"
        if not _serves(process, var):
            time.sleep(0.5)
            continue
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                body: dict[str, object] = json.load(response)
                return body
        except urllib.error.HTTPError as error:
            last = error.read()
        except OSError as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"/readyz was not 200 within {timeout}s: {last!r}")


def _query(var: Path, sql: str) -> tuple[object, ...] | None:
    settings = database_from_url(read_env_file(var / "run.env")["DATABASE_URL"])
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"]
    ) as conn:
        return conn.execute(sql).fetchone()


def _operator_joined(var: Path) -> object:
    row = _query(
        var, "SELECT date_joined FROM marketplace_user WHERE email = 'operator@demo.suanli.test'"
    )
    assert row is not None
    return row[0]


def _wait_live(var: Path, port: int, timeout: float = 60) -> dict[str, float]:
    """Seconds until the public market data shows a round with volume and the database an active
    lease and a settlement: the live demo at work (what has not shown within ``timeout`` is
    missing from the answer)."""
    started = time.monotonic()
    seen: dict[str, float] = {}
    checks = {
        "lease": "SELECT 1 FROM marketplace_lease WHERE status = 'active' LIMIT 1",
        "settlement": "SELECT 1 FROM marketplace_settlement LIMIT 1",
    }
    while len(seen) < 3 and time.monotonic() - started < timeout:
        if "round" not in seen:
            url = f"http://127.0.0.1:{port}/api/v1/markets/cny/rounds"
            with urllib.request.urlopen(url, timeout=5) as response:
                if any(r["volume_units"] > 0 for r in json.load(response)["data"]):
                    seen["round"] = time.monotonic() - started
        for name, sql in checks.items():
            if name not in seen and _query(var, sql) is not None:
                seen[name] = time.monotonic() - started
        time.sleep(1)
    return seen


def _ours(var: Path) -> list[psutil.Process]:
    """Processes started for this data directory (servers, web, worker, beat, demo)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(var) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def _wait_gone(var: Path, timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := _ours(var)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.stack
def test_run_serves_stops_cleanly_reuses_data_and_survives_a_kill(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = free_port()

    first = _start(var, port)
    try:
        ready = _wait_ready(first, var, port)
        joined = _operator_joined(var)
        assert len(_ours(var)) >= 6  # postgres, redis, worker, beat, web, demo at least
        live = _wait_live(var, port)  # within a minute: rounds, active leases, settlements
    finally:
        os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in the terminal
        first.wait(60)
    assert ready == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok", "celery_beat": "ok"},
    }
    assert live.keys() == {"round", "lease", "settlement"}, live
    assert first.returncode in {0, 2, -signal.SIGINT}  # make re-raises the interrupt
    assert _wait_gone(var) == []

    second = _start(var, port)
    _wait_ready(second, var, port)
    assert _operator_joined(var) == joined  # same data, not a fresh database
    supervisor = _supervisor(second)
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)  # no cleanup: everything else is left running
    second.wait(30)

    third = _start(var, port)
    try:
        _wait_ready(third, var, port)
        assert _operator_joined(var) == joined
    finally:
        third.terminate()  # SIGTERM to make alone: make passes it on
        third.wait(60)
    assert _wait_gone(var) == []
