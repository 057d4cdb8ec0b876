"""Run one clearing round by hand: ``manage.py clear_round --market cny``."""

from __future__ import annotations

import argparse
import datetime as dt
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
        parser.add_argument(
            "--now",
            type=_instant,
            help="the moment the round acts at, ISO 8601 with an offset, e.g. "
            "2026-11-23T12:00:00+00:00 (default: the clock): orders and offers expire, and the "
            "default slot is chosen, as of then",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        market = Market.objects.filter(slug=options["market"]).first()
        if market is None:
            raise CommandError(f"no market {options['market']!r}")
        outcome = services.clear_round(
            market=market, now=options["now"] or timezone.now(), number=options["number"]
        )
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


def _instant(text: str) -> dt.datetime:
    """An aware datetime from ISO 8601; a time without an offset is refused, not guessed."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add +00:00 or Z)")
    return value
