"""``manage.py run_provider_agent``: the reference provider agent (``marketplace.client.agent``,
standard library only) run from the command line."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.client.agent import AgentError, ProviderAgent


class Command(BaseCommand):
    help = "Run a simulated provider agent against the exchange's agent API."
    # Tests pass a transport (e.g. the Django test client) instead of real HTTP.
    stealth_options = ("transport", "clock", "rng")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the exchange")
        parser.add_argument(
            "--key",
            default=os.environ.get("SUANLI_AGENT_KEY", ""),
            help="API key with the provider-agent scope (default: $SUANLI_AGENT_KEY)",
        )
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between reports")
        parser.add_argument(
            "--drop-heartbeats",
            type=float,
            default=0.0,
            help="probability (0–1) of leaving out each heartbeat",
        )
        parser.add_argument(
            "--fail-after",
            type=float,
            default=None,
            help="fail each lease this many seconds after it became active",
        )
        parser.add_argument("--source", default=None, help="CloudEvents source of the reports")
        parser.add_argument("--once", action="store_true", help="run one cycle, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["key"]:
            raise CommandError("give --key (or set SUANLI_AGENT_KEY)")
        if not 0 <= options["drop_heartbeats"] <= 1:
            raise CommandError("--drop-heartbeats is a probability between 0 and 1")
        extra = {name: options[name] for name in self.stealth_options if options.get(name)}
        try:
            agent = ProviderAgent(
                url=options["url"],
                key=options["key"],
                source=options["source"],
                drop_heartbeats=options["drop_heartbeats"],
                fail_after=options["fail_after"],
                log=self.stdout.write,
                **extra,
            )
            agent.run(interval=options["interval"], once=options["once"])
        except AgentError as error:
            raise CommandError(str(error)) from None
        except KeyboardInterrupt:
            self.stdout.write("stopped")
