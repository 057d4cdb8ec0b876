"""Run one clearing round by hand: ``manage.py clear_round --market cny``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from marketplace.models import Market
from matching import services


class Command(BaseCommand):
    help = "Clear the current round (or slot --number) of a market and print what it did."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--market", required=True, help="market slug, e.g. cny")
        parser.add_argument("--number", type=int, help="slot number (default: the current slot)")

    def handle(self, *args: Any, **options: Any) -> None:
        market = Market.objects.filter(slug=options["market"]).first()
        if market is None:
            raise CommandError(f"no market {options['market']!r}")
        outcome = services.clear_round(market=market, now=timezone.now(), number=options["number"])
        rnd = outcome.round
        state = "cleared" if outcome.created else "already cleared"
        self.stdout.write(
            f"{market.slug} round {rnd.number} {state}: {rnd.orders} orders, {rnd.offers} offers, "
            f"{rnd.volume_units} units traded, welfare {rnd.welfare_per_hour}/h, "
            f"certificate {'ok' if rnd.certificate_ok else 'VIOLATED'} ({rnd.mechanism}, "
            f"{rnd.duration_ms} ms)"
        )
        if not rnd.certificate_ok:
            raise CommandError("; ".join(rnd.certificate.get("violations", [])[:5]))
