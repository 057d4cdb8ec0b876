"""One yardstick for every market: figures from a scenario and the leases a market made, and the
report as JSON, Markdown and PNG charts.

Definitions (the same for every mechanism):

- **utilization**: leased unit-hours inside the simulated window ÷ offered unit-hours;
- **demand served**: requested SCU-hours that got a lease ÷ requested SCU-hours (a job in units
  counts its units through the SCU of the device it had in mind);
- **gains from trade**: Σ (the buyer's value − the provider's cost) per unit-hour × leased
  unit-hours inside the simulated window, like utilization (what the price splits between them
  does not change it); also over whole leases, which credits a lease made near the end with
  hours of capacity that later buyers never had the chance to bid for;
- **price per SCU-hour** by the zone of the site, **east → west**: the share of eastern buyers'
  SCU-hours served from the west, **green share**: SCU-hours weighted by the site's renewable share.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from matching.simulation.baselines import Allocation
from matching.simulation.scenario import ZONES, Job, Scenario

MECHANISMS = {
    "exchange": "Suanli Exchange (uniform-price double auction, hourly)",
    "posted_price": "Posted price, first come first served",
    "pay_as_bid": "Pay-as-bid reverse auction per order",
    "posted_price_at_cost": "Posted price at cost (sensitivity)",
}
HEADLINE = (
    ("utilization", "Utilization of offered capacity", "share"),
    ("demand_served", "Demand served (SCU-hours)", "share"),
    ("orders_served", "Orders with a lease", "share"),
    ("gains_from_trade", "Gains from trade in the window (CNY)", "money"),
    ("gains_from_trade_whole_leases", "Gains from trade, whole leases (CNY)", "money"),
    ("buyer_payments", "Buyers paid (CNY)", "money"),
    ("gang_jobs_served", "Gang jobs (all or none, one pool) with a lease", "share"),
    ("scu_jobs_served", "SCU jobs with a lease", "share"),
    ("east_to_west", "Eastern demand served in the west", "share"),
    ("green_share", "Green share of delivered compute", "share"),
)


def _q(value: Decimal, places: str = "0.01") -> str:
    return str(value.quantize(Decimal(places), rounding=ROUND_HALF_EVEN))


def figures(scenario: Scenario, allocations: Sequence[Allocation]) -> dict[str, Any]:
    """The yardstick's figures for one market's leases (strings for decimals: exact and stable)."""
    pools, jobs, rounds = scenario.pools, scenario.jobs, scenario.rounds
    busy = [0] * rounds
    busy_zone: dict[str, int] = defaultdict(int)
    served = [Decimal(0)] * len(jobs)
    gains = gains_whole = payments = scu_hours = green = Decimal(0)
    zone_pay: dict[str, Decimal] = defaultdict(Decimal)
    zone_scu: dict[str, Decimal] = defaultdict(Decimal)
    east_total = east_west = Decimal(0)
    for a in allocations:
        pool, job = pools[a.pool], jobs[a.job]
        for hour in range(a.start, min(a.start + a.hours, rounds)):
            busy[hour] += a.units
        busy_zone[pool.zone] += a.units * max(0, min(a.start + a.hours, rounds) - a.start)
        unit_hours = a.units * a.hours
        scu = pool.scu_per_unit * unit_hours
        served[a.job] += scu if job.scu else job.reference_scu * unit_hours
        surplus = job.value_per_unit_hour(pool) - pool.cost
        gains += surplus * a.units * max(0, min(a.start + a.hours, rounds) - a.start)
        gains_whole += surplus * unit_hours
        payments += a.price * unit_hours
        scu_hours += scu
        green += scu * pool.renewable_share
        zone_pay[pool.zone] += a.price * unit_hours
        zone_scu[pool.zone] += scu
        if scenario.buyers[job.buyer].zone == "east":
            east_total += scu
            if pool.zone == "west":
                east_west += scu
    requested = sum((j.requested_scu_hours for j in jobs), Decimal(0))
    served_total = sum(
        (min(s, j.requested_scu_hours) for s, j in zip(served, jobs, strict=True)), Decimal(0)
    )
    units = sum(p.units for p in pools)
    zone_units = {z: sum(p.units for p in pools if p.zone == z) for z in ZONES}
    return {
        "leases": len(allocations),
        "utilization": _q(Decimal(sum(busy)) / scenario.offered_unit_hours, "0.0001"),
        "utilization_by_zone": {
            z: _q(Decimal(busy_zone[z]) / (zone_units[z] * rounds), "0.0001")
            for z in ZONES
            if zone_units[z]
        },
        "demand_served": _q(served_total / requested, "0.0001") if requested else "0",
        "orders_served": _q(Decimal(sum(1 for s in served if s > 0)) / len(jobs), "0.0001")
        if jobs
        else "0",
        "gang_jobs_served": _share_of(served, jobs, lambda j: j.gang),
        "scu_jobs_served": _share_of(served, jobs, lambda j: j.scu),
        "gains_from_trade": _q(gains),
        "gains_from_trade_whole_leases": _q(gains_whole),
        "buyer_payments": _q(payments),
        "scu_hours": _q(scu_hours, "0.1"),
        "price_per_scu_hour": {z: _q(zone_pay[z] / zone_scu[z]) for z in ZONES if zone_scu[z]},
        "east_to_west": _q(east_west / east_total, "0.0001") if east_total else "0",
        "green_share": _q(green / scu_hours, "0.0001") if scu_hours else "0",
        "hourly_utilization": [round(b / units, 4) for b in busy],
    }


def _share_of(served: list[Decimal], jobs: Sequence[Job], which: Callable[[Job], bool]) -> str:
    """The share of the jobs ``which`` picks that got any lease."""
    chosen = [s for s, j in zip(served, jobs, strict=True) if which(j)]
    return _q(Decimal(sum(1 for s in chosen if s > 0)) / len(chosen), "0.0001") if chosen else "0"


def scenario_summary(scenario: Scenario) -> dict[str, Any]:
    pools = scenario.pools
    return {
        "seed": scenario.seed,
        "rounds": scenario.rounds,
        "providers": scenario.providers,
        "buyers": len(scenario.buyers),
        "pools": len(pools),
        "units": sum(p.units for p in pools),
        "units_by_zone": {z: sum(p.units for p in pools if p.zone == z) for z in ZONES},
        "jobs": len(scenario.jobs),
        "jobs_in_scu": sum(1 for j in scenario.jobs if j.scu),
        "gang_jobs": sum(1 for j in scenario.jobs if j.gang),
        "jobs_with_latency_limit": sum(1 for j in scenario.jobs if j.max_latency_tier),
        "jobs_with_residency": sum(1 for j in scenario.jobs if j.allowed_jurisdictions),
        "offered_unit_hours": scenario.offered_unit_hours,
        "requested_scu_hours": _q(
            sum((j.requested_scu_hours for j in scenario.jobs), Decimal(0)), "0.1"
        ),
    }


def markdown(report: dict[str, Any]) -> str:
    mechanisms = report["mechanisms"]
    names = list(mechanisms)
    lines = [
        f"# Market simulation (seed {report['scenario']['seed']})",
        "",
        "{providers} providers ({pools} pools, {units} units), {buyers} buyers, {jobs} jobs, "
        "{rounds} one-hour rounds.".format(**report["scenario"]),
        "",
        "| | " + " | ".join(MECHANISMS[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label, kind in HEADLINE:
        cells = []
        for n in names:
            value = mechanisms[n][key]
            cells.append(f"{float(value):.1%}" if kind == "share" else f"{Decimal(value):,.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for zone in ZONES:
        cells = [mechanisms[n]["price_per_scu_hour"].get(zone, "–") for n in names]
        lines.append(f"| Price per SCU-hour, {zone} (CNY) | " + " | ".join(cells) + " |")
    for zone in ZONES:
        cells = [f"{float(mechanisms[n]['utilization_by_zone'].get(zone, 0)):.1%}" for n in names]
        lines.append(f"| Utilization, {zone} | " + " | ".join(cells) + " |")
    exchange = report.get("exchange", {})
    if exchange:
        lines += ["", "## The exchange's own books", ""]
        lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in exchange.items()]
    ledger = report.get("ledger")
    if ledger:
        verdict = "holds" if ledger["ok"] else "FAILS: " + "; ".join(ledger["problems"])
        lines += ["", f"Ledger conservation check (chain, Σ = 0, balances = entries): {verdict}."]
    return "\n".join(lines) + "\n"


def charts(report: dict[str, Any], directory: Path) -> list[Path]:
    """PNG charts of the comparison (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mechanisms = report["mechanisms"]
    names = list(mechanisms)
    written = []
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for n in names:
        axis.plot(mechanisms[n]["hourly_utilization"], label=MECHANISMS[n], linewidth=1)
    axis.set_xlabel("round (hour)")
    axis.set_ylabel("units leased ÷ units offered")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    axis.set_title("Utilization of offered capacity")
    path = directory / "utilization.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    written.append(path)

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))

    def grouped(
        axis: Any, title: str, ticks: Sequence[str], values: Callable[[str], list[float]]
    ) -> None:
        """One bar per mechanism at each tick."""
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            axis.bar(
                [x + i * width for x in range(len(ticks))], values(n), width, label=MECHANISMS[n]
            )
        axis.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(ticks))])
        axis.set_xticklabels(ticks)
        axis.set_title(title)

    shares = ("utilization", "demand_served", "east_to_west", "green_share")
    grouped(
        axes[0][0],
        "Shares",
        ["utilization", "demand served", "east → west", "green share"],
        lambda n: [float(mechanisms[n][k]) for k in shares],
    )
    axes[0][1].bar(
        range(len(names)), [float(mechanisms[n]["gains_from_trade"]) / 1e6 for n in names]
    )
    axes[0][1].set_xticks(range(len(names)))
    axes[0][1].set_xticklabels([n.replace("_", "\n") for n in names], fontsize=8)
    axes[0][1].set_title("Gains from trade (million CNY)")
    grouped(
        axes[1][0],
        "Average price per SCU-hour by region (CNY)",
        ZONES,
        lambda n: [float(mechanisms[n]["price_per_scu_hour"].get(z, 0)) for z in ZONES],
    )
    grouped(
        axes[1][1],
        "Utilization by region",
        ZONES,
        lambda n: [float(mechanisms[n]["utilization_by_zone"].get(z, 0)) for z in ZONES],
    )
    axes[1][1].set_ylim(0, 1)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=9)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    path = directory / "comparison.png"
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    written.append(path)
    return written


def write(report: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "report.json"
    data.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    text = directory / "report.md"
    text.write_text(markdown(report))
    return [data, text, *charts(report, directory)]
