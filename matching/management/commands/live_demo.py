"""Simulated providers and buyers trading on the exchange in real time (`make run` starts it).

    manage.py live_demo --prepare                        # set up, clear a first round, exit
    manage.py live_demo --url http://127.0.0.1:8000      # trade and run the agents until stopped

Refused with ``DJANGO_ENV=production``. See ``matching.simulation.live``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from matching.simulation.live import LiveDemo


class Command(BaseCommand):
    help = "Run the live demo market: simulated providers and buyers acting in real time."
    # Tests pass a transport (e.g. the Django test client) instead of real HTTP.
    stealth_options = ("transport",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000", help="the exchange the agents call"
        )
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between steps")
        parser.add_argument("--seed", type=int, default=None, help="default: a new one each run")
        parser.add_argument(
            "--prepare",
            action="store_true",
            help="set up, place a first batch of orders, clear the current round, then exit",
        )
        parser.add_argument("--pidfile", default=None, help="write the process id here")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("live_demo refuses to run with DJANGO_ENV=production")
        seed = options["seed"] if options["seed"] is not None else time.time_ns() % 1_000_000
        extra = {"transport": options["transport"]} if options.get("transport") else {}
        demo = LiveDemo(url=options["url"], seed=seed, log=self._log, **extra)
        pidfile = Path(options["pidfile"]) if options["pidfile"] else None
        if pidfile is not None:
            pidfile.write_text(f"{os.getpid()}\n")
        try:
            self._trade(demo, options)
        finally:
            # Unless a later run has replaced it (after killing this one's supervisor).
            with contextlib.suppress(OSError):
                if pidfile is not None and pidfile.read_text().strip() == str(os.getpid()):
                    pidfile.unlink()

    def _trade(self, demo: LiveDemo, options: dict[str, Any]) -> None:
        try:
            demo.setup(now=timezone.now(), agents=not options["prepare"])
        except LookupError as error:
            raise CommandError(str(error)) from None
        if options["prepare"]:
            outcome = demo.prime(now=timezone.now())
            state = "cleared" if outcome.created else "already cleared"
            self._log(
                f"round {outcome.round.number} {state}: {outcome.round.volume_units} units traded"
            )
            return
        self._log(
            f"trading every {options['interval']:g}s against {options['url']} (seed {demo.seed})"
        )
        demo.prime(now=timezone.now())
        stop = threading.Event()

        def stopping(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        demo.run(interval=options["interval"], stop=stop, clock=timezone.now)
        self._log("stopped")

    def _log(self, line: str) -> None:
        self.stdout.write(f"live demo: {line}")
        self.stdout.flush()
