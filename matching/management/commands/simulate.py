"""Simulate a market: ``manage.py simulate`` runs a seeded scenario through the real services on
an accelerated clock and compares it with a posted-price and a pay-as-bid market on the same
supply and demand; it writes report.json, report.md and PNG charts."""

from __future__ import annotations

import secrets
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import override_settings

from matching.simulation import baselines, report, scenario
from matching.simulation import run as simulation


class Command(BaseCommand):
    help = "Run a seeded market simulation and compare it with posted-price and pay-as-bid markets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--providers", type=int, default=200)
        parser.add_argument("--buyers", type=int, default=2000)
        parser.add_argument("--rounds", type=int, default=500)
        parser.add_argument(
            "--demand", type=float, default=1.0, help="requested ÷ offered unit-hours"
        )
        parser.add_argument("--out", type=Path, default=None, help="report directory")
        parser.add_argument(
            "--markup", type=Decimal, default=baselines.DEFAULT_MARKUP, help="posted-price markup"
        )
        parser.add_argument(
            "--ask-markup",
            type=Decimal,
            default=Decimal(0),
            help="our providers ask cost × (1 + this); 0: they ask their cost",
        )
        parser.add_argument(
            "--mip-nodes",
            type=int,
            default=0,
            help="bound each round's MIP by this many branch-and-bound nodes instead of the "
            "clock (MATCHING_MIP_TIME_LIMIT_SECONDS): the same report on any machine, however "
            "loaded, but slower (10000 suits 100 providers and 1,000 buyers); 0: the clock",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("simulate refuses to run with DJANGO_ENV=production")
        figures = run_simulation(
            seed=options["seed"],
            providers=options["providers"],
            buyers=options["buyers"],
            rounds=options["rounds"],
            demand=options["demand"],
            markup=options["markup"],
            ask_markup=options["ask_markup"],
            progress=not options["no_progress"],
            mip_nodes=options["mip_nodes"],
        )
        out = (
            options["out"]
            or Path(settings.BASE_DIR) / "var" / "simulation" / f"seed-{options['seed']}"
        )
        written = report.write(figures, out)
        self.stdout.write(report.markdown(figures))
        self.stdout.write("written: " + ", ".join(str(p) for p in written))


def run_simulation(
    *,
    seed: int,
    providers: int,
    buyers: int,
    rounds: int,
    demand: float,
    markup: Decimal = baselines.DEFAULT_MARKUP,
    ask_markup: Decimal = Decimal(0),
    progress: bool = False,
    mip_nodes: int = 0,
) -> dict[str, Any]:
    """The whole comparison as one report (no timings in it). The same seed gives the same
    report, but for one thing: a round whose MIP the clock stops keeps whatever incumbent the
    machine had reached, which a differently loaded machine may not. ``mip_nodes`` > 0 bounds
    the MIP by branch-and-bound nodes instead, which is the same everywhere (and slower)."""
    from tqdm import tqdm  # the `simulation` extra: not in a production install

    started = time.monotonic()
    world = scenario.generate(
        seed=seed, providers=providers, buyers=buyers, rounds=rounds, demand=demand
    )
    bar = tqdm(total=rounds, desc="rounds", unit="round", file=sys.stderr, disable=not progress)

    def advance(_round: int) -> None:
        bar.update()

    limits: dict[str, Any] = {}
    if mip_nodes > 0:
        limits = {"MATCHING_MIP_TIME_LIMIT": None, "MATCHING_MIP_NODE_LIMIT": mip_nodes}
    with override_settings(**limits):
        run = simulation.simulate(
            world, tag=f"{seed}-{secrets.token_hex(3)}", ask_markup=ask_markup, progress=advance
        )
    bar.close()
    mechanisms = {
        "exchange": report.figures(world, run.allocations()),
        "posted_price": report.figures(world, baselines.posted_price(world, markup=markup)),
        "pay_as_bid": report.figures(world, baselines.pay_as_bid(world)),
        "posted_price_at_cost": report.figures(
            world, baselines.posted_price(world, markup=Decimal(0))
        ),
    }
    result = {
        "scenario": report.scenario_summary(world),
        "assumptions": {
            "posted_price_markup": str(markup),
            "pay_as_bid_margin": str(baselines.DEFAULT_MARGIN),
            "pay_as_bid_slope": str(baselines.DEFAULT_SLOPE),
            "exchange_asks": (
                f"providers ask cost × (1 + {ask_markup})"
                if ask_markup
                else "providers ask their cost"
            )
            + "; buyers bid their value",
        },
        "mechanisms": mechanisms,
        "exchange": simulation.books(run),
        "ledger": simulation.conservation(),
    }
    if progress:
        sys.stderr.write(f"simulated in {time.monotonic() - started:.1f} s\n")
    return result
